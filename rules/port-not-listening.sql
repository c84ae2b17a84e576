-- id: port-not-listening
-- title: TCP or UDP packet for a port nobody listens on (NO_SOCKET), answered by a RST or ICMP port unreachable
-- level: ERROR
-- needs: kfree_skb
-- Multicast and broadcast datagrams without a listener are normal (rules/normal-free.sql).
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'port-not-listening' AS code,
       'nothing listens on ' || p.proto || ' port ' || p.dport || ' at ' || p.daddr || ' in netns ' || coalesce(p.netns_name, p.netns)
           || CASE WHEN EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'tcp_send_reset')
                   THEN ': the kernel answered with a TCP RST (connection refused)'
                   WHEN EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'icmp_send' AND e.detail LIKE 'type 3 code 3%')
                   THEN ': the kernel answered with ICMP port unreachable'
                   ELSE '' END
           || ' (' || p.tuple || ')' AS message,
       'start the service on ' || p.proto || ' port ' || p.dport || ' (bound to ' || p.daddr || ' or 0.0.0.0) in netns '
           || coalesce(p.netns_name, p.netns) || ', or send to the port it listens on; check with: '
           || CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' ' ELSE '' END
           || 'ss -' || CASE p.proto WHEN 'TCP' THEN 't' ELSE 'u' END || 'lnp' AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason = 'NO_SOCKET' AND p.proto IN ('TCP', 'UDP')
  AND NOT (p.daddr LIKE '224.%' OR p.daddr LIKE '239.%' OR p.daddr LIKE '255.%' OR p.daddr LIKE '%.255'
           OR lower(p.daddr) LIKE 'ff%')
