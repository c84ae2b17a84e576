-- id: no-route
-- title: No route to the destination (received packet to forward, or a packet to send)
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id,
       CASE WHEN linklocal THEN 'INFO' ELSE 'ERROR' END AS level, CASE WHEN linklocal THEN 'normal-free' ELSE 'no-route' END AS code,
       CASE WHEN linklocal THEN 'link-local multicast to ' || p.daddr || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' found no route (' || p.drop_reason || '): it is never routed, only sent on a link, and its interface had no multicast route yet (coming up) or was down: normal'
       ELSE 'no route to ' || p.daddr || ' in netns ' || coalesce(p.netns_name, p.netns)
           || CASE WHEN p.drop_reason = 'IP_INNOROUTES' THEN ' for a packet received on ' || coalesce(p.ifname, '?') ELSE '' END
           || CASE WHEN EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'icmp_send' AND e.detail LIKE 'type 3 %')
                   THEN '; the kernel answered ICMP destination unreachable' ELSE '' END
           || ' (' || p.tuple || ')' END AS message,
       CASE WHEN linklocal THEN NULL ELSE 'add a route for ' || p.daddr || ' (or a default route) in netns ' || coalesce(p.netns_name, p.netns)
           || ': ip route add ' || p.daddr || ' via GATEWAY; its routes when the recording started: '
           || coalesce((SELECT group_concat(l.line, ' | ') FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
                        AND l.source = CASE WHEN p.l3 = 'ipv6' THEN 'ip6-route' ELSE 'ip-route' END
                        AND l.line NOT LIKE 'local %' AND l.line NOT LIKE 'broadcast %' AND l.line NOT LIKE '% table local %'
                        AND l.line NOT LIKE 'multicast %' AND l.line NOT LIKE 'anycast %'), 'none') END AS advice
-- link-local multicast control traffic (MLD, neighbour and router discovery to ff02::, IGMP and the
-- like to 224.0.0.x) is never routed: a no-route for it is an interface without its multicast route yet
FROM (SELECT p.*, ((lower(p.daddr) LIKE 'ff02:%' AND p.proto = 'ICMPv6') OR p.daddr LIKE '224.0.0.%') AS linklocal FROM packet p) p
WHERE p.fate = 'dropped' AND p.drop_reason IN ('IP_INNOROUTES', 'IP_OUTNOROUTES')
  AND coalesce(p.drop_symbol, '') NOT LIKE 'ip6_pkt_prohibit%'  -- a prohibit route or rule: rules/route-refused.sql
