-- Format version 2 (upgrade from 1): what made this bundle out of another one. A recording has no
-- rows; `skbtrail slice` and `skbtrail redact` add one each, and keep the rows of the bundle they read.
CREATE TABLE provenance (
    id               INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,              -- 'slice', 'redact'
    created_unix_ns  INTEGER NOT NULL,
    tool_version     TEXT    NOT NULL,              -- skbtrail's version
    source_uuid      TEXT    NOT NULL,              -- recording.uuid of the bundle read
    source_records   INTEGER NOT NULL,              -- event records in the bundle read
    records          INTEGER NOT NULL,              -- event records written
    detail           TEXT    NOT NULL               -- what was kept or changed, in words
);

-- Kernel stacks of drops (skbtrail-record --drop-stack): kfree_skb records carry 1 + an id here
-- (st_args_free.stack), a row per frame, innermost first (depth 0); each address's symbol is in
-- `symbol`. Added without a format bump: readers that predate it ignore the table, bundles that
-- predate it have none.
CREATE TABLE IF NOT EXISTS stack (
    id      INTEGER NOT NULL,                       -- st_args_free.stack (the stack map's id + 1)
    depth   INTEGER NOT NULL,                       -- 0: the innermost frame (kfree_skb's caller's caller ...)
    address INTEGER NOT NULL,
    PRIMARY KEY (id, depth)
);
