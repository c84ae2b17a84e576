-- id: mtu-too-big
-- title: Packet bigger than the outgoing MTU with Don't Fragment set; ICMP fragmentation needed / packet too big sent
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'mtu-too-big' AS code,
       'packet of ' || (SELECT max(e.len) FROM event e WHERE e.packet_id = p.id) || ' bytes does not fit the MTU of the next link in netns '
           || coalesce(p.netns_name, p.netns) || ' and may not be fragmented (DF)'
           || coalesce(' — smaller MTUs there: ' || (SELECT group_concat(i.name || ' mtu ' || i.mtu, ', ') FROM bundle_interface i
                   WHERE i.netns = p.netns AND i.mtu < (SELECT max(e.len) FROM event e WHERE e.packet_id = p.id)), '')
           || '; ICMP "fragmentation needed" went back to ' || p.saddr || ' (' || p.tuple || ')' AS message,
       'make the sender use smaller packets (lower its MTU or MSS, e.g. iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu), or raise the MTU of the smaller link; make sure ICMP fragmentation-needed reaches the sender so path MTU discovery works' AS advice
FROM packet p
WHERE (p.fate = 'dropped' AND p.drop_reason = 'PKT_TOO_BIG')
   OR p.id IN (SELECT e.packet_id FROM event e WHERE e.probe_name = 'icmp_send' AND e.detail LIKE 'type 3 code 4%')
