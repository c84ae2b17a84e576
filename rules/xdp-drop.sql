-- id: xdp-drop
-- title: An XDP program dropped the packet or failed (XDP_DROP, XDP_ABORTED, redirect errors)
-- level: ERROR
-- needs: kfree_skb, xdp_exception
SELECT p.id AS packet_id, p.last_event AS event_id, 'ERROR' AS level, 'xdp-drop' AS code,
       'an XDP program on ' || coalesce(p.ifname, '?') || ' in netns ' || coalesce(p.netns_name, p.netns) || ' dropped ' || p.tuple
           || CASE WHEN p.drop_reason = 'XDP' THEN '' ELSE ' (reason ' || p.drop_reason || ', freed in ' || p.drop_symbol || ')' END AS message,
       'check the XDP program attached to ' || coalesce(p.ifname, 'the device') || ' (ip link show dev ' || coalesce(p.ifname, 'IF')
           || ', bpftool net): it returns XDP_DROP for this traffic; detach it with ip link set dev ' || coalesce(p.ifname, 'IF') || ' xdp off' AS advice
FROM packet p
-- Generic XDP (xdpgeneric, veth) frees dropped packets with NOT_SPECIFIED in do_xdp_generic on 6.18:
-- the freeing function names XDP when the reason does not.
WHERE p.fate = 'dropped' AND (p.drop_reason = 'XDP' OR p.drop_symbol LIKE '%xdp%')
UNION ALL
SELECT e.packet_id, e.id, 'ERROR', 'xdp-exception',
       'XDP exception on ' || coalesce(e.ifname, '?') || ' in netns ' || coalesce(e.netns_name, e.netns) || ': ' || e.detail
           || ' (XDP_ABORTED, or an XDP_TX/XDP_REDIRECT that failed)',
       'an XDP program aborted or redirected to a device that cannot take it; check the program and its redirect target ifindex (bpftool net)'
FROM event e
WHERE e.probe_name = 'xdp_exception'
