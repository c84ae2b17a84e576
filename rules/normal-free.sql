-- id: normal-free
-- title: Frees that look like drops but are normal (echo replies after the ping socket's copy, ND/RS with no listener, multicast with no listener)
-- level: INFO
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'INFO' AS level, 'normal-free' AS code,
       CASE
         WHEN p.proto = 'ICMP' AND e.icmp_type = 0
           THEN 'echo reply freed with NO_SOCKET after the ping socket' || CASE WHEN EXISTS (SELECT 1 FROM clone c WHERE c.parent_id = p.id) THEN ' took its copy (clone)' ELSE ' had its chance (a stray reply when nobody waits)' END || ': normal'
         WHEN p.proto = 'ICMPv6' AND e.icmp_type = 129
           THEN 'ICMPv6 echo reply freed with NO_SOCKET after the ping socket took its copy: normal'
         WHEN p.proto = 'ICMPv6' AND e.icmp_type BETWEEN 133 AND 137
           THEN 'IPv6 neighbour discovery / router solicitation (type ' || e.icmp_type || ') freed with NO_SOCKET: no raw socket wanted it, the kernel handled it: normal'
         WHEN p.proto IN ('ICMP', 'ICMPv6')
           THEN 'ICMP message (type ' || coalesce(e.icmp_type, '?') || ') freed with NO_SOCKET after the kernel handled it: normal'
         ELSE p.proto || ' datagram to multicast/broadcast ' || p.daddr || ':' || coalesce(p.dport, '') || ' with no listener: normal'
       END AS message,
       NULL AS advice
FROM packet p
JOIN event e ON e.id = p.first_event
WHERE p.fate = 'dropped' AND p.drop_reason = 'NO_SOCKET'
  AND (p.proto IN ('ICMP', 'ICMPv6')
       OR (p.proto IN ('TCP', 'UDP') AND (p.daddr LIKE '224.%' OR p.daddr LIKE '239.%' OR p.daddr LIKE '255.%'
                                          OR p.daddr LIKE '%.255' OR lower(p.daddr) LIKE 'ff%'))
       OR p.proto IS NULL OR p.proto NOT IN ('TCP', 'UDP', 'ICMP', 'ICMPv6'))
