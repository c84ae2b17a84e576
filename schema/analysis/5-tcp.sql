-- TCP connections and their samples, decoded from the socket probes (tcp_probe, tcp_retransmit_skb,
-- tcp_send_reset, tcp_receive_reset, tcp_bad_csum, inet_sock_set_state, sock_rcvqueue_full).
-- Tables are private (written by Sources/SkbtrailAnalysis/Decode/TCPRows.swift); the views tcp_sample and tcp_connection are the
-- documented interface (docs/sql.md).

-- One row per socket life: a struct sock address in a netns, from its first record to its close (an
-- address reused after CLOSE, or seen with another 4-tuple, is a new connection). Records without a
-- socket (a reset answering a packet for no socket, a bad checksum) are keyed by the packet's tuple.
CREATE TABLE tcp_conn (
    id INTEGER PRIMARY KEY,
    netns INTEGER NOT NULL,
    sk INTEGER,
    family INTEGER,
    laddr TEXT,
    lport INTEGER,
    raddr TEXT,
    rport INTEGER
);

-- One row per socket record.
CREATE TABLE tcp_ev (
    event_id INTEGER PRIMARY KEY,
    conn_id INTEGER NOT NULL,
    kind TEXT NOT NULL,          -- probe, retransmit, send_reset, receive_reset, bad_csum, state, rcvqueue_full
    state INTEGER,
    oldstate INTEGER,
    reason INTEGER,              -- send_reset: enum sk_rst_reason
    srtt_us INTEGER,             -- the kernel's srtt_us >> 3: smoothed RTT in microseconds
    snd_cwnd INTEGER,
    snd_una INTEGER,
    snd_nxt INTEGER,
    packets_out INTEGER,
    retrans_out INTEGER,
    total_retrans INTEGER,
    rmem INTEGER,                -- rcvqueue_full: receive memory allocated
    rcvbuf INTEGER               -- rcvqueue_full: sk_rcvbuf
);
CREATE INDEX tcp_ev_conn ON tcp_ev (conn_id, kind);

-- The TCP window field of each TCP packet but resets, from its first step with a full TCP header.
CREATE TABLE tcp_win (
    packet_id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    window INTEGER NOT NULL
);

-- The TCP packets by 4-tuple (of their first headers), so a connection finds its segments by index.
CREATE TABLE tcp_pkt (
    packet_id INTEGER PRIMARY KEY,
    saddr TEXT NOT NULL,
    sport INTEGER NOT NULL,
    daddr TEXT NOT NULL,
    dport INTEGER NOT NULL,
    dropped INTEGER NOT NULL
);

CREATE TABLE tcp_state_name (value INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO tcp_state_name VALUES (1, 'ESTABLISHED'), (2, 'SYN_SENT'), (3, 'SYN_RECV'), (4, 'FIN_WAIT1'),
    (5, 'FIN_WAIT2'), (6, 'TIME_WAIT'), (7, 'CLOSE'), (8, 'CLOSE_WAIT'), (9, 'LAST_ACK'), (10, 'LISTEN'),
    (11, 'CLOSING'), (12, 'NEW_SYN_RECV');

CREATE VIEW tcp_sample AS
SELECT t.event_id, e.ts, e.ts - r.started_ns AS t_ns, e.ts + r.boot_to_unix_ns AS unix_ns,
       t.conn_id AS connection_id, t.kind, e.probe_name,
       c.netns, n.name AS netns_name,
       CASE WHEN c.sk IS NULL THEN NULL ELSE printf('%x', c.sk) END AS sk,
       c.laddr, c.lport, c.raddr, c.rport,
       s.name AS state, os.name AS oldstate,
       t.srtt_us, t.snd_cwnd AS cwnd, t.snd_una, t.snd_nxt, t.packets_out, t.retrans_out, t.total_retrans,
       CASE WHEN t.kind = 'send_reset' THEN coalesce(rr.name, 'reason ' || t.reason) END AS rst_reason,
       CASE WHEN t.kind = 'send_reset' THEN t.reason END AS rst_reason_value,
       t.rmem, t.rcvbuf,
       e.packet_id, e.len, e.tcp_flags, e.tcp_seq, e.tcp_ack, w.window,
       e.detail
FROM tcp_ev t
JOIN ev e ON e.id = t.event_id
JOIN tcp_conn c ON c.id = t.conn_id
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = c.netns
LEFT JOIN tcp_state_name s ON s.value = t.state
LEFT JOIN tcp_state_name os ON os.value = t.oldstate
LEFT JOIN bundle_rst_reason rr ON rr.value = t.reason AND t.kind = 'send_reset'
LEFT JOIN tcp_win w ON w.packet_id = e.packet_id;

-- Segments of a connection are the packets with its 4-tuple (sent) or the reverse (received), whatever
-- netns they were seen in.
CREATE VIEW tcp_connection AS
SELECT c.id, c.netns, n.name AS netns_name,
       CASE WHEN c.sk IS NULL THEN NULL ELSE printf('%x', c.sk) END AS sk,
       CASE c.family WHEN 2 THEN 'ipv4' WHEN 10 THEN 'ipv6' END AS family,
       c.laddr, c.lport, c.raddr, c.rport,
       CASE WHEN c.family = 10 THEN '[' || c.laddr || ']:' || c.lport || ' > [' || c.raddr || ']:' || c.rport
            ELSE c.laddr || ':' || c.lport || ' > ' || c.raddr || ':' || c.rport END AS tuple,
       a.first_ts, a.last_ts, a.first_ts - r.started_ns AS t_ns, a.last_ts - a.first_ts AS duration_ns,
       (SELECT group_concat(x, ' ') FROM (
            SELECT coalesce(os.name, '?') || '>' || coalesce(s.name, '?') AS x FROM tcp_ev t
            LEFT JOIN tcp_state_name s ON s.value = t.state LEFT JOIN tcp_state_name os ON os.value = t.oldstate
            WHERE t.conn_id = c.id AND t.kind = 'state' ORDER BY t.event_id)) AS states,
       (SELECT s.name FROM tcp_ev t JOIN tcp_state_name s ON s.value = t.state
        WHERE t.conn_id = c.id AND t.state IS NOT NULL AND t.kind IN ('probe', 'state', 'retransmit', 'send_reset', 'receive_reset')
        ORDER BY t.event_id DESC LIMIT 1) AS last_state,
       a.samples, a.rtt_samples, a.srtt_min_us,
       (SELECT m.srtt_us FROM (
            SELECT t.srtt_us, row_number() OVER (ORDER BY t.srtt_us) AS rn, count(*) OVER () AS n FROM tcp_ev t
            WHERE t.conn_id = c.id AND t.kind = 'probe' AND t.srtt_us > 0) m
        WHERE m.rn = (m.n + 1) / 2) AS srtt_median_us,
       a.srtt_max_us,
       (SELECT t.srtt_us FROM tcp_ev t WHERE t.conn_id = c.id AND t.kind = 'probe' AND t.srtt_us > 0
        ORDER BY t.event_id DESC LIMIT 1) AS srtt_last_us,
       a.cwnd_min, a.cwnd_max,
       (SELECT t.snd_cwnd FROM tcp_ev t WHERE t.conn_id = c.id AND t.kind IN ('probe', 'retransmit') AND t.snd_cwnd > 0
        ORDER BY t.event_id DESC LIMIT 1) AS cwnd_last,
       a.retransmits, a.total_retrans_max AS total_retrans,
       a.resets_sent, a.resets_received,
       (SELECT coalesce(rr.name, 'reason ' || t.reason) FROM tcp_ev t LEFT JOIN bundle_rst_reason rr ON rr.value = t.reason
        WHERE t.conn_id = c.id AND t.kind = 'send_reset' ORDER BY t.event_id DESC LIMIT 1) AS rst_reason,
       a.bad_csum, a.rcvqueue_full,
       (((SELECT t.snd_una FROM tcp_ev t WHERE t.conn_id = c.id AND t.kind = 'probe' ORDER BY t.event_id DESC LIMIT 1)
         - (SELECT t.snd_una FROM tcp_ev t WHERE t.conn_id = c.id AND t.kind = 'probe' ORDER BY t.event_id LIMIT 1))
        + 4294967296) % 4294967296 AS bytes_acked,
       -- a segment and its clones (TCP transmits a clone and keeps the original for retransmission) count
       -- once; it was dropped when any of them was
       (SELECT count(*) FROM tcp_pkt p WHERE p.sport = c.lport AND p.dport = c.rport AND p.saddr = c.laddr AND p.daddr = c.raddr
            AND NOT EXISTS (SELECT 1 FROM clone_edge e WHERE e.child_id = p.packet_id)) AS segments_out,
       (SELECT count(*) FROM tcp_pkt p WHERE p.sport = c.rport AND p.dport = c.lport AND p.saddr = c.raddr AND p.daddr = c.laddr
            AND NOT EXISTS (SELECT 1 FROM clone_edge e WHERE e.child_id = p.packet_id)) AS segments_in,
       (SELECT count(*) FROM tcp_pkt p WHERE p.sport = c.lport AND p.dport = c.rport AND p.saddr = c.laddr AND p.daddr = c.raddr
            AND NOT EXISTS (SELECT 1 FROM clone_edge e WHERE e.child_id = p.packet_id)
            AND (p.dropped = 1 OR EXISTS (SELECT 1 FROM clone_edge e JOIN tcp_pkt k ON k.packet_id = e.child_id
                                          WHERE e.parent_id = p.packet_id AND k.dropped = 1))) AS segments_out_dropped,
       (SELECT count(*) FROM tcp_pkt p JOIN tcp_win w ON w.packet_id = p.packet_id
        WHERE p.sport = c.lport AND p.dport = c.rport AND p.saddr = c.laddr AND p.daddr = c.raddr
            AND w.window = 0) AS zero_window_sent,
       (SELECT count(*) FROM tcp_pkt p JOIN tcp_win w ON w.packet_id = p.packet_id
        WHERE p.sport = c.rport AND p.dport = c.lport AND p.saddr = c.raddr AND p.daddr = c.laddr
            AND w.window = 0) AS zero_window_received
FROM tcp_conn c
CROSS JOIN bundle_recording r
LEFT JOIN bundle_netns n ON n.inode = c.netns
JOIN (SELECT conn_id, min(e.ts) AS first_ts, max(e.ts) AS last_ts,
             sum(t.kind = 'probe') AS samples,
             sum(t.kind = 'probe' AND t.srtt_us > 0) AS rtt_samples,
             min(CASE WHEN t.kind = 'probe' AND t.srtt_us > 0 THEN t.srtt_us END) AS srtt_min_us,
             max(CASE WHEN t.kind = 'probe' AND t.srtt_us > 0 THEN t.srtt_us END) AS srtt_max_us,
             min(CASE WHEN t.kind IN ('probe', 'retransmit') AND t.snd_cwnd > 0 THEN t.snd_cwnd END) AS cwnd_min,
             max(CASE WHEN t.kind IN ('probe', 'retransmit') THEN t.snd_cwnd END) AS cwnd_max,
             sum(t.kind = 'retransmit') AS retransmits,
             max(t.total_retrans) AS total_retrans_max,
             sum(t.kind = 'send_reset') AS resets_sent,
             sum(t.kind = 'receive_reset') AS resets_received,
             sum(t.kind = 'bad_csum') AS bad_csum,
             sum(t.kind = 'rcvqueue_full') AS rcvqueue_full
      FROM tcp_ev t JOIN ev e ON e.id = t.event_id GROUP BY conn_id) a ON a.conn_id = c.id;
