-- skbtrail findings file: what the diagnosis rules (rules/ and --rules DIR) found in one analysis
-- database. One file per rule set, beside the analysis database in the cache, written whole to a
-- temporary file and renamed, so readers never see it half done. The views in 2-views.sql (the
-- documented `finding` and `rule`, docs/sql.md) join it to the analysis.

-- Key/value facts: the cache key of the rule set, and whether the file is complete.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- One row per rule run: where it came from, what it needs, what it found or why it failed.
CREATE TABLE diag_rule (
    id       TEXT NOT NULL,
    title    TEXT,
    level    TEXT,
    needs    TEXT,           -- comma-separated probe names or 'netfilter', from the rule's header
    source   TEXT NOT NULL,  -- 'builtin:netfilter-drop.sql' or the user's file path
    missing  TEXT,           -- needs not attached in this bundle ('' when all are)
    error    TEXT,           -- why the rule could not run ('file:line: message'), NULL when it ran
    findings INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source)
);

-- One row per finding.
CREATE TABLE diag_finding (
    id         INTEGER PRIMARY KEY,
    packet_id  INTEGER,
    event_id   INTEGER,
    level      TEXT NOT NULL CHECK (level IN ('INFO', 'WARN', 'ERROR')),
    code       TEXT NOT NULL,
    rule       TEXT NOT NULL,
    message    TEXT NOT NULL,
    advice     TEXT,
    confidence TEXT NOT NULL CHECK (confidence IN ('certain', 'inferred')),
    inferred   TEXT
);
CREATE INDEX diag_finding_packet ON diag_finding (packet_id);
