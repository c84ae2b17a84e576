-- id: netfilter-drop
-- title: Dropped by netfilter (iptables/nftables): family, hook, table and chain, and the rule whose counter rose
-- level: ERROR
-- needs: kfree_skb, netfilter-verdicts
-- Evidence, strongest first: the dropping rules whose counters rose during the recording (view
-- netfilter_drop_hit, from the start and end snapshots: family, table and chain from the rule itself,
-- so a bridge-family drop is named as one); else the family, hook and table of the netfilter brackets the
-- packet passed, with the DROP/REJECT lines of that table and hook that could match (view
-- netfilter_drop_candidate). A drop in a namespace whose hooks were not bracketed (not recorded) names
-- no hook. Conntrack INVALID drops are the rule conntrack-invalid.
WITH hits AS (
    SELECT packet_id, count(*) AS n, min(family) AS family, min(tbl) AS tbl, min(chain) AS chain, min(hook) AS hook,
           min(source) AS source, min(line) AS line, min(seq) AS seq, sum(packets) AS packets,
           group_concat('[' || CASE WHEN source = 'nft' THEN 'nft ' || tbl || ' ' || chain ELSE tbl || ' ' || chain END || '] '
                        || line || ' (' || packets || ' packet' || CASE WHEN packets = 1 THEN '' ELSE 's' END || ')', ' | ') AS text
    FROM netfilter_drop_hit WHERE invalid = 0 GROUP BY packet_id
),
lines AS (
    SELECT packet_id, group_concat(CASE WHEN source = 'nft' THEN '[nft ' || tbl || ' ' || chain || '] ' ELSE '[' || tbl || '] ' END || line, ' | ') AS text,
           count(*) AS n, min(source = 'nft') AS nft_only
    FROM netfilter_drop_candidate WHERE invalid = 0 GROUP BY packet_id
),
found AS (
    SELECT p.*, h.n AS hit_n, h.family AS hit_family, h.tbl AS hit_tbl, h.chain AS hit_chain, h.hook AS hit_hook,
           h.source AS hit_source, h.line AS hit_line, h.packets AS hit_packets, h.text AS hit_text,
           l.text AS candidates, l.nft_only,
           (EXISTS (SELECT 1 FROM netfilter_recorded_netns) AND NOT EXISTS (SELECT 1 FROM netfilter_recorded_netns r WHERE r.netns = p.netns)) AS unrecorded,
           -- dropped on a bridge port or the bridge: bridged traffic, which br_netfilter hands to the IP hooks
           EXISTS (SELECT 1 FROM bundle_interface i WHERE i.netns = p.netns AND i.ifindex = p.ifindex
                   AND (i.master IS NOT NULL OR i.kind = 'bridge')) AS bridged,
           (SELECT group_concat(s.name || '=' || s.value, ', ') FROM bundle_sysctl s
            WHERE s.netns = p.netns AND s.name = 'net.bridge.bridge-nf-call-' || CASE WHEN p.l3 = 'ipv6' THEN 'ip6tables' ELSE 'iptables' END) AS brnf,
           CASE WHEN p.netns_name IS NOT NULL THEN 'ip netns exec ' || p.netns_name || ' '
                WHEN EXISTS (SELECT 1 FROM bundle_netns n WHERE n.inode = p.netns AND n.is_root = 1) THEN '' END AS prefix
    FROM packet p
    LEFT JOIN hits h ON h.packet_id = p.id
    LEFT JOIN lines l ON l.packet_id = p.id
    WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP'
)
SELECT id AS packet_id, last_event AS event_id, 'ERROR' AS level, 'netfilter-drop' AS code,
       CASE
         WHEN hit_n = 1
           THEN 'dropped by netfilter in the ' || hit_family || ' family, ' || CASE WHEN hit_source = 'nft' THEN 'nft table ' || hit_tbl ELSE hit_tbl || ' table' END
                || ', ' || hit_chain || ' chain' || CASE WHEN hit_hook IS NOT NULL AND hit_hook != hit_chain THEN ' (' || lower(hit_hook) || ' hook)' ELSE '' END
                || ' of netns ' || coalesce(netns_name, netns) || ': ' || tuple
                || '; the rule "' || hit_line || '" matched ' || hit_packets || ' packet' || CASE WHEN hit_packets = 1 THEN '' ELSE 's' END || ' during the recording'
                || CASE WHEN bridged AND hit_family IN ('ipv4', 'ipv6', 'inet')
                        THEN ' (bridged traffic that br_netfilter handed to the ' || hit_family || ' hooks' || coalesce(': ' || brnf, '') || ')' ELSE '' END
         WHEN unrecorded
           THEN 'dropped by netfilter (NETFILTER_DROP at ' || coalesce(drop_symbol, '?') || ')' || coalesce(' on ' || ifname, '') || ' in netns ' || coalesce(netns_name, netns)
                || ', which was not recorded: its hooks were not bracketed and its rules not saved, so the family, hook, table and rule are unknown: ' || tuple
         WHEN nf_table LIKE 'after %'
           THEN 'dropped by netfilter in netns ' || coalesce(netns_name, netns) || ' after the last bracketed table of the ' || nf_family || ' ' || nf_hook
                || ' hook (' || nf_table || '): by an nftables chain of a higher priority or by a hook of another family (bridge, arp, netdev): ' || tuple
         ELSE 'dropped by netfilter in the ' || coalesce(nf_table || ' table', 'netfilter (table unknown)') || ', '
              || coalesce(nf_family || ' ', '') || coalesce(nf_hook || ' hook', 'hook unknown')
              || ' of netns ' || coalesce(netns_name, netns) || ': ' || tuple
              || CASE WHEN bridged AND nf_family IS NOT NULL
                      THEN ' (bridged traffic that br_netfilter handed to the ' || nf_family || ' hooks' || coalesce(': ' || brnf, '') || ')' ELSE '' END
       END AS message,
       CASE
         WHEN hit_n = 1 AND hit_source != 'nft'
           THEN 'if this traffic should pass, delete or change the rule: ' || coalesce(prefix, '')
                || CASE WHEN hit_source = 'ip6tables' THEN 'ip6tables' ELSE 'iptables' END || ' -t ' || hit_tbl || ' '
                || CASE WHEN hit_line LIKE 'policy %' THEN '-P ' || hit_chain || ' ACCEPT' ELSE '-D' || substr(hit_line, 3) END
                || CASE WHEN prefix IS NULL THEN ' (in the namespace with inode ' || netns || ': find a process in it with lsns -t net)' ELSE '' END
         WHEN hit_n = 1
           THEN 'if this traffic should pass, delete or change the rule: find its handle with ' || coalesce(prefix, '') || 'nft -a list chain ' || hit_tbl || ' ' || hit_chain
                || ', then nft delete rule ' || hit_tbl || ' ' || hit_chain || ' handle N'
                || CASE WHEN prefix IS NULL THEN ' (in the namespace with inode ' || netns || ': find a process in it with lsns -t net)' ELSE '' END
         WHEN unrecorded
           THEN 'record that namespace too (skbtrail-record without --netns, or with --netns naming it), or read its rule counters now: '
                || coalesce(prefix, '(in the namespace with inode ' || netns || ', found with lsns -t net) ') || 'nft list ruleset'
         ELSE CASE WHEN hit_n > 1 THEN 'rules that could match and counted packets during the recording: ' || hit_text || '. '
                   WHEN candidates IS NOT NULL THEN 'rule(s) that could match: ' || candidates || '. '
                   ELSE 'no DROP/REJECT rule of that table and hook in the ruleset snapshot matches: the rules changed during the recording, or a jump target drops. ' END
              || 'Fix or remove the rule; see which one counts packets with: ' || coalesce(prefix, '(in the namespace with inode ' || netns || ', found with lsns -t net) ')
              -- an nftables table's own name (from nft_do_chain) is no iptables table
              || CASE WHEN nft_only OR nf_table IS NULL OR nf_table LIKE 'after %'
                        OR substr(nf_table, 1, instr(nf_table || ' ', ' ') - 1) NOT IN ('filter', 'nat', 'mangle', 'raw', 'security')
                      THEN 'nft list ruleset'
                      ELSE 'iptables -t ' || substr(nf_table, 1, instr(nf_table || ' ', ' ') - 1) || ' -L ' || coalesce(nf_hook, '') || ' -v -n --line-numbers' END
       END AS advice,
       CASE WHEN coalesce(hit_n, 0) != 1 AND NOT EXISTS (SELECT 1 FROM bundle_drop_reason) THEN 'inferred'
            WHEN coalesce(hit_n, 0) != 1 AND (nf_hook IS NULL OR nf_table IS NULL OR nf_table LIKE 'after %') THEN 'inferred' END AS confidence,
       CASE WHEN coalesce(hit_n, 0) != 1 AND NOT EXISTS (SELECT 1 FROM bundle_drop_reason)
            THEN 'this kernel''s kfree_skb has no drop reason (kernel 5.17+ has): NETFILTER_DROP is inferred from a netfilter table''s DROP verdict (kernel-function probes)'
            WHEN coalesce(hit_n, 0) != 1 AND unrecorded THEN 'the namespace where it was dropped was not recorded: inferred from the drop reason NETFILTER_DROP only'
            WHEN coalesce(hit_n, 0) != 1 AND (nf_hook IS NULL OR nf_table IS NULL)
            THEN 'the hook or table is unknown (no netfilter bracket before the drop): inferred from the drop reason NETFILTER_DROP only'
            WHEN coalesce(hit_n, 0) != 1 AND nf_table LIKE 'after %'
            THEN 'the drop came after the last bracket of the hook and no rule counter rose: the table is inferred' END AS inferred
FROM found
-- conntrack INVALID drops, when no other line could match, are rules/conntrack-invalid.sql
WHERE hit_n IS NOT NULL OR candidates IS NOT NULL
   OR NOT EXISTS (SELECT 1 FROM netfilter_drop_candidate c WHERE c.packet_id = found.id AND c.invalid = 1)
