-- Diagnosis helpers (docs/rules.md): views over the bundle's metadata that rules read, created at decode.
-- What the rules found is kept in a findings file beside the analysis database (findings.sql).

-- Netfilter hook numbers as the kernel numbers them, and the names the views use.
CREATE TABLE nf_hook_name (hook INTEGER PRIMARY KEY, name TEXT NOT NULL, nft TEXT NOT NULL);
INSERT INTO nf_hook_name VALUES
    (0, 'PREROUTING', 'prerouting'), (1, 'INPUT', 'input'), (2, 'FORWARD', 'forward'),
    (3, 'OUTPUT', 'output'), (4, 'POSTROUTING', 'postrouting');

-- The lines of each namespace's ruleset snapshot (taken at the recording's start), one row per rule or
-- chain policy, with the table, chain and hook they belong to. For iptables-save (`source`
-- 'iptables-save' or 'ip6tables-save') `tbl` is 'filter', 'nat', ... and `chain` the chain of '-A CHAIN';
-- for nft `tbl` is 'inet filter', `chain` the chain name and `hook` its base-chain hook ('input', NULL
-- for a regular chain). `verdict` is 'DROP', 'REJECT', 'ACCEPT', 'policy DROP', ... or NULL.
CREATE VIEW ruleset_line AS
WITH RECURSIVE split(netns, source, n, line, rest, tbl, chain, hook) AS (
    SELECT netns, source, 0, NULL, replace(content, char(9), ' ') || char(10), NULL, NULL, NULL
    FROM bundle_snapshot
    WHERE phase = 'start' AND source IN ('iptables-save', 'ip6tables-save', 'nft') AND length(content) > 0
    UNION ALL
    SELECT netns, source, n + 1,
           trim(substr(rest, 1, instr(rest, char(10)) - 1)),
           substr(rest, instr(rest, char(10)) + 1),
           CASE
               WHEN source != 'nft' AND substr(rest, 1, 1) = '*' THEN trim(substr(rest, 2, instr(rest, char(10)) - 2))
               WHEN source = 'nft' AND trim(substr(rest, 1, instr(rest, char(10)) - 1)) LIKE 'table %'
                   THEN trim(substr(trim(substr(rest, 1, instr(rest, char(10)) - 1)), 7,
                                    instr(trim(substr(rest, 1, instr(rest, char(10)) - 1)) || ' {', ' {') - 7), ' {')
               ELSE tbl END,
           CASE
               WHEN source = 'nft' AND trim(substr(rest, 1, instr(rest, char(10)) - 1)) LIKE 'chain %'
                   THEN trim(substr(trim(substr(rest, 1, instr(rest, char(10)) - 1)), 7,
                                    instr(trim(substr(rest, 1, instr(rest, char(10)) - 1)) || ' {', ' {') - 7), ' {')
               ELSE chain END,
           CASE
               WHEN source = 'nft' AND trim(substr(rest, 1, instr(rest, char(10)) - 1)) LIKE 'chain %' THEN NULL
               WHEN source = 'nft' AND trim(substr(rest, 1, instr(rest, char(10)) - 1)) LIKE 'type % hook %'
                   THEN substr(trim(substr(rest, 1, instr(rest, char(10)) - 1)),
                               instr(trim(substr(rest, 1, instr(rest, char(10)) - 1)), ' hook ') + 6,
                               instr(substr(trim(substr(rest, 1, instr(rest, char(10)) - 1)),
                                            instr(trim(substr(rest, 1, instr(rest, char(10)) - 1)), ' hook ') + 6), ' ') - 1)
               ELSE hook END
    FROM split
    WHERE rest != ''
),
-- iptables-save -c leads each rule with its counters, "[packets:bytes] -A ...": the rule is the rest
stripped AS (
    SELECT netns, source, n, tbl, chain, hook,
           CASE WHEN source != 'nft' AND line LIKE '[%:%] %' THEN substr(line, instr(line, '] ') + 2) ELSE line END AS line
    FROM split
),
lines AS (
    SELECT netns, source, n AS line_no, line, tbl,
           CASE
               WHEN source != 'nft' AND line LIKE '-A %' THEN substr(line, 4, instr(substr(line, 4) || ' ', ' ') - 1)
               WHEN source != 'nft' AND line LIKE ':%' THEN substr(line, 2, instr(line, ' ') - 2)
               ELSE chain END AS chain,
           hook,
           CASE
               WHEN source != 'nft' AND line LIKE ':% DROP %' THEN 'policy DROP'
               WHEN source != 'nft' AND line LIKE ':% ACCEPT %' THEN 'policy ACCEPT'
               WHEN source != 'nft' AND line LIKE '% -j DROP%' THEN 'DROP'
               WHEN source != 'nft' AND line LIKE '% -j REJECT%' THEN 'REJECT'
               WHEN source != 'nft' AND line LIKE '% -j ACCEPT%' THEN 'ACCEPT'
               WHEN source != 'nft' AND line LIKE '% -j %' THEN trim(substr(line, instr(line, ' -j ') + 4))
               WHEN source = 'nft' AND line LIKE 'type % policy drop;%' THEN 'policy DROP'
               WHEN source = 'nft' AND line LIKE 'type %' THEN 'policy ACCEPT'
               WHEN source = 'nft' AND (line LIKE '% drop' OR line = 'drop' OR line LIKE '% drop comment %') THEN 'DROP'
               WHEN source = 'nft' AND (line LIKE '% reject' OR line LIKE '% reject %' OR line = 'reject') THEN 'REJECT'
               WHEN source = 'nft' AND (line LIKE '% accept' OR line = 'accept') THEN 'ACCEPT'
           END AS verdict
    FROM stripped
    WHERE line IS NOT NULL AND line != '' AND line NOT LIKE '#%' AND line != 'COMMIT' AND line != '}'
      AND line NOT LIKE '*%' AND line NOT LIKE 'table %' AND line NOT LIKE 'chain %'
)
SELECT netns, source,
       CASE WHEN source = 'ip6tables-save' THEN 'ipv6' WHEN source = 'iptables-save' THEN 'ipv4'
            WHEN tbl LIKE 'ip6 %' THEN 'ipv6' WHEN tbl LIKE 'ip %' THEN 'ipv4' WHEN tbl LIKE 'inet %' THEN 'inet'
            ELSE substr(tbl, 1, instr(tbl || ' ', ' ') - 1) END AS family,
       tbl, chain, hook, line_no, line, verdict
FROM lines;

-- Every snapshot of the bundle (ip-route, ip-neigh, tc-qdisc, sysctl, ...) split into lines.
CREATE VIEW snapshot_line AS
WITH RECURSIVE split(netns, phase, source, n, line, rest) AS (
    SELECT netns, phase, source, 0, NULL, content || char(10) FROM bundle_snapshot WHERE length(content) > 0
    UNION ALL
    SELECT netns, phase, source, n + 1, rtrim(substr(rest, 1, instr(rest, char(10)) - 1)),
           substr(rest, instr(rest, char(10)) + 1)
    FROM split WHERE rest != ''
)
SELECT netns, phase, source, n AS line_no, line FROM split WHERE line IS NOT NULL AND line != '';

-- For each NETFILTER_DROP packet, the lines of its namespace's ruleset snapshot that could have dropped
-- it: DROP/REJECT rules and DROP policies of the table and hook the brackets name (any table or hook
-- when unknown), in user chains too, whose protocol and /32 addresses do not exclude the packet.
-- `invalid` = 1 for conntrack INVALID rules. iptables-nft tables are listed once, from iptables-save.
CREATE VIEW netfilter_drop_candidate AS
SELECT p.id AS packet_id, r.source, r.tbl, r.chain, r.line_no, r.line, r.verdict,
           (r.line LIKE '%INVALID%' OR lower(r.line) LIKE '%ct state invalid%') AS invalid
    FROM packet p
    JOIN ruleset_line r ON r.netns = p.netns
    WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP'
      AND r.verdict IN ('DROP', 'REJECT', 'policy DROP')
      AND (r.family = coalesce(p.nf_family, p.l3) OR r.family = 'inet')
      AND (
        (r.source != 'nft' AND (p.nf_table IS NULL OR p.nf_table LIKE r.tbl || '%')
         AND (p.nf_hook IS NULL OR r.chain = p.nf_hook
              OR r.chain NOT IN ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING')))
        OR
        (r.source = 'nft' AND (p.nf_hook IS NULL OR r.hook IS NULL OR r.hook = lower(p.nf_hook))
         -- iptables-nft shows its tables in nft too: list them once, from iptables-save
         AND NOT (r.tbl IN ('ip filter', 'ip nat', 'ip mangle', 'ip raw', 'ip security',
                            'ip6 filter', 'ip6 nat', 'ip6 mangle', 'ip6 raw', 'ip6 security')
                  AND EXISTS (SELECT 1 FROM ruleset_line x WHERE x.netns = r.netns AND x.source != 'nft')))
      )
      -- protocol: iptables -p, nft protocol words
      AND (r.source = 'nft' OR r.line NOT LIKE '% -p %'
           OR r.line LIKE '% -p ' || lower(p.proto) || ' %' OR r.line LIKE '% -p ' || lower(p.proto)
           OR (p.proto = 'ICMPv6' AND (r.line LIKE '% -p ipv6-icmp%' OR r.line LIKE '% -p icmpv6%')))
      AND (r.source != 'nft' OR (
           (p.proto = 'TCP' OR r.line NOT LIKE '%tcp %') AND (p.proto = 'UDP' OR r.line NOT LIKE '%udp %')
           AND (p.proto IN ('ICMP', 'ICMPv6') OR r.line NOT LIKE '%icmp%')))
      -- host addresses
      AND (r.line NOT LIKE '% -s %/32 %' OR r.line LIKE '% -s ' || p.saddr || '/32 %')
      AND (r.line NOT LIKE '% -d %/32 %' OR r.line LIKE '% -d ' || p.daddr || '/32 %');

-- The netfilter rules and chain policies that counted packets during the recording (counter_delta),
-- with their family, the hook of their chain (nft base chains; iptables built-in chains) and verdict.
-- iptables-nft tables, listed by nft too, are taken from iptables-save only.
CREATE VIEW netfilter_rule_hit AS
SELECT d.netns, d.netns_name, d.kind AS source, d.tbl, d.chain, d.seq, d.name AS line, d.delta AS packets,
       CASE WHEN d.kind = 'iptables' THEN 'ipv4' WHEN d.kind = 'ip6tables' THEN 'ipv6'
            WHEN d.tbl LIKE 'ip6 %' THEN 'ipv6' WHEN d.tbl LIKE 'ip %' THEN 'ipv4'
            ELSE substr(d.tbl, 1, instr(d.tbl || ' ', ' ') - 1) END AS family,
       CASE WHEN d.kind != 'nft' THEN CASE WHEN d.chain IN ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING') THEN d.chain END
            ELSE upper(d.hook) END AS hook,
       CASE WHEN d.name LIKE 'policy DROP' THEN 'policy DROP'
            WHEN d.kind != 'nft' AND d.name LIKE '% -j DROP%' THEN 'DROP'
            WHEN d.kind != 'nft' AND d.name LIKE '% -j REJECT%' THEN 'REJECT'
            WHEN d.kind = 'nft' AND (d.name LIKE '% drop' OR d.name LIKE '% drop %' OR d.name = 'counter drop') THEN 'DROP'
            WHEN d.kind = 'nft' AND (d.name LIKE '% reject' OR d.name LIKE '% reject %') THEN 'REJECT'
       END AS verdict,
       (d.name LIKE '%INVALID%' OR lower(d.name) LIKE '%ct state invalid%') AS invalid
FROM counter_delta d
WHERE d.kind IN ('iptables', 'ip6tables', 'nft') AND d.delta > 0
  AND NOT (d.kind = 'nft' AND d.tbl IN ('ip filter', 'ip nat', 'ip mangle', 'ip raw', 'ip security',
                                        'ip6 filter', 'ip6 nat', 'ip6 mangle', 'ip6 raw', 'ip6 security')
           AND EXISTS (SELECT 1 FROM counter_sample c WHERE c.netns = d.netns AND c.kind IN ('iptables', 'ip6tables')));

-- For each NETFILTER_DROP packet, the dropping rules of its namespace whose counters rose during the
-- recording, that agree with the hook the brackets name (any family and hook when the drop came after
-- the hook's last bracket, where other families' hooks, such as the bridge's, run) and whose protocol
-- and /32 addresses do not exclude the packet (as in netfilter_drop_candidate).
CREATE VIEW netfilter_drop_hit AS
SELECT p.id AS packet_id, h.*
FROM packet p
JOIN netfilter_rule_hit h ON h.netns = p.netns
WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP' AND h.verdict IS NOT NULL
  AND (p.nf_family IS NULL OR p.nf_table LIKE 'after %' OR h.family IN (p.nf_family, 'inet'))
  AND (p.nf_hook IS NULL OR p.nf_table LIKE 'after %' OR h.hook IS NULL OR h.hook = p.nf_hook)
  AND (h.source = 'nft' OR h.line NOT LIKE '% -p %'
       OR h.line LIKE '% -p ' || lower(p.proto) || ' %' OR h.line LIKE '% -p ' || lower(p.proto)
       OR (p.proto = 'ICMPv6' AND (h.line LIKE '% -p ipv6-icmp%' OR h.line LIKE '% -p icmpv6%')))
  AND (h.source != 'nft' OR (
       (p.proto = 'TCP' OR h.line NOT LIKE '%tcp %') AND (p.proto = 'UDP' OR h.line NOT LIKE '%udp %')
       AND (p.proto IN ('ICMP', 'ICMPv6') OR h.line NOT LIKE '%icmp%')))
  AND (h.line NOT LIKE '% -s %/32 %' OR h.line LIKE '% -s ' || p.saddr || '/32 %')
  AND (h.line NOT LIKE '% -d %/32 %' OR h.line LIKE '% -d ' || p.daddr || '/32 %')
  -- a single destination port (iptables --dport N, nft dport N); ranges and sets are not excluded
  AND (h.line NOT LIKE '%dport %' OR p.dport IS NULL OR h.line LIKE '%dport ' || p.dport || ' %' OR h.line LIKE '%dport ' || p.dport
       OR h.line LIKE '%dport %:%' OR h.line LIKE '%dport {%' OR h.line LIKE '%dport %-%' OR h.line LIKE '%dports %');

-- The namespaces whose netfilter hooks were bracketed during the recording; bundles of recorders that
-- did not say (no netns in their probe rows) count every namespace as bracketed.
CREATE VIEW netfilter_recorded_netns AS
SELECT DISTINCT netns FROM bundle_probe WHERE kind = 'netfilter' AND attached = 1 AND netns IS NOT NULL;
