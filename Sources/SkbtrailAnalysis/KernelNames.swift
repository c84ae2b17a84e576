import Foundation

/// Names for the kernel numbers that appear in records (probe ids, netfilter hooks, TCP states).
public enum KernelNames {
    /// Probe names by st_probe id, for bundles whose probe table lacks one (the table wins).
    public static let probes: [Int: String] = [
        1: "netif_receive_skb", 2: "netif_rx", 3: "napi_gro_receive_entry", 4: "net_dev_queue",
        5: "net_dev_start_xmit", 6: "net_dev_xmit", 10: "kfree_skb", 11: "consume_skb",
        12: "skb_copy_datagram_iovec", 20: "tcp_retransmit_skb", 21: "tcp_send_reset", 22: "tcp_receive_reset",
        23: "tcp_bad_csum", 24: "tcp_probe", 25: "inet_sock_set_state", 26: "sock_rcvqueue_full",
        30: "udp_fail_queue_rcv_skb", 31: "icmp_send", 40: "fib_table_lookup", 41: "fib6_table_lookup",
        42: "neigh_update", 43: "neigh_event_send_dead", 50: "qdisc_enqueue", 51: "qdisc_dequeue",
        52: "xdp_exception",
    ]

    static let nfBracketFirst = 64
    static let nfBracketLast = 79

    static func isNFBracket(_ probe: Int) -> Bool { probe >= nfBracketFirst && probe <= nfBracketLast }

    /// "ipv4", "ipv6" for NFPROTO_* values.
    public static func family(_ pf: Int) -> String {
        switch pf {
        case 2: return "ipv4"
        case 10: return "ipv6"
        case 7: return "bridge"
        case 3: return "arp"
        case 5: return "netdev"
        default: return "pf\(pf)"
        }
    }

    /// PREROUTING .. POSTROUTING.
    public static func hook(_ hook: Int) -> String {
        switch hook {
        case 0: return "PREROUTING"
        case 1: return "INPUT"
        case 2: return "FORWARD"
        case 3: return "OUTPUT"
        case 4: return "POSTROUTING"
        default: return "hook\(hook)"
        }
    }

    /// The table that runs after bracket `b` (between its priority and the next bracket's).
    /// Brackets: -1000, -250, -175, -125, -50, 25, 75, 150; tables: raw -300 (and defrag -400),
    /// conntrack -200, mangle -150, nat (DNAT) -100, filter 0, security 50, nat (SNAT) 100.
    public static func tableAfter(bracket b: Int) -> String {
        switch b {
        case 0: return "raw"
        case 1: return "conntrack"
        case 2: return "mangle"
        case 3: return "nat"
        case 4: return "filter"
        case 5: return "security"
        case 6: return "nat"
        case 7: return "after priority 150"
        default: return "bracket \(b)"
        }
    }

    /// "filter table", or the name itself where it is not a table ("after priority 150").
    public static func tablePhrase(_ name: String) -> String {
        name.hasPrefix("after") ? name : name + " table"
    }

    public static func tcpState(_ s: Int) -> String {
        let names = [1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
                     7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"]
        return names[s] ?? "state \(s)"
    }

    public static func ctInfo(_ i: Int) -> String {
        switch i {
        case 0: return "ESTABLISHED"
        case 1: return "RELATED"
        case 2: return "NEW"
        case 3: return "ESTABLISHED_REPLY"
        case 4: return "RELATED_REPLY"
        case 7: return "UNTRACKED"
        default: return "ctinfo \(i)"
        }
    }

    public static func nudState(_ s: Int) -> String {
        let bits = [(0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
                    (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT")]
        let set = bits.filter { s & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "NONE" : set.joined(separator: "|")
    }

    public static func xdpAction(_ a: Int) -> String {
        let names = [0: "ABORTED", 1: "DROP", 2: "PASS", 3: "TX", 4: "REDIRECT"]
        return names[a] ?? "action \(a)"
    }
}
