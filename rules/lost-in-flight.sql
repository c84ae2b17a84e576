-- id: lost-in-flight
-- title: Packet vanished on the way: no free, no delivery, no transmit out of the host was recorded
-- level: WARN
-- needs: kfree_skb, consume_skb
-- Incomplete packets that reached local delivery (INPUT hook, socket read, TCP receive) are normal:
-- TCP frees with __kfree_skb, which has no tracepoint. Those that ended elsewhere are reported.
SELECT p.id AS packet_id, p.last_event AS event_id,
       CASE WHEN unseen_delivery THEN 'INFO' ELSE 'WARN' END AS level,
       CASE WHEN unseen_delivery THEN 'delivery-not-recorded' ELSE 'lost-in-flight' END AS code,
       CASE WHEN unseen_delivery
            THEN 'received for ' || p.daddr || ', an address of netns ' || coalesce(e.netns_name, e.netns) || ', and not followed further: '
                 || 'the probes that show local delivery (netfilter brackets, skb_copy_datagram_iovec) were not attached, and UDP and TCP free a delivered packet without a tracepoint ('
                 || p.tuple || ')'
       ELSE 'no free or delivery recorded for ' || p.tuple || ': last seen at ' || e.probe_name || coalesce(' on ' || e.ifname, '')
           || ' in netns ' || coalesce(e.netns_name, e.netns)
           || CASE WHEN (SELECT lost_events FROM recording) > 0 THEN ' (the recording lost events: its end may be among them)' ELSE '' END
           || CASE WHEN p.incomplete IS NOT NULL THEN ' [' || p.incomplete || ']' ELSE '' END END AS message,
       CASE WHEN unseen_delivery THEN NULL ELSE 'the packet left the stack without a traced free: held in a queue (qdisc, neighbour queue), freed by a driver, or dropped on a path the kernel does not trace; check tc -s qdisc, ip -s link and nstat in that namespace' END AS advice,
       CASE WHEN (SELECT lost_events FROM recording) > 0 THEN 'inferred' END AS confidence,
       CASE WHEN (SELECT lost_events FROM recording) > 0 THEN 'events were lost during the recording: the missing steps may be among them' END AS inferred
FROM (
    SELECT p.*,
           -- received for a local address where nothing that shows delivery was recorded
           (x.probe_name IN ('netif_receive_skb', 'netif_rx', 'napi_gro_receive_entry', 'netif_receive_skb_entry')
            AND EXISTS (SELECT 1 FROM bundle_address a WHERE a.netns = x.netns AND a.address = p.daddr)
            AND NOT EXISTS (SELECT 1 FROM bundle_probe b WHERE b.attached = 1
                            AND (b.name = 'skb_copy_datagram_iovec' OR (b.kind = 'netfilter' AND (b.netns IS NULL OR b.netns = x.netns))))) AS unseen_delivery
    FROM packet p
    JOIN event x ON x.id = p.last_event
    WHERE p.fate = 'incomplete'
) p
JOIN event e ON e.id = p.last_event
WHERE p.fate = 'incomplete'
  AND NOT EXISTS (SELECT 1 FROM event x WHERE x.packet_id = p.id
                  AND (x.probe_name IN ('skb_copy_datagram_iovec', 'tcp_probe', 'tcp_retransmit_skb') OR x.probe_name LIKE 'nf:%:input:%'))
  AND NOT EXISTS (SELECT 1 FROM clone c WHERE c.parent_id = p.id OR c.child_id = p.id)
  -- sent out of the host on a real device: the driver frees it after the recording
  AND NOT (e.probe_name = 'net_dev_xmit' AND e.rc = 0
           AND NOT EXISTS (SELECT 1 FROM bundle_interface i WHERE i.netns = e.netns AND i.ifindex = e.ifindex AND i.kind IN ('veth', 'loopback')))
