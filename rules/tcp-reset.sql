-- id: tcp-reset
-- title: TCP resets sent by this host (with the kernel's reset reason) or received from the peer
-- level: WARN
-- needs: tcp_send_reset, tcp_receive_reset
-- A RST answering a packet nobody listens for is the rule port-not-listening's; here it is INFO.
SELECT e.packet_id, e.id AS event_id,
       CASE WHEN p.drop_reason = 'NO_SOCKET' THEN 'INFO' ELSE 'WARN' END AS level,
       'tcp-reset-sent' AS code,
       'TCP reset sent in netns ' || coalesce(e.netns_name, e.netns)
           || coalesce(' answering ' || e.saddr || ':' || e.sport || ' > ' || e.daddr || ':' || e.dport, '')
           || ' (' || e.detail || ')'
           || CASE WHEN p.drop_reason = 'NO_SOCKET' THEN ': no socket for that port' ELSE '' END AS message,
       CASE WHEN p.drop_reason = 'NO_SOCKET' THEN NULL
            ELSE 'the reason says who reset: NOT_SPECIFIED with no socket is a closed port, an application close with unread data or SO_LINGER 0 is an active reset; check the application on this side' END AS advice
FROM event e
LEFT JOIN packet p ON p.id = e.packet_id
WHERE e.probe_name = 'tcp_send_reset'
UNION ALL
SELECT e.packet_id, e.id, 'WARN', 'tcp-reset-received',
       'TCP reset received in netns ' || coalesce(e.netns_name, e.netns) || ': ' || e.detail || ' — the peer refused or aborted the connection',
       'see the peer: a closed port (connection refused), an application abort, or a firewall REJECT --reject-with tcp-reset on the way'
FROM event e
WHERE e.probe_name = 'tcp_receive_reset'
