-- skbtrail bundle schema, format version 1.
-- Append-only once released: a later version adds a file vN.sql with the upgrade step from N-1.
-- Integers that hold kernel addresses (skb, location, symbol) are stored as the signed 64-bit
-- bit pattern of the unsigned address: printf('%x', x) shows them as the kernel does.

-- One row: what was recorded, where, how.
CREATE TABLE recording (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    format_version     INTEGER NOT NULL CHECK (format_version >= 1),
    recorder_version   TEXT    NOT NULL,
    uuid               TEXT    NOT NULL,
    command_line       TEXT    NOT NULL,            -- JSON array of the recorder's argv
    filters            TEXT    NOT NULL,            -- JSON object of the capture filters
    host               TEXT    NOT NULL,
    kernel_release     TEXT    NOT NULL,            -- uname -r
    kernel_version     TEXT    NOT NULL,            -- uname -v
    machine            TEXT    NOT NULL,            -- uname -m
    byte_order         TEXT    NOT NULL CHECK (byte_order IN ('little', 'big')),
    boot_to_unix_ns    INTEGER NOT NULL,            -- add to an event's ts to get Unix time in ns
    codec              TEXT    NOT NULL CHECK (codec IN ('zstd-split', 'zstd', 'none')),
    codec_level        INTEGER NOT NULL,
    snaplen            INTEGER NOT NULL CHECK (snaplen BETWEEN 0 AND 256),
    event_size         INTEGER NOT NULL,            -- sizeof(struct st_event) of the recorder
    started_ns         INTEGER NOT NULL,            -- CLOCK_BOOTTIME at start
    ended_ns           INTEGER,                     -- CLOCK_BOOTTIME at a clean stop, else NULL
    stop_reason        TEXT                         -- 'signal SIGINT', 'duration', 'command exited 0', ...
);

-- Raw records as the BPF programs emitted them, batched, compressed. One transaction per row.
CREATE TABLE chunk (
    id        INTEGER PRIMARY KEY,                  -- order of writing
    first_ts  INTEGER NOT NULL,                     -- smallest event ts in the chunk
    last_ts   INTEGER NOT NULL CHECK (last_ts >= first_ts),
    records   INTEGER NOT NULL CHECK (records >= 0),
    raw_size  INTEGER NOT NULL CHECK (raw_size >= 0),
    codec     TEXT    NOT NULL CHECK (codec IN ('zstd-split', 'zstd', 'none')),  -- docs/bundle-format.md
    data      BLOB    NOT NULL
);

-- Every attach point the recorder tried: attached or not, and why not.
CREATE TABLE probe (
    id        INTEGER PRIMARY KEY,
    probe     INTEGER NOT NULL,                     -- st_event.probe of its records (events.h)
    name      TEXT    NOT NULL,                     -- 'kfree_skb', 'nf:ipv4:forward:25'
    tier      INTEGER NOT NULL CHECK (tier IN (1, 2, 3)),
    kind      TEXT    NOT NULL,                     -- 'tp_btf', 'raw_tp', 'netfilter'
    target    TEXT    NOT NULL,                     -- tracepoint name or netfilter hook
    family    INTEGER,                              -- netfilter: NFPROTO_IPV4 2 / NFPROTO_IPV6 10
    hook      INTEGER,                              -- netfilter hook number
    priority  INTEGER,                              -- netfilter priority
    netns     INTEGER,                              -- netfilter: namespace of the hook (hooks are per netns)
    attached  INTEGER NOT NULL CHECK (attached IN (0, 1)),
    error     TEXT,                                 -- why it did not attach
    UNIQUE (probe, family, hook, netns)
);

-- The running kernel's enum skb_drop_reason, from its BTF: numbers differ between kernels.
CREATE TABLE drop_reason (
    value INTEGER PRIMARY KEY,
    name  TEXT NOT NULL                             -- without the SKB_DROP_REASON_ prefix
);

-- The kernel's TCP reset reasons (enum sk_rst_reason), when the kernel has them.
CREATE TABLE rst_reason (
    value INTEGER PRIMARY KEY,
    name  TEXT NOT NULL
);

-- Symbol for every location address seen in a record.
CREATE TABLE symbol (
    address INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL,
    offset  INTEGER NOT NULL                        -- address - symbol start
);

-- Network namespaces: names from /run/netns, and the ones processes used.
CREATE TABLE netns (
    inode   INTEGER PRIMARY KEY,
    name    TEXT,                                   -- NULL when unnamed
    is_root INTEGER NOT NULL CHECK (is_root IN (0, 1))
);

-- Interfaces per namespace, as seen at the start and at the end of the recording.
CREATE TABLE interface (
    netns    INTEGER NOT NULL,
    ifindex  INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    kind     TEXT,                                  -- 'veth', 'bridge', ... (NULL for plain devices)
    mac      TEXT,
    mtu      INTEGER,
    flags    TEXT,                                  -- JSON array
    master   TEXT,
    PRIMARY KEY (netns, ifindex)
);

CREATE TABLE address (
    netns      INTEGER NOT NULL,
    ifindex    INTEGER NOT NULL,
    family     TEXT    NOT NULL CHECK (family IN ('inet', 'inet6')),
    address    TEXT    NOT NULL,
    prefixlen  INTEGER NOT NULL,
    PRIMARY KEY (netns, ifindex, address)
);

-- Raw text snapshots: routes, rules, the netfilter ruleset, sysctls, one row per namespace and source.
CREATE TABLE snapshot (
    id       INTEGER PRIMARY KEY,
    netns    INTEGER NOT NULL,
    phase    TEXT    NOT NULL CHECK (phase IN ('start', 'end')),
    source   TEXT    NOT NULL,                      -- 'ip-route', 'iptables-save', 'nft', 'sysctl', ...
    content  TEXT    NOT NULL,
    UNIQUE (netns, phase, source)
);

CREATE TABLE sysctl (
    netns  INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (netns, name)
);

-- Events the kernel could not hand over (ring buffer full), per CPU.
CREATE TABLE lost (
    cpu    INTEGER PRIMARY KEY,
    events INTEGER NOT NULL CHECK (events >= 0)
);
