-- id: latency-qdisc-queue
-- title: Slow hop: packets waited in a qdisc (shaping, or a long queue in front of a slow link)
-- level: WARN
-- needs: qdisc_enqueue, qdisc_dequeue
-- One finding per device: the time from qdisc_enqueue to the next step, qdisc_dequeue, of each packet.
-- WARN when packets waited 1 ms on average or 10 ms at worst; the evidence is the slowest packet.
SELECT q.slow_packet AS packet_id, q.slow_event AS event_id, 'WARN' AS level, 'latency-qdisc-queue' AS code,
       'packets waited in the ' || coalesce(q.qdisc, 'qdisc') || ' qdisc of ' || coalesce(q.ifname, 'if' || q.ifindex) || ' in netns '
           || coalesce(q.netns_name, q.netns) || ': ' || q.n || ' packets, average ' || printf('%.2f', q.avg_ns / 1e6)
           || ' ms, worst ' || printf('%.2f', q.max_ns / 1e6) || ' ms (qdisc_enqueue to qdisc_dequeue)' AS message,
       'the qdisc holds packets back: a shaper (tbf/htb rate) below the traffic, or a deep queue in front of a slow link; '
           || 'tc -s qdisc show dev ' || coalesce(q.ifname, '?') || ' shows its rate, backlog and drops. Raise the rate, shorten the '
           || 'queue (tbf latency/limit), or use an AQM (fq_codel, cake) so the queue does not add delay' AS advice
FROM (SELECT b.netns, b.netns_name, b.ifindex, b.ifname, count(*) AS n, avg(b.ts - a.ts) AS avg_ns, max(b.ts - a.ts) AS max_ns,
             substr(b.detail, 1, instr(b.detail || ' ', ' ') - 1) AS qdisc,
             (SELECT b2.packet_id FROM event a2 JOIN event b2 ON b2.packet_id = a2.packet_id AND b2.step = a2.step + 1
              WHERE a2.probe_name = 'qdisc_enqueue' AND b2.probe_name = 'qdisc_dequeue' AND b2.netns = b.netns AND b2.ifindex = b.ifindex
              ORDER BY b2.ts - a2.ts DESC LIMIT 1) AS slow_packet,
             (SELECT b2.id FROM event a2 JOIN event b2 ON b2.packet_id = a2.packet_id AND b2.step = a2.step + 1
              WHERE a2.probe_name = 'qdisc_enqueue' AND b2.probe_name = 'qdisc_dequeue' AND b2.netns = b.netns AND b2.ifindex = b.ifindex
              ORDER BY b2.ts - a2.ts DESC LIMIT 1) AS slow_event
      FROM event a JOIN event b ON b.packet_id = a.packet_id AND b.step = a.step + 1
      WHERE a.probe_name = 'qdisc_enqueue' AND b.probe_name = 'qdisc_dequeue'
      GROUP BY b.netns, b.ifindex) q
WHERE q.avg_ns >= 1000000 OR q.max_ns >= 10000000
