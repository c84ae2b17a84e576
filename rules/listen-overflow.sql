-- id: listen-overflow
-- title: The listening socket's accept queue was full (listen queue overflow)
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'listen-overflow' AS code,
       'the accept queue of the listener on TCP port ' || coalesce(p.dport, '?') || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' was full: the connection attempt was dropped (' || p.tuple || ')' AS message,
       'the application must accept() faster, or listen() with a bigger backlog; the kernel caps it at net.core.somaxconn='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.core.somaxconn'), '?')
           || ' (check with ss -ltn: Recv-Q near Send-Q means full)' AS advice,
       NULL AS confidence, NULL AS inferred
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason = 'TCP_LISTEN_OVERFLOW'
UNION ALL
-- A SYN to a listener whose accept queue is full gets no drop reason: tcp_conn_request counts
-- TcpExtListenOverflows and returns, and tcp_rcv_state_process consumes the SYN without a SYN-ACK.
-- Such a SYN is found by the SYN-ACK that does not follow it (looked up by the addresses NAT gave the
-- SYN), and proven by the counter: in a namespace where it rose by N, at most N SYNs are named.
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'listen-overflow' AS code,
       'SYN to TCP port ' || p.to_port || ' at ' || p.to_addr || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' consumed without a SYN-ACK: the listener''s accept queue was full'
           || coalesce(' (listener ' || (SELECT l.address || ':' || l.port || ' backlog ' || l.backlog || ', ' || l.queued || ' waiting to be accepted at the end'
                                         FROM listener l WHERE l.netns = p.netns AND l.phase = 'end' AND l.port = p.to_port
                                           AND l.address IN (p.to_addr, '0.0.0.0', '::', '*') LIMIT 1) || ')', '')
           || CASE WHEN overflows > 0 THEN '; TcpExtListenOverflows +' || overflows || ' in this namespace during the recording' ELSE '' END
           || ' (' || p.tuple || ')' AS message,
       'the application must accept() faster, or listen() with a bigger backlog (capped by net.core.somaxconn='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.core.somaxconn'), '?')
           || '); the client retransmits its SYN meanwhile (1 s, 3 s, ...). Watch it with: '
           || CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' ' ELSE '' END
           || 'ss -ltn sport = :' || p.to_port || ' (Recv-Q near Send-Q means full) and nstat -az TcpExtListenOverflows' AS advice,
       CASE WHEN overflows IS NULL THEN 'inferred' END AS confidence,
       CASE WHEN overflows IS NULL THEN 'the bundle has no counter snapshots (recorded by an older recorder): inferred from the missing SYN-ACK' END AS inferred
FROM (
    SELECT p.*, row_number() OVER (PARTITION BY p.netns ORDER BY p.id) AS nth
    FROM (
        SELECT p.*,
               coalesce(d.after_daddr, p.daddr) AS to_addr, coalesce(d.after_dport, p.dport) AS to_port,
               coalesce(n.after_saddr, p.saddr) AS from_addr, coalesce(n.after_sport, p.sport) AS from_port,
               coalesce((SELECT c.delta FROM counter_delta c WHERE c.netns = p.netns AND c.kind = 'snmp' AND c.name = 'TcpExtListenOverflows'),
                        CASE WHEN EXISTS (SELECT 1 FROM counter_sample c WHERE c.netns = p.netns AND c.kind = 'snmp' AND c.name = 'TcpExtListenOverflows') THEN 0 END) AS overflows
        FROM packet p
        JOIN event f ON f.id = p.first_event
        JOIN event l ON l.id = p.last_event
        LEFT JOIN nat_rewrite d ON d.id = (SELECT max(x.id) FROM nat_rewrite x WHERE x.packet_id = p.id AND x.kind = 'DNAT')
        LEFT JOIN nat_rewrite n ON n.id = (SELECT max(x.id) FROM nat_rewrite x WHERE x.packet_id = p.id AND x.kind = 'SNAT')
        -- a SYN (ECN's SYN is 'SEW'), consumed by the listener
        WHERE p.proto = 'TCP' AND p.fate IN ('delivered', 'consumed') AND instr(f.tcp_flags, 'S') > 0 AND instr(f.tcp_flags, '.') = 0
          AND l.probe_name = 'consume_skb' AND coalesce(l.location_symbol, '') LIKE 'tcp_rcv_state_process%'
    ) p
    WHERE NOT EXISTS (SELECT 1 FROM tcp_pkt r JOIN packet q ON q.id = r.packet_id JOIN event qf ON qf.id = q.first_event
                      -- (a filtered recording may see the SYN-ACK only where NAT gave it back the client's address)
                      WHERE r.sport IN (p.to_port, p.dport) AND r.dport IN (p.from_port, p.sport)
                        AND r.saddr IN (p.to_addr, p.daddr) AND r.daddr IN (p.from_addr, p.saddr)
                        AND instr(qf.tcp_flags, 'S') > 0 AND instr(qf.tcp_flags, '.') > 0
                        AND q.first_ts BETWEEN p.first_ts AND p.last_ts + 5000000)
) p
-- the kernel's counter decides where the bundle has it; without it (an older recorder) a SYN whose
-- addresses NAT changed is left out
WHERE nth <= overflows OR (overflows IS NULL AND p.nat_count = 0)
