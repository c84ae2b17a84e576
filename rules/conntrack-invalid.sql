-- id: conntrack-invalid
-- title: Dropped as conntrack INVALID (a packet that fits no known connection state)
-- level: ERROR
-- needs: kfree_skb, netfilter
-- A NETFILTER_DROP in a namespace whose ruleset drops ctstate INVALID, where no other DROP/REJECT line
-- matches the packet (the decision of rules/netfilter-drop.sql).
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'conntrack-invalid' AS code,
       'dropped as conntrack state INVALID in the ' || coalesce(p.nf_table, '?') || ' table, ' || coalesce(p.nf_hook, '?')
           || ' hook of netns ' || coalesce(p.netns_name, p.netns) || ': ' || p.tuple
           || ' does not belong to any connection conntrack knows (e.g. an ACK or RST with no SYN seen, or out of window)' AS message,
       'rule: ' || (SELECT group_concat(c.line, ' | ') FROM netfilter_drop_candidate c WHERE c.packet_id = p.id AND c.invalid = 1)
           || '. If the traffic is legitimate (asymmetric routing, conntrack flushed or started mid-connection), let it through before that rule, or set net.netfilter.nf_conntrack_tcp_be_liberal=1; otherwise the drop is intended' AS advice
FROM packet p
WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP'
  AND EXISTS (SELECT 1 FROM netfilter_drop_candidate c WHERE c.packet_id = p.id AND c.invalid = 1)
  AND NOT EXISTS (SELECT 1 FROM netfilter_drop_candidate c WHERE c.packet_id = p.id AND c.invalid = 0)
