-- id: netfilter-drop
-- title: Dropped by netfilter (iptables/nftables): family, hook, table, and the ruleset lines that could match
-- level: ERROR
-- needs: kfree_skb, netfilter
-- The family, hook and table come from the netfilter brackets the packet passed; the candidate rules
-- are the DROP/REJECT lines (and DROP policies) of that table and hook in the namespace's ruleset
-- snapshot whose protocol and /32 addresses do not exclude the packet (view netfilter_drop_candidate).
-- Conntrack INVALID drops are the rule conntrack-invalid.
WITH lines AS (
    SELECT packet_id, group_concat(CASE WHEN source = 'nft' THEN '[nft ' || tbl || ' ' || chain || '] ' ELSE '[' || tbl || '] ' END || line, ' | ') AS text,
           count(*) AS n, min(source = 'nft') AS nft_only
    FROM netfilter_drop_candidate WHERE invalid = 0 GROUP BY packet_id
)
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'netfilter-drop' AS code,
       'dropped by netfilter in the ' || coalesce(p.nf_table || ' table', 'netfilter (table unknown)') || ', '
           || coalesce(p.nf_family || ' ', '') || coalesce(p.nf_hook || ' hook', 'hook unknown')
           || ' of netns ' || coalesce(p.netns_name, p.netns) || ': ' || p.tuple AS message,
       CASE WHEN l.text IS NOT NULL THEN 'rule(s) that could match: ' || l.text || '. ' ELSE 'no DROP/REJECT rule of that table and hook in the ruleset snapshot matches: the rules changed during the recording, or a jump target drops. ' END
           || 'Fix or remove the rule; see which one counts packets with: ip netns exec ' || coalesce(p.netns_name, 'NS')
           || CASE WHEN l.nft_only THEN ' nft -a list ruleset' ELSE ' iptables -t ' || coalesce(substr(p.nf_table, 1, instr(p.nf_table || ' ', ' ') - 1), 'filter')
           || ' -L ' || coalesce(p.nf_hook, '') || ' -v -n --line-numbers (or nft list ruleset)' END AS advice,
       CASE WHEN p.nf_hook IS NULL OR p.nf_table IS NULL THEN 'inferred' END AS confidence,
       CASE WHEN p.nf_hook IS NULL OR p.nf_table IS NULL
            THEN 'the hook or table is unknown (no netfilter bracket before the drop): inferred from the drop reason NETFILTER_DROP only' END AS inferred
FROM packet p
LEFT JOIN lines l ON l.packet_id = p.id
WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP'
  -- conntrack INVALID drops, when no other line could match, are rules/conntrack-invalid.sql
  AND (l.text IS NOT NULL OR NOT EXISTS (SELECT 1 FROM netfilter_drop_candidate c WHERE c.packet_id = p.id AND c.invalid = 1))
