import Foundation
import SkbtrailBundle
import SkbtrailEvents

/// Names for the kernel numbers that appear in records (probe ids, netfilter hooks, TCP states).
public enum KernelNames {
    /// The name of probe `id` in this build's probe table, for bundles whose probe table lacks one.
    public static func probeName(_ id: Int) -> String? {
        guard let p = ProbeTable.info(id), p.kind != .netfilter else { return nil }
        return p.name
    }

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

    /// Netfilter hook numbers (enum nf_inet_hooks), as records carry them.
    public enum Hook: UInt8, Sendable {
        case preRouting = 0, localIn, forward, localOut, postRouting
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

    /// The table that runs after bracket `b` (between its priority and the next bracket's), from the
    /// bracket table of events.h.
    public static func tableAfter(bracket b: Int) -> String {
        b >= 0 && b < NetfilterBrackets.count ? NetfilterBrackets.tablesAfter[b] : "bracket \(b)"
    }

    /// A netfilter verdict (NF_DROP .. NF_STOP), with the errno of NF_DROP_ERR in its upper bits.
    public static func nfVerdict(_ ret: Int64) -> String {
        let names = ["DROP", "ACCEPT", "STOLEN", "QUEUE", "REPEAT", "STOP"]
        let v = Int(ret & Int64(ST_NF_VERDICT_MASK))
        var s = v < names.count ? names[v] : "verdict \(v)"
        let err = Int(UInt32(truncatingIfNeeded: ret) >> 16)
        if v == Int(ST_NF_DROP) && err != 0 { s += " (errno \(err))" }
        return s
    }

    /// Linux errno names (x86, arm64, and most others share these), for a function's negative return value.
    static let errnoNames: [Int: String] = [
        1: "EPERM", 2: "ENOENT", 5: "EIO", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY",
        17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 28: "ENOSPC", 32: "EPIPE", 71: "EPROTO", 75: "EOVERFLOW",
        90: "EMSGSIZE", 92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT",
        99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 103: "ECONNABORTED", 104: "ECONNRESET",
        105: "ENOBUFS", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 18: "EXDEV",
    ]

    /// A kernel function's return value: "0", "-22 (EINVAL)", or an address in hex.
    public static func returnValue(_ ret: Int64) -> String {
        if ret < 0 && ret >= -4095 { return errnoNames[Int(-ret)].map { "\(ret) (\($0))" } ?? "\(ret)" }
        if UInt64(bitPattern: ret) >= 0xffff_0000_0000_0000 { return "0x" + String(UInt64(bitPattern: ret), radix: 16) }
        return "\(ret)"
    }

    /// The text of a NUL-terminated fixed-size char array of a record (a table or chain name).
    public static func cString<T>(_ chars: T) -> String {
        withUnsafeBytes(of: chars) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
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

    /// Whether a conntrack ctinfo is of the reply direction (IP_CT_ESTABLISHED_REPLY and after; 7 is
    /// IP_CT_UNTRACKED).
    public static func isReply(ctinfo: UInt8) -> Bool { ctinfo >= 3 && ctinfo != 7 }

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
