-- id: latency-socket-queue
-- title: Slow reader: received data waited in the socket's queue before the application copied it
-- level: INFO
-- needs: netif_receive_skb, skb_copy_datagram_iovec
-- From netif_receive_skb to skb_copy_datagram_iovec (the copy to the application), per destination
-- socket (netns, address, port): one finding where that took 10 ms on average.
SELECT q.slow_packet AS packet_id, NULL AS event_id, 'INFO' AS level, 'latency-socket-queue' AS code,
       coalesce(q.proto, '') || ' data for ' || q.daddr || ':' || q.dport || ' in netns ' || coalesce(q.netns_name, q.netns)
           || ' waited for the application: ' || q.n || ' packets, average ' || printf('%.2f', q.avg_ns / 1e6) || ' ms, worst '
           || printf('%.2f', q.max_ns / 1e6) || ' ms from netif_receive_skb to the copy to user space' AS message,
       'the application reads late (busy, blocked, or reading in big batches): profile it, or check whether it is the bottleneck '
           || 'of the transfer; a full receive buffer shows as a zero window (rule tcp-zero-window)' AS advice
FROM (SELECT c.netns, c.netns_name, p.proto, p.daddr, p.dport, count(*) AS n, avg(c.ts - r.ts) AS avg_ns, max(c.ts - r.ts) AS max_ns,
             max(p.id) AS slow_packet
      -- only packets read by a process: found through the copy records, not by a look at every packet
      -- (CROSS JOIN keeps that order)
      FROM (SELECT DISTINCT x.packet_id FROM ev x WHERE x.probe_name = 'skb_copy_datagram_iovec') d
      CROSS JOIN packet p ON p.id = d.packet_id
      JOIN event r ON r.id = (SELECT x.id FROM ev x WHERE x.packet_id = p.id AND x.probe_name = 'netif_receive_skb' ORDER BY x.step DESC LIMIT 1)
      JOIN event c ON c.id = (SELECT x.id FROM ev x WHERE x.packet_id = p.id AND x.probe_name = 'skb_copy_datagram_iovec' ORDER BY x.step LIMIT 1)
      WHERE c.ts > r.ts
      GROUP BY c.netns, p.proto, p.daddr, p.dport) q
WHERE q.avg_ns >= 10000000
