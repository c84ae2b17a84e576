import GRDB
import SkbtrailBundle
import SkbtrailEvents

enum TCPEventColumn: Int32, TableColumns {
    static let table = "tcp_ev"
    case event_id = 1, conn_id, kind, state, oldstate, reason, srtt_us, snd_cwnd, snd_una, snd_nxt, packets_out
    case retrans_out, total_retrans, rmem, rcvbuf
}

enum TCPWindowColumn: Int32, TableColumns {
    static let table = "tcp_win"
    case packet_id = 1, event_id, window
}

enum TCPConnectionColumn: Int32, TableColumns {
    static let table = "tcp_conn"
    case id = 1, netns, sk, family, laddr, lport, raddr, rport
}

/// Writes the TCP tables of 5-tcp.sql as records arrive in time order: tcp_ev (a row per socket
/// record, with its connection), tcp_win (each TCP packet's window, from its first step with the field);
/// tcp_conn at the end.
final class TCPRows {
    private var connections = TCPConnections()
    private let texts: TextCache
    private let events: RowWriter<TCPEventColumn>
    private let windows: RowWriter<TCPWindowColumn>
    private let db: Database

    init(_ db: Database, texts: TextCache) throws {
        self.db = db
        self.texts = texts
        events = try RowWriter(db)
        windows = try RowWriter(db)
    }

    /// Takes record `id` of `packet`.
    func add(_ id: Int, _ r: DecodedRecord, packet: PacketLife?) throws {
        let e = r.ev
        let h = r.hdr.value
        // the window of each TCP packet but resets, from its first step with the field
        if h.l4 == 6, h.tcpWindow >= 0, h.tcpFlags & 0x04 == 0, let p = packet, !p.windowSeen {
            p.windowSeen = true
            windows.int(.packet_id, p.id); windows.int(.event_id, id); windows.int(.window, Int(h.tcpWindow))
            try windows.run()
        }
        guard let kind = TCPConnections.kind(e), let conn = connections.assign(e, headers: h) else { return }
        let s = e.args.sock
        let w = events
        w.int(.event_id, id); w.int(.conn_id, conn + 1); w.text(.kind, kind)
        let hasSock = s.sk != 0
        if hasSock && e.probeID != ST_P_TCP_BAD_CSUM { w.int(.state, Int(s.state)) }
        if e.probeID == ST_P_INET_SOCK_SET_STATE { w.int(.oldstate, Int(s.oldstate)) }
        if e.probeID == ST_P_TCP_SEND_RESET { w.int(.reason, s.reason) }
        switch e.probeID {
        case ST_P_TCP_PROBE, ST_P_TCP_RETRANSMIT_SKB, ST_P_TCP_SEND_RESET, ST_P_TCP_RECEIVE_RESET, ST_P_INET_SOCK_SET_STATE:
            if hasSock {
                w.int(.srtt_us, s.srtt_us >> 3); w.int(.snd_cwnd, s.snd_cwnd); w.int(.snd_una, s.snd_una)
                w.int(.snd_nxt, s.snd_nxt); w.int(.packets_out, s.packets_out); w.int(.retrans_out, s.retrans_out)
                w.int(.total_retrans, s.total_retrans)
            }
        case ST_P_SOCK_RCVQUEUE_FULL:
            w.int(.rmem, s.reason); w.int(.rcvbuf, s.rcvbuf)
        default:
            break
        }
        try w.run()
    }

    /// Writes the connections.
    func finish() throws {
        let w = try RowWriter<TCPConnectionColumn>(db)
        for (i, c) in connections.all.enumerated() {
            w.int(.id, i + 1); w.int(.netns, c.netns)
            if c.sk != 0 { w.int(.sk, c.sk) }
            w.int(.family, Int(c.family)); w.text(.laddr, texts.address(c.laddr)); w.int(.lport, Int(c.lport))
            w.text(.raddr, texts.address(c.raddr)); w.int(.rport, Int(c.rport))
            try w.run()
        }
    }
}
