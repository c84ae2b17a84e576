-- id: route-refused
-- title: Refused by routing: a policy rule or route of type prohibit, unreachable or blackhole (ip_error)
-- level: ERROR
-- needs: kfree_skb
-- The kernel frees such a packet in ip_error (IPv4) or ip6_pkt_prohibit / ip6_pkt_discard (IPv6) with
-- no drop reason, after an ICMP error for prohibit (code 13, or ICMPv6 code 1) and unreachable (code 1),
-- silently for blackhole. The rules and routes that can do it come from the ip-rule and route snapshots.
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'route-refused' AS code,
       'refused by routing in netns ' || coalesce(p.netns_name, p.netns) || coalesce(' on ' || p.ifname, '') || ': '
           || CASE WHEN icmp LIKE 'type 3 code 13%' OR icmp LIKE 'type 1 code 1%' THEN 'a prohibit rule or route (the kernel answered ICMP administratively prohibited)'
                   WHEN icmp LIKE 'type 3 code 1 %' OR icmp = 'type 3 code 1' OR icmp LIKE 'type 1 code 3%' THEN 'an unreachable rule or route (the kernel answered ICMP host unreachable)'
                   WHEN icmp IS NOT NULL THEN 'a rule or route that refuses it (the kernel answered ICMP ' || icmp || ')'
                   -- no ICMP error: a blackhole, or one the kernel's ICMP rate limit held back
                   WHEN types = 'prohibit' THEN 'a prohibit rule or route (no ICMP error this time: the kernel rate-limits them, net.ipv4.icmp_ratelimit)'
                   WHEN types = 'unreachable' THEN 'an unreachable rule or route (no ICMP error this time: the kernel rate-limits them, net.ipv4.icmp_ratelimit)'
                   WHEN types = 'blackhole' THEN 'a blackhole rule or route (dropped silently)'
                   ELSE 'a prohibit, unreachable or blackhole rule or route (no ICMP error was recorded: a blackhole, or the ICMP rate limit)' END
           || ', at ' || coalesce(p.drop_symbol, '?') || ' (' || p.tuple || ')' AS message,
       CASE WHEN refusing IS NOT NULL
            THEN 'the rules and routes of that type in netns ' || coalesce(p.netns_name, p.netns) || ' when the recording started: ' || refusing
                 || '; if this traffic should pass, remove it: '
                 || CASE WHEN p.netns_name IS NOT NULL THEN 'ip -n ' || p.netns_name || ' ' ELSE 'ip ' END
                 || CASE WHEN rules = 1 AND routes = 0 THEN 'rule del priority ' || rule_priority
                         WHEN rules = 0 AND routes = 1 THEN 'route del ' || route_text
                         ELSE 'rule del priority N, or ip route del TYPE PREFIX' END
            ELSE 'no prohibit, unreachable or blackhole rule or route in the snapshot of that namespace: it was added during the recording; list them with '
                 || CASE WHEN p.netns_name IS NOT NULL THEN 'ip -n ' || p.netns_name || ' ' ELSE 'ip ' END || 'rule show and ip route show table all' END AS advice
FROM (
    SELECT p.*,
           (SELECT e.detail FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'icmp_send' ORDER BY e.id LIMIT 1) AS icmp,
           (SELECT group_concat(CASE WHEN l.source = 'ip-rule' THEN 'rule ' ELSE 'route ' END || replace(l.line, char(9), ' '), ' | ')
            FROM snapshot_line l
            WHERE l.netns = p.netns AND l.phase = 'start'
              AND (   (l.source = 'ip-rule' AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%'))
                   OR (l.source IN ('ip-route', 'ip6-route') AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')))) AS refusing,
           (SELECT CASE WHEN count(DISTINCT t) = 1 THEN min(t) END FROM (
                SELECT CASE WHEN l.line LIKE '%prohibit%' THEN 'prohibit' WHEN l.line LIKE '%unreachable%' THEN 'unreachable' ELSE 'blackhole' END AS t
                FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
                  AND (   (l.source = 'ip-rule' AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%'))
                       OR (l.source IN ('ip-route', 'ip6-route') AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %'))))) AS types,
           (SELECT count(*) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source = 'ip-rule'
              AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%')) AS rules,
           (SELECT min(substr(l.line, 1, instr(l.line, ':') - 1)) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source = 'ip-rule'
              AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%')) AS rule_priority,
           (SELECT count(*) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source IN ('ip-route', 'ip6-route')
              AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')) AS routes,
           (SELECT min(l.line) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source IN ('ip-route', 'ip6-route')
              AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')) AS route_text
    FROM packet p
    WHERE p.fate = 'dropped' AND p.drop_reason = 'NOT_SPECIFIED'
      AND (coalesce(p.drop_symbol, '') LIKE 'ip_error%' OR coalesce(p.drop_symbol, '') LIKE 'ip6_pkt_prohibit%'
           OR coalesce(p.drop_symbol, '') LIKE 'ip6_pkt_discard%')
) p
