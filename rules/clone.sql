-- id: clone
-- title: The packet was cloned (AF_PACKET capture, ping socket, TCP retransmit queue, ...)
-- level: INFO
-- needs: -
SELECT c.child_id AS packet_id, p.first_event AS event_id, 'INFO' AS level, 'clone' AS code,
       'clone of packet ' || c.parent_id || CASE WHEN c.inferred = 1 THEN ' (inferred: ' || c.why || ')' ELSE '' END AS message,
       NULL AS advice
FROM clone c JOIN packet p ON p.id = c.child_id
