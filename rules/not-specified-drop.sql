-- id: not-specified-drop
-- title: kfree_skb without a reason (NOT_SPECIFIED): a normal free on a delivered or sent packet, else a possible drop
-- level: WARN
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id,
       CASE WHEN normal OR multicast OR unread THEN 'INFO' ELSE 'WARN' END AS level,
       CASE WHEN unread THEN 'unread-at-close' WHEN normal OR multicast THEN 'normal-free' ELSE 'unexplained-drop' END AS code,
       CASE WHEN multicast
            THEN coalesce(p.proto, 'a') || ' multicast to ' || p.daddr || coalesce(' (' || kind || ')', '') || coalesce(' on ' || p.ifname, '')
                 || ' in netns ' || coalesce(p.netns_name, p.netns) || ' freed at ' || coalesce(p.drop_symbol, '?')
                 || ': no socket of this namespace joined that group (and it routes no multicast), so the kernel drops its copy: normal on a shared link'
            WHEN unread
            THEN 'freed unread at ' || coalesce(p.drop_symbol, '?') || ' in netns ' || coalesce(p.netns_name, p.netns)
                 || ': it waited in the receive queue of a socket that was closed (' || p.tuple || ')'
            WHEN normal
            THEN 'freed with kfree_skb (NOT_SPECIFIED) at ' || coalesce(p.drop_symbol, '?') || ' after it ' || how || ': a normal free on this path'
            ELSE 'freed with kfree_skb and no reason (NOT_SPECIFIED) at ' || coalesce(p.drop_symbol, '?') || coalesce(' on ' || p.ifname, '')
                 || ' in netns ' || coalesce(p.netns_name, p.netns) || ' before reaching a socket or a device: possibly a drop the kernel does not annotate'
       END AS message,
       CASE WHEN normal OR multicast THEN NULL
            WHEN unread THEN 'the application closed its socket without reading these; if it should have, read before close (or shut down the sender first)'
            ELSE 'look at the freeing function ' || coalesce(p.drop_symbol, '?') || ' and the last steps (skbtrail paths --packet ' || p.id || '); '
                 || 'the counters of netstat -s / nstat in that namespace often name the cause' END AS advice
FROM (
    SELECT p.*,
           (EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id
                    AND (e.probe_name IN ('skb_copy_datagram_iovec', 'tcp_probe') OR e.probe_name LIKE 'nf:%:input:%'
                         -- sent and not received again: a veth hands the same skb to its peer
                         OR (e.probe_name = 'net_dev_xmit' AND NOT EXISTS (
                                SELECT 1 FROM event r WHERE r.packet_id = p.id AND r.id > e.id
                                AND r.probe_name IN ('netif_receive_skb', 'netif_rx', 'napi_gro_receive_entry')))))
            OR EXISTS (SELECT 1 FROM clone c WHERE c.parent_id = p.id)) AS normal,
           -- multicast for a group nobody here joined: ip6_mc_input frees the copy of an MLD report or of a
           -- neighbour solicitation for another host; IPv4's route input refuses an IGMP report
           -- (ip_rcv_finish_core) when the namespace routes no multicast
           -- (link-local scope only: an application's group, 239.x or ff05::, that nobody joined may be a
           -- socket joined on the wrong interface, and stays a WARN)
           ((lower(p.daddr) LIKE 'ff02:%' AND coalesce(p.drop_symbol, '') LIKE 'ip6_mc_input%')
            OR ((p.daddr LIKE '224.0.0.%' OR p.proto = 'IGMP')
                AND (coalesce(p.drop_symbol, '') LIKE 'ip_rcv_finish_core%' OR coalesce(p.drop_symbol, '') LIKE 'ip_route_input%'
                     OR coalesce(p.drop_symbol, '') LIKE 'ip_mc_%' OR coalesce(p.drop_symbol, '') LIKE 'igmp_rcv%'))) AS multicast,
           -- a socket's receive queue purged when it closes (udp_destruct_common, inet_sock_destruct, ...)
           (coalesce(p.drop_symbol, '') LIKE 'udp_destruct_common%' OR coalesce(p.drop_symbol, '') LIKE 'inet_sock_destruct%'
            OR coalesce(p.drop_symbol, '') LIKE 'skb_queue_purge%' OR coalesce(p.drop_symbol, '') LIKE '__skb_queue_purge%') AS unread,
           (SELECT CASE WHEN p.proto = 'IGMP' THEN 'IGMP report'
                        WHEN e.icmp_type IN (130, 131, 132, 143) THEN 'MLD ' || CASE e.icmp_type WHEN 130 THEN 'query' WHEN 132 THEN 'done' ELSE 'report' END
                        WHEN e.icmp_type = 135 THEN 'neighbour solicitation for another address'
                        WHEN e.icmp_type = 136 THEN 'neighbour advertisement'
                        WHEN e.icmp_type = 133 THEN 'router solicitation'
                        WHEN e.icmp_type = 134 THEN 'router advertisement' END
            FROM event e WHERE e.id = p.first_event) AS kind,
           CASE WHEN EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'net_dev_xmit') THEN 'was sent'
                WHEN EXISTS (SELECT 1 FROM clone c WHERE c.parent_id = p.id) THEN 'was cloned'
                ELSE 'reached local delivery' END AS how
    FROM packet p
    WHERE p.fate = 'dropped' AND p.drop_reason = 'NOT_SPECIFIED'
      AND coalesce(p.drop_symbol, '') NOT LIKE '%xdp%'  -- explained by the xdp-drop rule
      AND coalesce(p.drop_symbol, '') NOT LIKE 'ip_error%'  -- explained by the route-refused rule
) p
