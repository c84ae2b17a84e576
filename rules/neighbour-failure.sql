-- id: neighbour-failure
-- title: Address resolution (ARP/NDP) of the next hop failed: the packets waiting for it are dropped
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'neighbour-failure' AS code,
       'the next hop on ' || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns) || ' did not answer '
           || CASE WHEN p.l3 = 'ipv6' THEN 'neighbour discovery' ELSE 'ARP' END || ' (' || p.drop_reason || '): ' || p.tuple || ' was dropped'
           || coalesce('; neighbour entries at the end: ' || (SELECT group_concat(l.line, ' | ') FROM snapshot_line l WHERE l.netns = p.netns
                   AND l.phase = 'end' AND l.source = 'ip-neigh' AND (l.line LIKE '%FAILED%' OR l.line LIKE '%INCOMPLETE%')), '') AS message,
       'check that the gateway (ip route get ' || p.daddr || ') exists on that link, is up and answers ARP; a wrong gateway address or a down peer are the usual causes' AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason IN ('NEIGH_FAILED', 'NEIGH_QUEUEFULL', 'NEIGH_DEAD', 'NEIGH_CREATEFAIL')
UNION ALL
SELECT e.packet_id, e.id, 'ERROR', 'neighbour-failure',
       'a packet was sent to a dead neighbour entry on ' || coalesce(e.ifname, '?') || ' in netns ' || coalesce(e.netns_name, e.netns) || ' (' || e.detail || ')',
       'check that the next hop exists and answers ARP/NDP (ip neigh show)'
FROM event e
WHERE e.probe_name = 'neigh_event_send_dead'
  AND NOT EXISTS (SELECT 1 FROM packet p WHERE p.id = e.packet_id AND p.drop_reason LIKE 'NEIGH_%')
