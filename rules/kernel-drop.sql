-- id: kernel-drop
-- title: Any other kernel drop, explained from the drop-reason knowledge base (drop_reason_kb)
-- level: WARN
-- needs: kfree_skb
-- Reasons with a dedicated rule (drop_reason_kb.rule) are left to it; a reason the knowledge base does
-- not know (a newer kernel) gets a generic text.
SELECT p.id AS packet_id, p.last_event AS event_id, coalesce(k.level, 'WARN') AS level,
       'drop-' || lower(replace(p.drop_reason, '_', '-')) AS code,
       'dropped (' || p.drop_reason || '): ' || coalesce(k.explanation, 'a drop reason this version of skbtrail does not know')
           || ' — at ' || coalesce(p.drop_symbol, '?') || coalesce(' on ' || p.ifname, '') || ' in netns ' || coalesce(p.netns_name, p.netns)
           || ' (' || coalesce(p.tuple, '?') || ')' AS message,
       coalesce(k.advice, 'look up SKB_DROP_REASON_' || p.drop_reason || ' in include/net/dropreason-core.h of kernel '
           || (SELECT kernel_release FROM recording) || ' and read the freeing function ' || coalesce(p.drop_symbol, '')) AS advice
FROM packet p
LEFT JOIN drop_reason_kb k ON k.name = p.drop_reason
WHERE p.fate = 'dropped' AND (k.name IS NULL OR k.rule IS NULL)
