import Foundation
import GRDB
import SkbtrailEvents

/// Fills the TCP tables of 5-tcp.sql (tcp_conn, tcp_ev, tcp_win) from the decoded records.
extension Decoder {
    /// What a socket record is, as the `kind` column names it.
    static func tcpKind(_ probe: Int) -> String? {
        switch probe {
        case Int(ST_P_TCP_PROBE.rawValue): return "probe"
        case Int(ST_P_TCP_RETRANSMIT_SKB.rawValue): return "retransmit"
        case Int(ST_P_TCP_SEND_RESET.rawValue): return "send_reset"
        case Int(ST_P_TCP_RECEIVE_RESET.rawValue): return "receive_reset"
        case Int(ST_P_TCP_BAD_CSUM.rawValue): return "bad_csum"
        case Int(ST_P_INET_SOCK_SET_STATE.rawValue): return "state"
        case Int(ST_P_SOCK_RCVQUEUE_FULL.rawValue): return "rcvqueue_full"
        default: return nil
        }
    }

    /// One socket life being assembled.
    struct TCPConn {
        var netns: UInt32
        var sk: UInt64
        var family: UInt16
        var laddr: String
        var lport: UInt16
        var raddr: String
        var rport: UInt16
        var closed = false
    }
}

/// Assigns each socket record to a connection (a socket address's life in a netns, or a packet's
/// tuple when the record has no socket) and writes the rows of tcp_ev and tcp_win as records arrive
/// in time order; tcp_conn at the end.
final class TCPBuilder {
    struct SocketKey: Hashable { var sk: UInt64; var netns: UInt32 }
    private var conns: [Decoder.TCPConn] = []
    private var bySocket: [SocketKey: Int] = [:]
    private var byTuple: [String: Int] = [:]
    private let texts: TextCache
    private let db: Database
    private let ev, win: BulkInsert
    private let closeState: UInt8 = 7

    init(_ db: Database, texts: TextCache) throws {
        self.db = db
        self.texts = texts
        ev = try BulkInsert(db, "INSERT INTO tcp_ev VALUES (" + Array(repeating: "?", count: 15).joined(separator: ",") + ")")
        win = try BulkInsert(db, "INSERT INTO tcp_win VALUES (?, ?, ?)")
    }

    /// Takes record `k` (its id) of `packet`.
    func add(_ k: Int, _ item: Decoder.Event, packet: Decoder.Packet?) throws {
        let e = item.ev
        let h = item.hdr.value
        // the window of each TCP packet but resets, from its first step with the field
        if h.l4 == 6, h.tcpWindow >= 0, h.tcpFlags & 0x04 == 0, let p = packet, !p.windowSeen {
            p.windowSeen = true
            win.int(p.id); win.int(k); win.int(Int(h.tcpWindow))
            try win.run()
        }
        let probe = Int(e.probe)
        guard let kind = Decoder.tcpKind(probe) else { return }
        let s = e.args.sock
        let conn: Int
        if s.sk != 0 && (s.family == 2 || s.family == 10) {
            let v6 = s.family == 10
            let laddr = texts.address(IPAddress(kernelBytes: s.saddr, v6: v6))
            let raddr = texts.address(IPAddress(kernelBytes: s.daddr, v6: v6))
            let key = SocketKey(sk: s.sk, netns: e.netns)
            var current = bySocket[key]
            if let c = current {
                let old = conns[c]
                let otherTuple = old.lport != 0 && s.sport != 0 &&
                    (old.lport != s.sport || old.rport != s.dport || old.laddr != laddr || old.raddr != raddr)
                // a socket that closed, then a record of a new life at the same address
                let reopened = old.closed && !(probe == Int(ST_P_INET_SOCK_SET_STATE.rawValue) && s.oldstate == closeState && s.state == closeState)
                if otherTuple || reopened { current = nil }
            }
            if let c = current {
                conn = c
                if conns[c].lport == 0 && s.sport != 0 || conns[c].rport == 0 && s.dport != 0 {
                    // connect() sets SYN_SENT before it picks the local port
                    conns[c].laddr = laddr; conns[c].lport = s.sport; conns[c].raddr = raddr; conns[c].rport = s.dport
                }
            } else {
                conn = conns.count
                conns.append(Decoder.TCPConn(netns: e.netns, sk: s.sk, family: s.family, laddr: laddr, lport: s.sport,
                                     raddr: raddr, rport: s.dport))
                bySocket[key] = conn
            }
            if probe == Int(ST_P_INET_SOCK_SET_STATE.rawValue) && s.state == closeState { conns[conn].closed = true }
        } else if h.hasPorts && h.l4 == 6 {
            // no socket: a reset answering a packet, or a bad checksum; the local side is its destination
            let laddr = texts.address(h.dst), raddr = texts.address(h.src)
            let key = "\(e.netns) \(laddr) \(h.dport) \(raddr) \(h.sport)"
            if let c = byTuple[key] {
                conn = c
            } else {
                conn = conns.count
                conns.append(Decoder.TCPConn(netns: e.netns, sk: 0, family: h.l3 == .ipv6 ? 10 : 2, laddr: laddr,
                                     lport: h.dport, raddr: raddr, rport: h.sport))
                byTuple[key] = conn
            }
        } else {
            return
        }
        ev.int(k); ev.int(conn + 1); ev.text(kind)
        let hasSock = s.sk != 0
        if hasSock && probe != Int(ST_P_TCP_BAD_CSUM.rawValue) { ev.int(Int(s.state)) } else { ev.null() }
        if probe == Int(ST_P_INET_SOCK_SET_STATE.rawValue) { ev.int(Int(s.oldstate)) } else { ev.null() }
        if probe == Int(ST_P_TCP_SEND_RESET.rawValue) { ev.int(s.reason) } else { ev.null() }
        let tcpFields = hasSock && [ST_P_TCP_PROBE, ST_P_TCP_RETRANSMIT_SKB, ST_P_TCP_SEND_RESET, ST_P_TCP_RECEIVE_RESET,
                                    ST_P_INET_SOCK_SET_STATE].contains { Int($0.rawValue) == probe }
        if tcpFields {
            ev.int(s.srtt_us >> 3); ev.int(s.snd_cwnd); ev.int(s.snd_una); ev.int(s.snd_nxt)
            ev.int(s.packets_out); ev.int(s.retrans_out); ev.int(s.total_retrans)
        } else {
            for _ in 0..<7 { ev.null() }
        }
        if probe == Int(ST_P_SOCK_RCVQUEUE_FULL.rawValue) { ev.int(s.reason); ev.int(s.rcvbuf) } else { ev.null(); ev.null() }
        try ev.run()
    }

    /// Writes the connections.
    func finish() throws {
        let ins = try BulkInsert(db, "INSERT INTO tcp_conn VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for (i, c) in conns.enumerated() {
            ins.int(i + 1); ins.int(c.netns)
            if c.sk != 0 { ins.int(c.sk) } else { ins.null() }
            ins.int(Int(c.family)); ins.text(c.laddr); ins.int(Int(c.lport)); ins.text(c.raddr); ins.int(Int(c.rport))
            try ins.run()
        }
    }
}
