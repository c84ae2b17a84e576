-- id: netfilter-path
-- title: The netfilter hooks a packet crossed, per namespace, and the tables after which it was last seen
-- level: INFO
-- needs: netfilter
SELECT packet_id, min(first_event) AS event_id, 'INFO' AS level, 'netfilter-path' AS code,
       'netfilter: ' || group_concat(part, '; ') AS message, NULL AS advice
FROM (
    SELECT packet_id, netns, min(id) AS first_event,
           coalesce(netns_name, netns) || ' ' || CASE nf_family WHEN 2 THEN 'ipv4' WHEN 10 THEN 'ipv6' ELSE 'family ' || nf_family END || ' '
               || group_concat(hook, ' > ') AS part
    FROM (
        SELECT e.packet_id, e.netns, e.netns_name, e.nf_family, min(e.id) AS id, h.name AS hook
        FROM event e JOIN nf_hook_name h ON h.hook = e.nf_hook
        WHERE e.packet_id IS NOT NULL AND e.probe_name LIKE 'nf:%'
        GROUP BY e.packet_id, e.netns, e.nf_family, e.nf_hook
        ORDER BY e.packet_id, min(e.id)
    )
    GROUP BY packet_id, netns, nf_family
    ORDER BY packet_id, min(id)
)
GROUP BY packet_id
