-- id: tc-drop
-- title: Dropped by traffic control: a tc filter/action, or a qdisc (queue full, netem loss, policer)
-- level: ERROR
-- needs: kfree_skb
SELECT p.id AS packet_id, p.last_event AS event_id, k.level, 'tc-drop' AS code,
       'dropped by tc ' || CASE WHEN p.drop_reason = 'TC_INGRESS' THEN 'ingress on ' WHEN p.drop_reason = 'TC_EGRESS' THEN 'egress on '
                               WHEN p.drop_reason LIKE 'TC_%' THEN 'on ' ELSE 'qdisc of ' END
           || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns) || ' (' || p.drop_reason || ': ' || k.explanation || ') — '
           || p.tuple AS message,
       k.advice || CASE WHEN p.ifname IS NOT NULL THEN ' — e.g. ' || CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' ' ELSE '' END
                         || CASE WHEN p.drop_reason LIKE 'TC_%' THEN 'tc -s filter show dev ' || p.ifname || CASE WHEN p.drop_reason = 'TC_EGRESS' THEN ' egress' ELSE ' ingress' END
                                 ELSE 'tc -s qdisc show dev ' || p.ifname END ELSE '' END
           || coalesce('; qdiscs at the start: ' || (SELECT group_concat(l.line, ' | ') FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
                   AND l.source = 'tc-qdisc' AND l.line LIKE '% dev ' || p.ifname || ' %' AND l.line NOT LIKE 'qdisc noqueue%'), '') AS advice
FROM packet p
JOIN drop_reason_kb k ON k.name = p.drop_reason AND k.rule = 'tc-drop'
WHERE p.fate = 'dropped'
