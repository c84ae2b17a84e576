-- id: not-specified-drop
-- title: kfree_skb without a reason (NOT_SPECIFIED): a normal free on a delivered or sent packet, else a possible drop
-- level: WARN
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id,
       CASE WHEN normal THEN 'INFO' ELSE 'WARN' END AS level,
       CASE WHEN normal THEN 'normal-free' ELSE 'unexplained-drop' END AS code,
       CASE WHEN normal
            THEN 'freed with kfree_skb (NOT_SPECIFIED) at ' || coalesce(p.drop_symbol, '?') || ' after it ' || how || ': a normal free on this path'
            ELSE 'freed with kfree_skb and no reason (NOT_SPECIFIED) at ' || coalesce(p.drop_symbol, '?') || coalesce(' on ' || p.ifname, '')
                 || ' in netns ' || coalesce(p.netns_name, p.netns) || ' before reaching a socket or a device: possibly a drop the kernel does not annotate'
       END AS message,
       CASE WHEN normal THEN NULL
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
           CASE WHEN EXISTS (SELECT 1 FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'net_dev_xmit') THEN 'was sent'
                WHEN EXISTS (SELECT 1 FROM clone c WHERE c.parent_id = p.id) THEN 'was cloned'
                ELSE 'reached local delivery' END AS how
    FROM packet p
    WHERE p.fate = 'dropped' AND p.drop_reason = 'NOT_SPECIFIED'
      AND coalesce(p.drop_symbol, '') NOT LIKE '%xdp%'  -- explained by the xdp-drop rule
) p
