-- id: nat
-- title: NAT rewrote the packet's addresses or ports
-- level: INFO
-- needs: netfilter-verdicts
SELECT packet_id, event_id, 'INFO' AS level, 'nat' AS code,
       text || CASE WHEN nf_hook IS NOT NULL THEN ' in ' || coalesce(nf_family || ' ', '') || nf_hook || coalesce(', ' || nf_table, '') ELSE '' END
           || ' of netns ' || coalesce(netns_name, netns) AS message,
       NULL AS advice
FROM nat_rewrite
