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
    hook INTEGER, priority INTEGER, netns INTEGER, attached INTEGER, error TEXT
);
CREATE TABLE bundle_drop_reason (value INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE bundle_rst_reason (value INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE bundle_symbol (address INTEGER PRIMARY KEY, name TEXT, offset INTEGER);
-- kernel stacks of drops (--drop-stack): a row per frame, innermost first
CREATE TABLE bundle_stack (id INTEGER, depth INTEGER, address INTEGER, PRIMARY KEY (id, depth));
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
CREATE TABLE bundle_provenance (id INTEGER PRIMARY KEY, kind TEXT, created_unix_ns INTEGER, tool_version TEXT,
                                source_uuid TEXT, source_records INTEGER, records INTEGER, detail TEXT);

-- The kernel's counters in the start and end snapshots, parsed at decode (Decode/CounterSamples.swift);
-- the view counter_delta pairs them. kind 'snmp': `name` as nstat names it (TcpExtListenOverflows,
-- Ip6InNoRoutes); 'iptables', 'ip6tables': a rule (`name` its text without counters, as
-- iptables-save prints it) or a chain policy ('policy DROP') of table `tbl` and chain `chain`; 'nft': a
-- rule with a counter statement (`name` the rule without it) of table `tbl` ('inet filter') and chain
-- `chain`, `hook` the hook of its base chain ('input'). `seq` tells identical rules of one chain apart (1, 2, ...). `value` is the counter (packets for
-- rules), `bytes` the bytes of a rule.
CREATE TABLE counter_sample (
    netns INTEGER NOT NULL, phase TEXT NOT NULL, kind TEXT NOT NULL, tbl TEXT, chain TEXT, hook TEXT, seq INTEGER,
    name TEXT NOT NULL, value INTEGER NOT NULL, bytes INTEGER
);
-- TCP listening sockets in the start and end snapshots (`ss -ltn`): `queued` connections waiting in the
-- accept queue (Recv-Q), `backlog` its size (Send-Q).
CREATE TABLE listener (
    netns INTEGER NOT NULL, phase TEXT NOT NULL, address TEXT NOT NULL, port INTEGER NOT NULL,
    queued INTEGER, backlog INTEGER
);

-- Events per attach point, counted at decode (probe, and family/hook for netfilter brackets).
CREATE TABLE probe_events (
    probe INTEGER NOT NULL, family INTEGER, hook INTEGER, name TEXT NOT NULL, events INTEGER NOT NULL
);

-- The records. They are not rows: the virtual table `ev` (module skbtrail_events,
-- Sources/SkbtrailAnalysis/Decode/EventTable.swift) decodes them on demand from the bundle's chunks,
-- copied here, with one row per record in time order (id = rank by ts) and the columns below. What the
-- decode alone knows of a record is stored per chunk: its id, its packet and its step.
--   id, ts, probe, probe_name, cpu, pid, tid, comm, netns, ifindex, skb, head, len, mark, protocol,
--   l3_from, flags, packet_id, step, l3, l4, proto, vlan, saddr, daddr, sport, dport, tcp_flags, tcp_seq,
--   tcp_ack, icmp_type, icmp_code, icmp_id, icmp_seq, ip_id, ttl, tunnel, inner_tuple, reason, location,
--   nf_family, nf_hook, nf_bracket, nf_priority, nf_in_ifindex, nf_out_ifindex, ct_info, ct_status,
--   ct_mark, ct_orig, ct_reply, rc, sk, sk_state, sk_oldstate, detail
CREATE TABLE ev_chunk (
    id           INTEGER PRIMARY KEY,  -- the bundle's chunk id
    first_record INTEGER NOT NULL,     -- number of its first event record among all of them, from 0
    records      INTEGER NOT NULL,     -- event records in it
    codec        TEXT NOT NULL,
    raw_size     INTEGER NOT NULL,
    data         BLOB NOT NULL,        -- the chunk as the bundle stores it
    carry        BLOB NOT NULL,        -- packet bytes earlier chunks left for it (RecordWalker.carry)
    ids          BLOB NOT NULL,        -- per record, u32: its event id
    packets      BLOB NOT NULL,        -- per record, u32: its packet id, 0 for none
    steps        BLOB NOT NULL         -- per record, u32: its step in the packet, 0 for none
);
-- Record numbers by event id: block B holds those of ids B * 65536 + 1 and up, u32 each.
CREATE TABLE ev_id (block INTEGER PRIMARY KEY, records BLOB NOT NULL);
-- Event ids by probe name, ascending, u32 each, in blocks of at most 65536.
CREATE TABLE ev_name (name TEXT NOT NULL, block INTEGER NOT NULL, ids BLOB NOT NULL, PRIMARY KEY (name, block));
CREATE VIRTUAL TABLE ev USING skbtrail_events;

-- One row per packet (the life of one sk_buff address), served by the virtual table `pkt` (module
-- skbtrail_packets, Decode/PacketTable.swift) from packed segments of 4096 packets (PacketStore.swift):
--   id, skb, head, first_event, last_event, first_ts, last_ts, events, fate, incomplete, drop_reason,
--   drop_reason_name, drop_location, drop_symbol, nf_family, nf_hook, nf_table, end_netns, end_ifindex,
--   l3, proto, saddr, daddr, sport, dport, tuple, parent_id, clone_inferred, forwarded, netns_count,
--   nat_count, records (u32 per step: the record number of its event)
-- parent_id and clone_inferred come from clone_edge.
CREATE TABLE pkt_segment (id INTEGER PRIMARY KEY, packets INTEGER NOT NULL, data BLOB NOT NULL);
-- Where each packet is: block B holds the entries of packet ids B * 65536 + 1 and up, u32 each:
-- segment * 4096 + slot + 1, 0 for none.
CREATE TABLE pkt_index (block INTEGER PRIMARY KEY, entries BLOB NOT NULL);
-- The packets by the value of a column rules select on (fate, drop_reason_name, proto): the ids with
-- `value` in column `col`, ascending, u32 each, 65536 to a block; `pkt` serves `col = ...` from them.
-- pkt_value_col names the columns listed (a column with too many values is not).
CREATE TABLE pkt_value (col TEXT NOT NULL, value TEXT NOT NULL, block INTEGER NOT NULL, ids BLOB NOT NULL,
                        PRIMARY KEY (col, value, block));
CREATE TABLE pkt_value_col (col TEXT PRIMARY KEY);
CREATE VIRTUAL TABLE pkt USING skbtrail_packets;

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
