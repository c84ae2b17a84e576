-- id: ttl-expired
-- title: TTL (hop limit) ran out while forwarding; ICMP time exceeded sent (or an invalid IP header)
-- level: ERROR
-- needs: kfree_skb, icmp_send
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level,
       CASE WHEN expired THEN 'ttl-expired' ELSE 'bad-ip-header' END AS code,
       CASE WHEN expired
            THEN 'TTL expired in netns ' || coalesce(p.netns_name, p.netns) || ' (router ' || coalesce(p.ifname, '?') || '): the packet arrived with TTL '
                 || coalesce(ttl, '?') || ' and cannot be forwarded further; ICMP time exceeded went back to ' || p.saddr || ' (' || p.tuple || ')'
            ELSE 'invalid IP header (IP_INHDR) on ' || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns) || ' (' || p.tuple || ')'
       END AS message,
       CASE WHEN expired
            THEN 'the sender''s TTL is too low for the path (ping -t, a low net.ipv4.ip_default_ttl) or the packet loops between routers (check the routes of each hop); traceroute does this on purpose'
            ELSE 'the sender builds malformed IP headers; capture at the sender' END AS advice
FROM (
    SELECT p.*, (SELECT min(e.ttl) FROM event e WHERE e.packet_id = p.id AND e.ttl IS NOT NULL) AS ttl,
           (EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'icmp_send' AND e.detail LIKE 'type 11 %')
            OR (SELECT e.ttl FROM event e WHERE e.id = p.last_event) <= 1) AS expired
    FROM packet p
    WHERE (p.fate = 'dropped' AND p.drop_reason = 'IP_INHDR')
       -- the icmp_send records alone, not a look at every packet's
       OR p.id IN (SELECT e.packet_id FROM event e WHERE e.probe_name = 'icmp_send' AND e.detail LIKE 'type 11 %')
) p
