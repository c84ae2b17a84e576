-- id: tcp-high-rtt
-- title: High TCP round-trip time: the connection's median smoothed RTT is high for where its peer is
-- level: WARN
-- needs: tcp_probe
-- A peer with an address on this host (any netns in the bundle) should answer in well under a
-- millisecond: 5 ms is a queue somewhere (qdisc, backlog, a slow receiver). A remote peer: 200 ms.
SELECT s.packet_id, s.event_id, 'WARN' AS level, 'tcp-high-rtt' AS code,
       'TCP ' || c.tuple || ' in netns ' || coalesce(c.netns_name, c.netns) || ': median srtt '
           || printf('%.1f', c.srtt_median_us / 1000.0) || ' ms (min ' || printf('%.1f', c.srtt_min_us / 1000.0)
           || ', max ' || printf('%.1f', c.srtt_max_us / 1000.0) || ' ms over ' || c.rtt_samples || ' tcp_probe samples)'
           || CASE WHEN l.local THEN ' to a peer on this host' ELSE '' END AS message,
       'see where the time goes: skbtrail latency FILE --from qdisc_enqueue --to qdisc_dequeue (a shaping or full qdisc: '
           || 'tc -s qdisc show), --from netif_rx --to netif_receive_skb (the backlog), --from netif_receive_skb --to '
           || 'skb_copy_datagram_iovec (a slow reader); an RTT that grows with the transfer is queueing (bufferbloat): a '
           || 'smaller queue (tbf latency, fq_codel) or a rate above the sender''s' AS advice
FROM tcp_connection c
JOIN (SELECT c2.id, EXISTS (SELECT 1 FROM bundle_address a WHERE a.address = c2.raddr) AS local FROM tcp_connection c2) l ON l.id = c.id
JOIN tcp_sample s ON s.event_id = (SELECT t.event_id FROM tcp_sample t WHERE t.connection_id = c.id AND t.kind = 'probe'
                                   ORDER BY t.srtt_us DESC, t.event_id LIMIT 1)
WHERE c.rtt_samples > 0
  AND c.srtt_median_us >= CASE WHEN l.local THEN 5000 ELSE 200000 END
