-- skbtrail analysis database, layout version 1: what `skbtrail` decodes out of a bundle.
-- This is a cache: it is rebuilt from the bundle whenever the analyzer's decoder changes. Its tables are
-- private; the views in 2-views.sql are the documented interface (docs/sql.md).

-- Key/value facts about the decode: bundle path, cache key, whether it is complete, counts.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- Copies of the bundle's metadata tables (same columns), so the analysis is self-contained.
CREATE TABLE bundle_recording (
    id INTEGER PRIMARY KEY, format_version INTEGER, recorder_version TEXT, uuid TEXT, command_line TEXT,
    filters TEXT, host TEXT, kernel_release TEXT, kernel_version TEXT, machine TEXT, byte_order TEXT,
    boot_to_unix_ns INTEGER, codec TEXT, codec_level INTEGER, snaplen INTEGER, event_size INTEGER,
    started_ns INTEGER, ended_ns INTEGER, stop_reason TEXT
);
CREATE TABLE bundle_chunk (
    id INTEGER PRIMARY KEY, first_ts INTEGER, last_ts INTEGER, records INTEGER, raw_size INTEGER,
    stored_size INTEGER, codec TEXT
);
CREATE TABLE bundle_probe (
    id INTEGER PRIMARY KEY, probe INTEGER, name TEXT, tier INTEGER, kind TEXT, target TEXT, family INTEGER,
    hook INTEGER, priority INTEGER, attached INTEGER, error TEXT
);
CREATE TABLE bundle_drop_reason (value INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE bundle_rst_reason (value INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE bundle_symbol (address INTEGER PRIMARY KEY, name TEXT, offset INTEGER);
CREATE TABLE bundle_netns (inode INTEGER PRIMARY KEY, name TEXT, is_root INTEGER);
CREATE TABLE bundle_interface (
    netns INTEGER, ifindex INTEGER, name TEXT, kind TEXT, mac TEXT, mtu INTEGER, flags TEXT, master TEXT,
    PRIMARY KEY (netns, ifindex)
);
CREATE TABLE bundle_address (
    netns INTEGER, ifindex INTEGER, family TEXT, address TEXT, prefixlen INTEGER,
    PRIMARY KEY (netns, ifindex, address)
);
CREATE TABLE bundle_snapshot (id INTEGER PRIMARY KEY, netns INTEGER, phase TEXT, source TEXT, content TEXT);
CREATE TABLE bundle_sysctl (netns INTEGER, name TEXT, value TEXT, PRIMARY KEY (netns, name));
CREATE TABLE bundle_lost (cpu INTEGER PRIMARY KEY, events INTEGER);

-- Events per attach point, counted at decode (probe, and family/hook for netfilter brackets).
CREATE TABLE probe_events (
    probe INTEGER NOT NULL, family INTEGER, hook INTEGER, name TEXT NOT NULL, events INTEGER NOT NULL
);

-- One row per decoded record, in time order (id = rank by ts).
CREATE TABLE ev (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    probe INTEGER NOT NULL,
    probe_name TEXT NOT NULL,
    cpu INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    tid INTEGER NOT NULL,
    comm TEXT NOT NULL,
    netns INTEGER NOT NULL,
    ifindex INTEGER NOT NULL,
    skb INTEGER NOT NULL,
    head INTEGER NOT NULL,
    len INTEGER NOT NULL,
    mark INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    l3_from INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    packet_id INTEGER,
    step INTEGER,
    l3 TEXT,
    l4 INTEGER,
    proto TEXT,
    vlan INTEGER,
    saddr TEXT,
    daddr TEXT,
    sport INTEGER,
    dport INTEGER,
    tcp_flags TEXT,
    tcp_seq INTEGER,
    tcp_ack INTEGER,
    icmp_type INTEGER,
    icmp_code INTEGER,
    icmp_id INTEGER,
    icmp_seq INTEGER,
    ip_id INTEGER,
    ttl INTEGER,
    tunnel TEXT,
    inner_tuple TEXT,
    reason INTEGER,
    location INTEGER,
    nf_family INTEGER,
    nf_hook INTEGER,
    nf_bracket INTEGER,
    nf_priority INTEGER,
    nf_in_ifindex INTEGER,
    nf_out_ifindex INTEGER,
    ct_info INTEGER,
    ct_status INTEGER,
    ct_mark INTEGER,
    ct_orig TEXT,
    ct_reply TEXT,
    rc INTEGER,
    sk INTEGER,
    sk_state INTEGER,
    sk_oldstate INTEGER,
    detail TEXT NOT NULL
);

-- One row per packet (the life of one sk_buff address).
CREATE TABLE pkt (
    id INTEGER PRIMARY KEY,
    skb INTEGER NOT NULL,
    head INTEGER NOT NULL,
    first_event INTEGER NOT NULL,
    last_event INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    events INTEGER NOT NULL,
    fate TEXT NOT NULL,
    incomplete TEXT,
    drop_reason INTEGER,
    drop_reason_name TEXT,
    drop_location INTEGER,
    drop_symbol TEXT,
    nf_family TEXT,
    nf_hook TEXT,
    nf_table TEXT,
    end_netns INTEGER,
    end_ifindex INTEGER,
    l3 TEXT,
    proto TEXT,
    saddr TEXT,
    daddr TEXT,
    sport INTEGER,
    dport INTEGER,
    tuple TEXT,
    parent_id INTEGER,
    clone_inferred INTEGER,
    forwarded INTEGER NOT NULL,
    netns_count INTEGER NOT NULL,
    nat_count INTEGER NOT NULL
);

CREATE TABLE clone_edge (
    parent_id INTEGER NOT NULL,
    child_id INTEGER NOT NULL PRIMARY KEY,
    inferred INTEGER NOT NULL,
    why TEXT NOT NULL
);

CREATE TABLE nat (
    id INTEGER PRIMARY KEY,
    packet_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    proto TEXT,
    before_saddr TEXT, before_sport INTEGER, before_daddr TEXT, before_dport INTEGER,
    after_saddr TEXT, after_sport INTEGER, after_daddr TEXT, after_dport INTEGER,
    nf_family TEXT, nf_hook TEXT, nf_table TEXT,
    netns INTEGER, ifindex INTEGER,
    ct_orig TEXT, ct_reply TEXT,
    text TEXT NOT NULL
);
