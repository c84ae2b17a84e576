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
