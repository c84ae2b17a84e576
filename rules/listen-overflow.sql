-- id: listen-overflow
-- title: The listening socket's accept queue was full (listen queue overflow)
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'listen-overflow' AS code,
       'the accept queue of the listener on TCP port ' || coalesce(p.dport, '?') || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' was full: the connection attempt was dropped (' || p.tuple || ')' AS message,
       'the application must accept() faster, or listen() with a bigger backlog; the kernel caps it at net.core.somaxconn='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.core.somaxconn'), '?')
           || ' (check with ss -ltn: Recv-Q near Send-Q means full)' AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason = 'TCP_LISTEN_OVERFLOW'
