-- id: forwarding-disabled
-- title: Packet for another host arrived where forwarding is disabled (IP_INADDRERRORS)
-- level: ERROR
-- needs: kfree_skb
-- IP_INADDRERRORS: the destination is not local and the host may not forward it. With forwarding on
-- the destination itself is invalid (broadcast, multicast, unreachable type).
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level,
       CASE WHEN fwd = '0' THEN 'forwarding-disabled' ELSE 'invalid-destination' END AS code,
       CASE WHEN fwd = '0'
            THEN 'not forwarded: netns ' || coalesce(p.netns_name, p.netns) || ' received ' || p.tuple || ' on ' || coalesce(p.ifname, '?')
                 || ' for ' || p.daddr || ', which is not one of its addresses, and forwarding is disabled there (net.ipv4.conf.'
                 || coalesce(p.ifname, '?') || '.forwarding=0)'
            ELSE 'invalid destination ' || p.daddr || ' for a packet received on ' || coalesce(p.ifname, '?') || ' in netns '
                 || coalesce(p.netns_name, p.netns) || ' (forwarding is ' || coalesce(fwd, 'unknown') || '): not local and not routable (' || p.tuple || ')'
       END AS message,
       CASE WHEN fwd = '0'
            THEN 'if this namespace is meant to route: ' || CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' ' ELSE '' END
                 || 'sysctl -w net.ipv4.ip_forward=1; otherwise the sender has the wrong route or gateway for ' || p.daddr
            ELSE 'check the destination address and the routes (ip route get ' || p.daddr || ')' END AS advice
FROM (
    SELECT p.*,
           coalesce((SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.ipv4.conf.' || p.ifname || '.forwarding'),
                    (SELECT value FROM bundle_sysctl s WHERE s.netns = p.netns AND s.name = 'net.ipv4.conf.all.forwarding')) AS fwd
    FROM packet p
    WHERE p.fate = 'dropped' AND p.drop_reason = 'IP_INADDRERRORS'
) p
