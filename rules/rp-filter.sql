-- id: rp-filter
-- title: Reverse path filter (rp_filter) rejected the source address
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'rp-filter' AS code,
       'dropped by reverse path filtering (rp_filter) on ' || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ': a reply to ' || p.saddr || ' would not leave through ' || coalesce(p.ifname, 'the incoming interface')
           || ' (net.ipv4.conf.all.rp_filter=' || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.ipv4.conf.all.rp_filter'), '?')
           || ', net.ipv4.conf.' || coalesce(p.ifname, '?') || '.rp_filter='
           || coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.ipv4.conf.' || p.ifname || '.rp_filter'), '?')
           || '; the higher one applies) — ' || p.tuple AS message,
       'add a route to ' || p.saddr || ' via ' || coalesce(p.ifname, 'the incoming interface') || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' (ip route add ' || p.saddr || ' dev ' || coalesce(p.ifname, 'IF') || '), or use loose mode: sysctl -w net.ipv4.conf.'
           || coalesce(p.ifname, 'IF') || '.rp_filter=2 net.ipv4.conf.all.rp_filter=2 (0 turns it off)' AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason = 'IP_RPFILTER'
