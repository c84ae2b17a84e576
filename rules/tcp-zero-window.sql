-- id: tcp-zero-window
-- title: Zero-window stall: a receiver advertised a TCP window of 0, so its sender had to stop
-- level: WARN
-- needs: tcp_probe
-- From the window field of the recorded segments (resets excluded), per advertising connection; a
-- remote advertiser (no socket of it in the recording) is reported on the local connection that received it.
SELECT (SELECT p.id FROM packet p JOIN tcp_win w ON w.packet_id = p.id
        WHERE p.saddr = c.laddr AND p.sport = c.lport AND p.daddr = c.raddr AND p.dport = c.rport AND w.window = 0 ORDER BY p.id LIMIT 1) AS packet_id,
       NULL AS event_id, 'WARN' AS level, 'tcp-zero-window' AS code,
       'TCP ' || c.tuple || ' in netns ' || coalesce(c.netns_name, c.netns) || ' advertised a zero window '
           || c.zero_window_sent || ' times: its receive buffer was full, the peer had to stop sending'
           || CASE WHEN c.rcvqueue_full > 0 THEN ' (receive queue full ' || c.rcvqueue_full || ' times)' ELSE '' END AS message,
       'the application on this side does not read fast enough (see when it reads: skbtrail latency FILE --from netif_receive_skb --to skb_copy_datagram_iovec); or give it a bigger buffer: SO_RCVBUF, net.ipv4.tcp_rmem' AS advice
FROM tcp_connection c WHERE c.zero_window_sent > 0
UNION ALL
SELECT (SELECT p.id FROM packet p JOIN tcp_win w ON w.packet_id = p.id
        WHERE p.saddr = c.raddr AND p.sport = c.rport AND p.daddr = c.laddr AND p.dport = c.lport AND w.window = 0 ORDER BY p.id LIMIT 1),
       NULL, 'WARN', 'tcp-zero-window',
       'TCP ' || c.tuple || ' in netns ' || coalesce(c.netns_name, c.netns) || ': the peer advertised a zero window '
           || c.zero_window_received || ' times, so this side could not send',
       'the peer''s application does not read fast enough, or its receive buffer is small: look at the peer (ss -tmi there)'
FROM tcp_connection c
WHERE c.zero_window_received > 0
  AND NOT EXISTS (SELECT 1 FROM tcp_connection o WHERE o.laddr = c.raddr AND o.lport = c.rport AND o.raddr = c.laddr AND o.rport = c.lport)
