-- id: latency-backlog
-- title: Slow hop: received packets waited in the per-CPU backlog before the stack took them
-- level: WARN
-- needs: netif_rx, netif_receive_skb
-- netif_rx queues a packet (veth, tunnels, RPS) in a CPU's backlog; netif_receive_skb is when the
-- stack takes it. One finding per device where that took 1 ms on average or 10 ms at worst.
SELECT q.slow_packet AS packet_id, NULL AS event_id, 'WARN' AS level, 'latency-backlog' AS code,
       'received packets waited in the backlog on ' || coalesce(q.ifname, 'if' || q.ifindex) || ' in netns ' || coalesce(q.netns_name, q.netns)
           || ': ' || q.n || ' packets, average ' || printf('%.2f', q.avg_ns / 1e6) || ' ms, worst ' || printf('%.2f', q.max_ns / 1e6)
           || ' ms (netif_rx to netif_receive_skb)' AS message,
       'softirq processing falls behind: a CPU busy with other work or interrupts (mpstat, /proc/softirqs), one CPU taking all '
           || 'the traffic (spread it with RPS/RFS: /sys/class/net/DEV/queues/rx-*/rps_cpus), or net.core.netdev_budget / '
           || 'netdev_max_backlog too small for the burst' AS advice
FROM (SELECT b.netns, b.netns_name, b.ifindex, b.ifname, count(*) AS n, avg(b.ts - a.ts) AS avg_ns, max(b.ts - a.ts) AS max_ns,
             (SELECT b2.packet_id FROM event a2 JOIN event b2 ON b2.packet_id = a2.packet_id AND b2.step = a2.step + 1
              WHERE a2.probe_name = 'netif_rx' AND b2.probe_name = 'netif_receive_skb' AND b2.netns = b.netns AND b2.ifindex = b.ifindex
              ORDER BY b2.ts - a2.ts DESC LIMIT 1) AS slow_packet
      FROM event a JOIN event b ON b.packet_id = a.packet_id AND b.step = a.step + 1
      WHERE a.probe_name = 'netif_rx' AND b.probe_name = 'netif_receive_skb'
      GROUP BY b.netns, b.ifindex) q
WHERE q.avg_ns >= 1000000 OR q.max_ns >= 10000000
