-- id: probe-missing
-- title: Probes that were not attached in this recording: findings that need them are inferred
-- level: INFO
-- needs: -
SELECT NULL AS packet_id, NULL AS event_id, 'INFO' AS level, 'probe-missing' AS code,
       CASE WHEN kind = 'netfilter' THEN 'netfilter brackets (' || n || ' attach points)' ELSE 'probe ' || name END
           || ' not attached: ' || coalesce(error, 'no reason recorded') AS message,
       CASE WHEN kind = 'netfilter' THEN 'netfilter drops then have no table or hook (needs BPF netfilter links, kernel 6.4 or later)'
            ELSE 'what this probe would show is inferred from the other events (see skbtrail rules FILE)' END AS advice
FROM (SELECT kind, CASE WHEN kind = 'netfilter' THEN 'netfilter' ELSE name END AS name, min(error) AS error, count(*) AS n
      FROM probe WHERE attached = 0 GROUP BY 1, 2)
