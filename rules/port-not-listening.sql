-- id: port-not-listening
-- title: TCP or UDP packet for a port nobody listens on (NO_SOCKET), answered by a RST or ICMP port unreachable
-- level: ERROR
-- needs: kfree_skb
-- Multicast and broadcast datagrams without a listener are normal (rules/normal-free.sql). A packet that
-- DNAT rewrote on its way is named with the address and port it had where it failed, and the rewrite
-- (and the NAT rule whose counter rose) that brought it there.
-- The answers (RST, ICMP) are looked up once by probe name (IN), not once per dropped packet (EXISTS).
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'port-not-listening' AS code,
       'nothing listens on ' || p.proto || ' port ' || coalesce(n.after_dport, p.dport) || ' at ' || coalesce(n.after_daddr, p.daddr)
           || ' in netns ' || coalesce(p.netns_name, p.netns)
           || CASE WHEN p.id IN (SELECT e.packet_id FROM event e WHERE e.probe_name = 'tcp_send_reset')
                   THEN ': the kernel answered with a TCP RST (connection refused)'
                   WHEN p.id IN (SELECT e.packet_id FROM event e WHERE e.probe_name = 'icmp_send' AND e.detail LIKE 'type 3 code 3%')
                   THEN ': the kernel answered with ICMP port unreachable'
                   ELSE '' END
           || CASE WHEN n.packet_id IS NOT NULL
                   THEN '; it was sent to ' || p.daddr || ':' || p.dport || ' and rewritten on the way (' || n.text || ' in netns '
                        || coalesce(n.netns_name, n.netns) || coalesce(' at ' || n.nf_hook, '') || ')'
                   ELSE '' END
           || ' (' || p.tuple || ')' AS message,
       'start the service on ' || p.proto || ' port ' || coalesce(n.after_dport, p.dport) || ' (bound to ' || coalesce(n.after_daddr, p.daddr) || ' or 0.0.0.0) in netns '
           || coalesce(p.netns_name, p.netns) || ', or send to the port it listens on; check with: '
           || CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' ' ELSE '' END
           || 'ss -' || CASE p.proto WHEN 'TCP' THEN 't' ELSE 'u' END || 'lnp'
           || CASE WHEN n.packet_id IS NOT NULL
                   THEN '; or correct the DNAT in netns ' || coalesce(n.netns_name, n.netns)
                        || coalesce(' (the rule that counted it: [' || (SELECT h.tbl || ' ' || h.chain || '] ' || h.line FROM netfilter_rule_hit h
                                                                       WHERE h.netns = n.netns AND h.tbl LIKE '%nat%' AND (h.line LIKE '%DNAT%' OR h.line LIKE '%dnat%')
                                                                       ORDER BY h.packets DESC LIMIT 1) || ')', '')
                   ELSE '' END AS advice
FROM packet p
LEFT JOIN nat_rewrite n ON n.id = (SELECT max(x.id) FROM nat_rewrite x WHERE x.packet_id = p.id AND x.kind = 'DNAT')
WHERE p.fate = 'dropped' AND p.drop_reason = 'NO_SOCKET' AND p.proto IN ('TCP', 'UDP')
  AND NOT (p.daddr LIKE '224.%' OR p.daddr LIKE '239.%' OR p.daddr LIKE '255.%' OR p.daddr LIKE '%.255'
           OR lower(p.daddr) LIKE 'ff%')
