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
                 || CASE WHEN rules = 1 AND routes = 0
                         THEN '; if this traffic should pass, remove it: ' || ip || 'rule del priority ' || rule_priority
                         WHEN rules = 0 AND routes = 1
                         THEN '; if this traffic should pass, remove it: ' || ip || 'route del ' || route_text
                         ELSE '; if this traffic should pass, remove the one that covers it: ' || ip || 'rule del priority, with its priority from this list, or '
                              || ip || 'route del, with its type and prefix' END
            ELSE 'no prohibit, unreachable or blackhole rule or route in the snapshot of that namespace: it was added during the recording; list them with '
                 || ip || 'rule show and ' || ip || 'route show table all' END AS advice
FROM (
    SELECT p.*,
           'ip ' || CASE WHEN p.l3 = 'ipv6' THEN '-6 ' ELSE '' END || CASE WHEN p.netns_name IS NOT NULL THEN '-n ' || p.netns_name || ' ' ELSE '' END AS ip,
           (SELECT e.detail FROM event e WHERE e.packet_id = p.id AND e.probe_name = 'icmp_send' ORDER BY e.id LIMIT 1) AS icmp,
           (SELECT group_concat(CASE WHEN l.source IN ('ip-rule', 'ip6-rule') THEN 'rule ' ELSE 'route ' END || replace(l.line, char(9), ' '), ' | ')
            FROM snapshot_line l
            WHERE l.netns = p.netns AND l.phase = 'start'
              AND (   (l.source IN ('ip-rule', 'ip6-rule') AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%'))
                   OR (l.source IN ('ip-route', 'ip6-route') AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')))) AS refusing,
           (SELECT CASE WHEN count(DISTINCT t) = 1 THEN min(t) END FROM (
                SELECT CASE WHEN l.line LIKE '%prohibit%' THEN 'prohibit' WHEN l.line LIKE '%unreachable%' THEN 'unreachable' ELSE 'blackhole' END AS t
                FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
                  AND (   (l.source IN ('ip-rule', 'ip6-rule') AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%'))
                       OR (l.source IN ('ip-route', 'ip6-route') AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %'))))) AS types,
           -- the one rule the advice may name: of the packet's family, naming its source or destination
           (SELECT count(*) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
              AND l.source = CASE WHEN p.l3 = 'ipv6' THEN 'ip6-rule' ELSE 'ip-rule' END
              AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%')
              AND (instr(l.line, ' ' || p.saddr) > 0 OR instr(l.line, ' ' || p.daddr) > 0)) AS rules,
           (SELECT min(substr(l.line, 1, instr(l.line, ':') - 1)) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start'
              AND l.source = CASE WHEN p.l3 = 'ipv6' THEN 'ip6-rule' ELSE 'ip-rule' END
              AND (l.line LIKE '% prohibit%' OR l.line LIKE '% unreachable%' OR l.line LIKE '% blackhole%')
              AND (instr(l.line, ' ' || p.saddr) > 0 OR instr(l.line, ' ' || p.daddr) > 0)) AS rule_priority,
           (SELECT count(*) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source IN ('ip-route', 'ip6-route')
              AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')) AS routes,
           (SELECT min(l.line) FROM snapshot_line l WHERE l.netns = p.netns AND l.phase = 'start' AND l.source IN ('ip-route', 'ip6-route')
              AND (l.line LIKE 'prohibit %' OR l.line LIKE 'unreachable %' OR l.line LIKE 'blackhole %')) AS route_text
    FROM packet p
    -- IPv4 frees them in ip_error with no reason; IPv6 in ip6_pkt_prohibit with IP_INNOROUTES or
    -- IP_OUTNOROUTES (its discard, ip6_pkt_discard, is also plain no route: rules/no-route.sql)
    WHERE p.fate = 'dropped'
      AND ((p.drop_reason = 'NOT_SPECIFIED' AND coalesce(p.drop_symbol, '') LIKE 'ip_error%')
           OR coalesce(p.drop_symbol, '') LIKE 'ip6_pkt_prohibit%')
) p
