-- id: bad-checksum
-- title: Bad IP/TCP/UDP/ICMP checksum
-- level: ERROR
-- needs: kfree_skb, tcp_bad_csum
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'bad-checksum' AS code,
       'bad checksum (' || p.drop_reason || ') on ' || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns) || ': ' || p.tuple AS message,
       'the sender or something on the path corrupts packets; with virtual devices check checksum offload at the sender (ethtool -k IF | grep checksum; ethtool -K IF tx off to test)' AS advice
FROM packet p
JOIN drop_reason_kb k ON k.name = p.drop_reason AND k.rule = 'bad-checksum'
WHERE p.fate = 'dropped'
UNION ALL
SELECT e.packet_id, e.id, 'ERROR', 'bad-checksum',
       'TCP checksum error (tcp_bad_csum) in netns ' || coalesce(e.netns_name, e.netns) || ': ' || e.detail,
       'check checksum offload at the sender (ethtool -K IF tx off to test)'
FROM event e
WHERE e.probe_name = 'tcp_bad_csum'
  AND NOT EXISTS (SELECT 1 FROM packet p JOIN drop_reason_kb k ON k.name = p.drop_reason AND k.rule = 'bad-checksum' WHERE p.id = e.packet_id)
