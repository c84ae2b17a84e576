-- The documented interface of the analysis database (docs/sql.md). Columns are only ever added.
-- Times: *_ns are CLOCK_BOOTTIME nanoseconds as recorded; t_ns is relative to the recording's start;
-- *_unix_ns add the bundle's boot-to-wall-clock offset.

CREATE VIEW recording AS
SELECT r.uuid, r.format_version, r.recorder_version, r.host, r.kernel_release, r.kernel_version, r.machine,
       r.command_line, r.filters, r.snaplen, r.codec,
       r.started_ns, r.ended_ns,
       r.started_ns + r.boot_to_unix_ns AS started_unix_ns,
       CASE WHEN r.ended_ns IS NULL THEN NULL ELSE r.ended_ns + r.boot_to_unix_ns END AS ended_unix_ns,
       r.stop_reason,
       r.boot_to_unix_ns,
       (SELECT count(*) FROM bundle_chunk) AS chunks,
       CAST((SELECT value FROM meta WHERE key = 'events') AS INTEGER) AS events,
       CAST((SELECT value FROM meta WHERE key = 'packets') AS INTEGER) AS packets,
       CAST((SELECT value FROM meta WHERE key = 'unknown_records') AS INTEGER) AS unknown_records,
       (SELECT coalesce(sum(events), 0) FROM bundle_lost) AS lost_events
FROM bundle_recording r;

CREATE VIEW probe AS
SELECT p.probe, p.name, p.tier, p.kind, p.target, p.family, p.hook, p.priority, p.netns, p.attached, p.error,
       coalesce((SELECT sum(e.events) FROM probe_events e
                 WHERE e.probe = p.probe AND (p.family IS NULL OR (e.family = p.family AND e.hook = p.hook))), 0)
           AS events
FROM bundle_probe p;

CREATE VIEW event AS
SELECT e.id, e.ts, e.ts - r.started_ns AS t_ns, e.ts + r.boot_to_unix_ns AS unix_ns,
       e.probe, e.probe_name, e.cpu, e.pid, e.tid, e.comm,
       e.netns, n.name AS netns_name, e.ifindex, i.name AS ifname,
       printf('%x', e.skb) AS skb, printf('%x', e.head) AS head, e.len, e.mark, e.protocol, e.flags,
       e.packet_id, e.step,
       e.l3, e.l4, e.proto, e.vlan, e.saddr, e.daddr, e.sport, e.dport, e.tcp_flags, e.tcp_seq, e.tcp_ack,
       e.icmp_type, e.icmp_code, e.icmp_id, e.icmp_seq, e.ip_id, e.ttl, e.tunnel, e.inner_tuple,
       e.reason, CASE WHEN e.probe = 10 THEN dr.name END AS drop_reason,
       CASE WHEN e.location IS NULL THEN NULL ELSE printf('%x', e.location) END AS location,
       s.name AS location_symbol,
       e.nf_family, e.nf_hook, e.nf_bracket, e.nf_priority, e.nf_in_ifindex, e.nf_out_ifindex,
       e.ct_info, e.ct_status, e.ct_mark, e.ct_orig, e.ct_reply,
       e.rc, CASE WHEN e.sk IS NULL THEN NULL ELSE printf('%x', e.sk) END AS sk, e.sk_state, e.sk_oldstate,
       e.detail, e.stack
FROM ev e
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = e.netns
LEFT JOIN bundle_interface i ON i.netns = e.netns AND i.ifindex = e.ifindex
LEFT JOIN bundle_drop_reason dr ON dr.value = e.reason
LEFT JOIN bundle_symbol s ON s.address = e.location;

CREATE VIEW packet AS
SELECT p.id, printf('%x', p.skb) AS skb, printf('%x', p.head) AS head,
       p.first_ts, p.last_ts, p.first_ts - r.started_ns AS t_ns, p.last_ts - p.first_ts AS duration_ns,
       p.events, p.first_event, p.last_event,
       p.fate, p.incomplete,
       p.drop_reason_name AS drop_reason, p.drop_reason AS drop_reason_value,
       CASE WHEN p.drop_location IS NULL THEN NULL ELSE printf('%x', p.drop_location) END AS drop_location,
       p.drop_symbol, p.nf_family, p.nf_hook, p.nf_table,
       p.end_netns AS netns, n.name AS netns_name, p.end_ifindex AS ifindex, i.name AS ifname,
       p.l3, p.proto, p.saddr, p.daddr, p.sport, p.dport, p.tuple,
       p.parent_id, p.clone_inferred, p.forwarded, p.netns_count, p.nat_count
FROM pkt p
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = p.end_netns
LEFT JOIN bundle_interface i ON i.netns = p.end_netns AND i.ifindex = p.end_ifindex;

CREATE VIEW path_step AS
SELECT e.packet_id, e.step, e.id AS event_id, e.ts,
       e.ts - p.first_ts AS rel_ns, e.ts - r.started_ns AS t_ns, e.ts + r.boot_to_unix_ns AS unix_ns,
       e.probe, e.probe_name, e.netns, n.name AS netns_name, e.ifindex, i.name AS ifname,
       e.cpu, e.pid, e.comm, printf('%x', e.skb) AS skb, e.len, e.detail,
       (SELECT group_concat(x.text, '; ') FROM nat x WHERE x.event_id = e.id) AS nat,
       e.ts - (SELECT b.ts FROM ev b WHERE b.packet_id = e.packet_id AND b.step = e.step - 1) AS hop_ns
FROM ev e
JOIN pkt p ON p.id = e.packet_id
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = e.netns
LEFT JOIN bundle_interface i ON i.netns = e.netns AND i.ifindex = e.ifindex;

CREATE VIEW clone AS
SELECT parent_id, child_id, inferred, why FROM clone_edge;

CREATE VIEW nat_rewrite AS
SELECT x.id, x.packet_id, x.event_id, x.ts, x.ts - r.started_ns AS t_ns, x.kind, x.proto,
       x.before_saddr, x.before_sport, x.before_daddr, x.before_dport,
       x.after_saddr, x.after_sport, x.after_daddr, x.after_dport,
       x.nf_family, x.nf_hook, x.nf_table, x.netns, n.name AS netns_name, x.ifindex, i.name AS ifname,
       x.ct_orig, x.ct_reply, x.text
FROM nat x
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = x.netns
LEFT JOIN bundle_interface i ON i.netns = x.netns AND i.ifindex = x.ifindex;

CREATE VIEW lost AS
SELECT cpu, events FROM bundle_lost;

-- How this bundle was made from another (skbtrail slice, skbtrail redact): one row per step, oldest first.
CREATE VIEW provenance AS
SELECT id, kind, created_unix_ns, tool_version, source_uuid, source_records, records, detail FROM bundle_provenance;

-- The kernel's counters that changed during the recording, per namespace: the end snapshot's value
-- minus the start's (a namespace, rule or counter present in only one of them is left out). kind 'snmp'
-- (name: TcpExtListenOverflows, UdpRcvbufErrors, Ip6InNoRoutes, ... as nstat names them), 'iptables' and
-- 'ip6tables' (tbl, chain, name: the rule as iptables-save prints it, or 'policy DROP'), 'nft' (tbl
-- 'inet filter', chain, name: the rule with a counter). `delta` is packets for rules.
CREATE VIEW counter_delta AS
SELECT s.netns, n.name AS netns_name, s.kind, s.tbl, s.chain, s.hook, s.seq, s.name,
       s.value AS start_value, e.value AS end_value, e.value - s.value AS delta, e.bytes - s.bytes AS bytes_delta
FROM counter_sample s
JOIN counter_sample e ON e.phase = 'end' AND e.netns = s.netns AND e.kind = s.kind AND e.name = s.name
                     AND e.tbl IS s.tbl AND e.chain IS s.chain AND e.seq IS s.seq
LEFT JOIN bundle_netns n ON n.inode = s.netns
WHERE s.phase = 'start' AND e.value != s.value;

-- The kernel stacks of drops (skbtrail-record --drop-stack): a row per frame, innermost first. ev.stack
-- (kfree_skb) names the stack; frame is "symbol+0xoffset", or the address where no symbol is known.
CREATE VIEW stack_frame AS
SELECT s.id AS stack, s.depth, s.address, y.name AS symbol, y.offset,
       CASE WHEN y.name IS NOT NULL THEN y.name || '+0x' || printf('%x', y.offset) ELSE printf('0x%x', s.address) END AS frame
FROM bundle_stack s LEFT JOIN bundle_symbol y ON y.address = s.address;
