-- The documented views of the findings (docs/sql.md), made on a reader's connection once the findings
-- file is attached as `findings` to the analysis database (main). TEMP: a view of one database may not
-- name another's tables.

CREATE TEMP VIEW finding AS
SELECT f.id, f.packet_id, f.event_id, f.level,
       CASE f.level WHEN 'ERROR' THEN 3 WHEN 'WARN' THEN 2 ELSE 1 END AS severity,
       f.code, f.rule, f.message, f.advice, f.confidence, f.inferred,
       p.tuple, p.fate
FROM findings.diag_finding f
LEFT JOIN main.pkt p ON p.id = f.packet_id;

CREATE TEMP VIEW rule AS
SELECT id, title, level, needs, source, missing, error, findings FROM findings.diag_rule;
