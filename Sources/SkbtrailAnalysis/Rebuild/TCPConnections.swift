import SkbtrailBundle
import SkbtrailEvents

/// Which TCP connection a socket record belongs to: a socket address's life in a network namespace
/// (a new one where the address closed and comes back, or shows another 4-tuple), or, for a record
/// without a socket (a reset answering a packet for no socket, a bad checksum), the packet's tuple with
/// its destination as the local side.
struct TCPConnections {
    struct Connection: Equatable {
        var netns: UInt32
        var sk: UInt64
        var family: UInt16
        var laddr: IPAddress
        var lport: UInt16
        var raddr: IPAddress
        var rport: UInt16
        var closed = false
    }

    private(set) var all: [Connection] = []
    private struct SocketKey: Hashable { var sk: UInt64; var netns: UInt32 }
    private struct TupleKey: Hashable { var netns: UInt32; var laddr: IPAddress; var lport: UInt16; var raddr: IPAddress; var rport: UInt16 }
    private var bySocket: [SocketKey: Int] = [:]
    private var byTuple: [TupleKey: Int] = [:]
    private static let close: UInt8 = 7  // TCP_CLOSE

    /// What a socket record is, as tcp_ev's `kind` says; nil for a record of no TCP probe.
    static func kind(_ e: st_event) -> String? {
        switch e.probeID {
        case ST_P_TCP_PROBE: return "probe"
        case ST_P_TCP_RETRANSMIT_SKB: return "retransmit"
        case ST_P_TCP_SEND_RESET: return "send_reset"
        case ST_P_TCP_RECEIVE_RESET: return "receive_reset"
        case ST_P_TCP_BAD_CSUM: return "bad_csum"
        case ST_P_INET_SOCK_SET_STATE: return "state"
        case ST_P_SOCK_RCVQUEUE_FULL: return "rcvqueue_full"
        default: return nil
        }
    }

    /// The index of `e`'s connection (a new one where it starts one), or nil when it names none (no
    /// socket and no TCP header).
    mutating func assign(_ e: st_event, headers h: PacketHeaders) -> Int? {
        let s = e.args.sock
        if s.sk != 0 && (s.family == 2 || s.family == 10) {
            let v6 = s.family == 10
            let laddr = IPAddress(kernelBytes: s.saddr, v6: v6), raddr = IPAddress(kernelBytes: s.daddr, v6: v6)
            let key = SocketKey(sk: s.sk, netns: e.netns)
            let isState = e.probeID == ST_P_INET_SOCK_SET_STATE
            var current = bySocket[key]
            if let c = current {
                let old = all[c]
                let otherTuple = old.lport != 0 && s.sport != 0 &&
                    (old.lport != s.sport || old.rport != s.dport || old.laddr != laddr || old.raddr != raddr)
                // a socket that closed, then a record of a new life at the same address
                let reopened = old.closed && !(isState && s.oldstate == Self.close && s.state == Self.close)
                if otherTuple || reopened { current = nil }
            }
            let conn: Int
            if let c = current {
                conn = c
                if all[c].lport == 0 && s.sport != 0 || all[c].rport == 0 && s.dport != 0 {
                    // connect() sets SYN_SENT before it picks the local port
                    all[c].laddr = laddr; all[c].lport = s.sport; all[c].raddr = raddr; all[c].rport = s.dport
                }
            } else {
                conn = all.count
                all.append(Connection(netns: e.netns, sk: s.sk, family: s.family, laddr: laddr, lport: s.sport,
                                      raddr: raddr, rport: s.dport))
                bySocket[key] = conn
            }
            if isState && s.state == Self.close { all[conn].closed = true }
            return conn
        }
        guard h.hasPorts && h.l4 == 6 else { return nil }
        // no socket: a reset answering a packet, or a bad checksum; the local side is its destination
        let key = TupleKey(netns: e.netns, laddr: h.dst, lport: h.dport, raddr: h.src, rport: h.sport)
        if let c = byTuple[key] { return c }
        all.append(Connection(netns: e.netns, sk: 0, family: h.l3 == .ipv6 ? 10 : 2, laddr: h.dst, lport: h.dport,
                              raddr: h.src, rport: h.sport))
        byTuple[key] = all.count - 1
        return all.count - 1
    }
}
