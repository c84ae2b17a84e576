-- id: tcp-retrans-storm
-- title: Retransmission storm: a connection retransmitted a large share of what it sent
-- level: WARN
-- needs: tcp_retransmit_skb
-- One finding per connection (the rule tcp-retransmit has one per retransmission). At least 3
-- retransmissions and 1% of the segments sent; ERROR from 10%. The connection's own segments that the
-- recording saw dropped say where the loss is.
SELECT (SELECT min(t.packet_id) FROM tcp_pkt t WHERE t.saddr = c.laddr AND t.sport = c.lport AND t.daddr = c.raddr
          AND t.dport = c.rport AND t.dropped = 1) AS packet_id,
       (SELECT t.event_id FROM tcp_sample t WHERE t.connection_id = c.id AND t.kind = 'retransmit' ORDER BY t.event_id LIMIT 1) AS event_id,
       CASE WHEN c.retransmits * 10 >= c.segments_out THEN 'ERROR' ELSE 'WARN' END AS level,
       'tcp-retrans-storm' AS code,
       'TCP ' || c.tuple || ' in netns ' || coalesce(c.netns_name, c.netns) || ' retransmitted ' || c.retransmits
           || ' times for ' || c.segments_out || ' segments sent (' || printf('%.1f', 100.0 * c.retransmits / max(c.segments_out, 1)) || '%)'
           || CASE WHEN c.segments_out_dropped > 0 THEN '; ' || c.segments_out_dropped || ' of its segments were dropped here: '
                   || (SELECT group_concat(d, ', ') FROM (
                          SELECT p.drop_reason || coalesce(' in ' || p.nf_table || ' ' || p.nf_hook, '') || coalesce(' on ' || p.ifname, '')
                                 || coalesce(' @' || p.netns_name, '') || ' x' || count(*) AS d
                          FROM packet p WHERE p.id IN (SELECT t.packet_id FROM tcp_pkt t WHERE t.saddr = c.laddr AND t.sport = c.lport
                                                       AND t.daddr = c.raddr AND t.dport = c.rport AND t.dropped = 1)
                          GROUP BY p.drop_reason, p.nf_table, p.nf_hook, p.ifname, p.netns_name))
                ELSE '; none of its segments was seen dropped in this recording (loss outside it, or ACKs lost)' END AS message,
       CASE WHEN c.segments_out_dropped > 0
            THEN 'the drops above cause the retransmissions: skbtrail drops FILE and skbtrail paths FILE --dropped show each; a netfilter rule (iptables -L -v -x), a full qdisc (tc -s qdisc) or the receiver''s buffers'
            ELSE 'loss happens beyond what was recorded: record the peer or the path too, check interface errors (ip -s link), and RTT spikes (skbtrail tcp FILE) for spurious timeouts' END AS advice
FROM tcp_connection c
WHERE c.retransmits >= 3 AND c.retransmits * 100 >= c.segments_out
