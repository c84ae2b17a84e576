-- id: tcp-retransmit
-- title: TCP retransmission: a segment was sent again because it (or its ACK) was not acknowledged in time
-- level: WARN
-- needs: tcp_retransmit_skb
SELECT e.packet_id, e.id AS event_id, 'WARN' AS level, 'tcp-retransmit' AS code,
       'TCP retransmission in netns ' || coalesce(e.netns_name, e.netns) || ': ' || e.detail AS message,
       'packets or their ACKs are lost on the path: look for drops of this connection (skbtrail drops), a lossy qdisc or link, or a peer that stopped answering' AS advice
FROM event e
WHERE e.probe_name = 'tcp_retransmit_skb'
