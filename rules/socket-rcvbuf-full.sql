-- id: socket-rcvbuf-full
-- title: The receiving socket's buffer was full: the application does not read fast enough
-- level: ERROR
-- needs: kfree_skb, sock_rcvqueue_full, udp_fail_queue_rcv_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'socket-rcvbuf-full' AS code,
       'the receive buffer of the ' || coalesce(p.proto, '') || ' socket on port ' || coalesce(p.dport, '?') || ' in netns '
           || coalesce(p.netns_name, p.netns) || ' was full (' || p.drop_reason || '): the application does not read fast enough (' || p.tuple || ')' AS message,
       'make the application read faster, or give the socket a bigger buffer: setsockopt SO_RCVBUF (capped by net.core.rmem_max='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.core.rmem_max'), '?')
           || '), or raise net.core.rmem_default='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.core.rmem_default'), '?') AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason IN ('SOCKET_RCVBUFF', 'SOCKET_BACKLOG')
UNION ALL
-- the events say it too when the drop reason was not recorded on that path
SELECT e.packet_id, e.id, 'ERROR', 'socket-rcvbuf-full',
       'socket receive queue full (' || e.probe_name || ') in netns ' || coalesce(e.netns_name, e.netns) || ': ' || e.detail,
       'make the application read faster or raise SO_RCVBUF / net.core.rmem_max'
FROM event e
WHERE e.probe_name IN ('sock_rcvqueue_full', 'udp_fail_queue_rcv_skb')
  AND NOT EXISTS (SELECT 1 FROM packet p WHERE p.id = e.packet_id AND p.drop_reason IN ('SOCKET_RCVBUFF', 'SOCKET_BACKLOG'))
