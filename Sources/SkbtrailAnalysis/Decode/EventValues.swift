import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// The columns of the `ev` virtual table (schema/analysis/1-tables.sql): one row per record, in time order.
enum EventColumn: Int32, TableColumns {
    static let table = "ev"
    case id = 1, ts, probe, probe_name, cpu, pid, tid, comm, netns, ifindex, skb, head, len, mark, `protocol`, l3_from, flags
    case packet_id, step
    case l3, l4, proto, vlan, saddr, daddr, sport, dport, tcp_flags, tcp_seq, tcp_ack, icmp_type, icmp_code, icmp_id
    case icmp_seq, ip_id, ttl, tunnel, inner_tuple
    case reason, location
    case nf_family, nf_hook, nf_bracket, nf_priority, nf_in_ifindex, nf_out_ifindex, ct_info, ct_status, ct_mark, ct_orig
    case ct_reply
    case rc, sk, sk_state, sk_oldstate, detail
    /// kfree_skb with --drop-stack: the kernel stack's id (bundle_stack, the stack_frame view)
    case stack
    /// The packet bytes from the network header, as recorded (a HIDDEN column: `SELECT *` leaves it out).
    case data
}

/// The value of each `ev` column for a record, computed when SQLite asks for it.
enum EventValues {
    @inline(__always) static func int(_ ctx: OpaquePointer, _ v: Int64) { sqlite3_result_int64(ctx, v) }
    @inline(__always) static func int(_ ctx: OpaquePointer, _ v: Int) { sqlite3_result_int64(ctx, Int64(v)) }
    @inline(__always) static func text(_ ctx: OpaquePointer, _ v: String) {
        var s = v
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { sqlite3_result_text(ctx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT_VALUE) }
        }
    }
    /// Text, NULL when empty.
    @inline(__always) static func nonEmpty(_ ctx: OpaquePointer, _ v: String) {
        if v.isEmpty { sqlite3_result_null(ctx) } else { text(ctx, v) }
    }

    static func result(_ column: EventColumn, chunk: EventSource.Chunk, index i: Int, source: EventSource, into ctx: OpaquePointer) {
        let e = chunk.events[i]
        let role = e.role
        switch column {
        case .id: int(ctx, Int64(chunk.ids[i]))
        case .ts: int(ctx, Int64(bitPattern: e.ts))
        case .probe: int(ctx, Int(e.probe))
        case .probe_name: text(ctx, source.probeName(e))
        case .cpu: int(ctx, Int(e.cpu))
        case .pid: int(ctx, Int(e.pid))
        case .tid: int(ctx, Int(e.tid))
        case .comm: text(ctx, source.texts.comm(e))
        case .netns: int(ctx, Int(e.netns))
        case .ifindex: int(ctx, Int(e.ifindex))
        case .skb: int(ctx, Int64(bitPattern: e.skb))
        case .head: int(ctx, Int64(bitPattern: e.head))
        case .len: int(ctx, Int(e.len))
        case .mark: int(ctx, Int(e.mark))
        case .`protocol`: int(ctx, Int(UInt16(bigEndian: e.protocol)))
        case .l3_from: int(ctx, Int(e.l3_from))
        case .flags: int(ctx, Int(e.flags))
        case .packet_id:
            if chunk.packets[i] != 0 { int(ctx, Int(chunk.packets[i])) } else { sqlite3_result_null(ctx) }
        case .step:
            if chunk.packets[i] != 0 { int(ctx, Int(chunk.steps[i])) } else { sqlite3_result_null(ctx) }
        case .l3, .l4, .proto, .vlan, .saddr, .daddr, .sport, .dport, .tcp_flags, .tcp_seq, .tcp_ack, .icmp_type, .icmp_code,
             .icmp_id, .icmp_seq, .ip_id, .ttl, .tunnel, .inner_tuple:
            header(column, source.headers(chunk, i).value, texts: source.texts, into: ctx)
        case .reason:
            if role == .free { int(ctx, Int(e.args.free.reason)) }
            else if e.probeID == ST_P_TCP_SEND_RESET || e.probeID == ST_P_UDP_FAIL_QUEUE_RCV_SKB { int(ctx, Int(e.args.sock.reason)) }
            else { sqlite3_result_null(ctx) }
        case .stack:
            if role == .free && e.args.free.stack != 0 { int(ctx, Int(e.args.free.stack)) } else { sqlite3_result_null(ctx) }
        case .location:
            if role == .free || role == .consume { int(ctx, Int64(bitPattern: e.args.free.location)) } else { sqlite3_result_null(ctx) }
        case .nf_family, .nf_hook, .nf_bracket, .nf_priority, .nf_in_ifindex, .nf_out_ifindex, .ct_info, .ct_status, .ct_mark,
             .ct_orig, .ct_reply:
            netfilter(column, e, texts: source.texts, into: ctx)
        case .rc:
            switch e.probeID {
            case ST_P_NET_DEV_XMIT, ST_P_XDP_EXCEPTION: int(ctx, Int(e.args.dev.rc))
            case ST_P_FIB_TABLE_LOOKUP, ST_P_FIB6_TABLE_LOOKUP, ST_P_NEIGH_EVENT_SEND_DEAD: int(ctx, Int(e.args.route.err))
            case ST_P_SKB_COPY_DATAGRAM_IOVEC: int(ctx, Int(e.args.misc.a))
            default:
                // a kernel function's return value (a netfilter verdict: rc & 255, NF_DROP 0)
                // (a function of the packet's path has one only in a record of its exit)
                let info = ProbeTable.info(Int(e.probe))
                if info?.args == .function && (info?.role != .function || e.args.fn.nf & UInt8(ST_FN_RET.rawValue) != 0) {
                    int(ctx, e.args.fn.ret)
                } else {
                    sqlite3_result_null(ctx)
                }
            }
        case .sk, .sk_state, .sk_oldstate:
            guard ProbeTable.info(Int(e.probe))?.args == .socket else { sqlite3_result_null(ctx); return }
            let s = e.args.sock
            switch column {
            case .sk: if s.sk != 0 { int(ctx, Int64(bitPattern: s.sk)) } else { sqlite3_result_null(ctx) }
            case .sk_state: int(ctx, Int(s.state))
            default: if e.probeID == ST_P_INET_SOCK_SET_STATE { int(ctx, Int(s.oldstate)) } else { sqlite3_result_null(ctx) }
            }
        case .detail: text(ctx, source.detail(e))
        case .data:
            let r = chunk.ranges[i]
            guard r.count > 0, e.l3_from != 0 else { sqlite3_result_null(ctx); return }
            chunk.bytes.withUnsafeBytes { raw in
                sqlite3_result_blob(ctx, raw.baseAddress! + r.start, Int32(r.count), SQLITE_TRANSIENT_VALUE)
            }
        }
    }

    private static func header(_ column: EventColumn, _ h: PacketHeaders, texts: TextCache, into ctx: OpaquePointer) {
        guard h.l3 != .none else { sqlite3_result_null(ctx); return }
        let ports = h.hasPorts
        switch column {
        case .l3: text(ctx, h.l3 == .ipv4 ? "ipv4" : h.l3 == .ipv6 ? "ipv6" : "arp")
        case .l4: if h.l3 == .arp { sqlite3_result_null(ctx) } else { int(ctx, Int(h.l4)) }
        case .proto: text(ctx, h.l3 == .arp ? "ARP" : h.protoName)
        case .vlan: if h.vlan != 0 { int(ctx, Int(h.vlan) - 1) } else { sqlite3_result_null(ctx) }
        case .saddr: nonEmpty(ctx, texts.address(h.src))
        case .daddr: nonEmpty(ctx, texts.address(h.dst))
        case .sport: if ports { int(ctx, Int(h.sport)) } else { sqlite3_result_null(ctx) }
        case .dport: if ports { int(ctx, Int(h.dport)) } else { sqlite3_result_null(ctx) }
        case .tcp_flags: if h.l4 == 6 && ports { text(ctx, texts.tcpFlags[Int(h.tcpFlags)]) } else { sqlite3_result_null(ctx) }
        case .tcp_seq: if h.l4 == 6 && ports { int(ctx, Int(h.tcpSeq)) } else { sqlite3_result_null(ctx) }
        case .tcp_ack: if h.l4 == 6 && ports { int(ctx, Int(h.tcpAck)) } else { sqlite3_result_null(ctx) }
        case .icmp_type: if h.icmpType >= 0 { int(ctx, Int(h.icmpType)) } else { sqlite3_result_null(ctx) }
        case .icmp_code: if h.icmpType >= 0 { int(ctx, Int(h.icmpCode)) } else { sqlite3_result_null(ctx) }
        case .icmp_id: if h.icmpID >= 0 { int(ctx, Int(h.icmpID)) } else { sqlite3_result_null(ctx) }
        case .icmp_seq: if h.icmpID >= 0 { int(ctx, Int(h.icmpSeq)) } else { sqlite3_result_null(ctx) }
        case .ip_id: if h.ipID >= 0 { int(ctx, Int(h.ipID)) } else { sqlite3_result_null(ctx) }
        case .ttl: if h.ttl >= 0 { int(ctx, Int(h.ttl)) } else { sqlite3_result_null(ctx) }
        case .tunnel: nonEmpty(ctx, h.tunnel)
        case .inner_tuple: nonEmpty(ctx, h.inner)
        default: sqlite3_result_null(ctx)
        }
    }

    /// From the bracket record, a netfilter function's record, or the last bracket a dropped packet passed.
    private static func netfilter(_ column: EventColumn, _ e: st_event, texts: TextCache, into ctx: OpaquePointer) {
        if e.role == .netfilter {
            let a = e.args.nf
            let ct = e.has(ST_F_CT)
            switch column {
            case .nf_family: int(ctx, Int(a.pf))
            case .nf_hook: int(ctx, Int(a.hook))
            case .nf_bracket: int(ctx, Int(a.bracket))
            case .nf_priority: int(ctx, Int(a.priority))
            case .nf_in_ifindex: int(ctx, Int(a.in_ifindex))
            case .nf_out_ifindex: int(ctx, Int(a.out_ifindex))
            case .ct_info: if ct { int(ctx, Int(a.ctinfo)) } else { sqlite3_result_null(ctx) }
            case .ct_status: if ct { int(ctx, Int(a.ct_status)) } else { sqlite3_result_null(ctx) }
            case .ct_mark: if ct { int(ctx, Int(a.ct_mark)) } else { sqlite3_result_null(ctx) }
            case .ct_orig: if ct { text(ctx, texts.tuple(a.ct_orig)) } else { sqlite3_result_null(ctx) }
            case .ct_reply: if ct { text(ctx, texts.tuple(a.ct_reply)) } else { sqlite3_result_null(ctx) }
            default: sqlite3_result_null(ctx)
            }
        } else if e.role == .nfVerdict && e.args.fn.nf & UInt8(ST_FN_NF_HOOK.rawValue) != 0 {
            let a = e.args.fn
            let prio = a.nf & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0
            switch column {
            case .nf_family: int(ctx, Int(a.pf))
            case .nf_hook: int(ctx, Int(a.hook))
            case .nf_bracket: if prio { int(ctx, Int(a.bracket)) } else { sqlite3_result_null(ctx) }
            case .nf_priority: if prio { int(ctx, Int(a.priority)) } else { sqlite3_result_null(ctx) }
            default: sqlite3_result_null(ctx)
            }
        } else if e.role == .free && (e.has(ST_F_NF_LAST) || e.has(ST_F_NF_FN)) {
            let a = e.args.free
            // a function's attribution knows a bracket only from a priority
            let bracket = e.has(ST_F_NF_LAST) || a.nf_fn & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0
            switch column {
            case .nf_family: int(ctx, Int(a.nf_pf))
            case .nf_hook: int(ctx, Int(a.nf_hook))
            case .nf_bracket: if bracket { int(ctx, Int(a.nf_bracket)) } else { sqlite3_result_null(ctx) }
            case .nf_priority:
                if bracket, let prio = NetfilterBrackets.priority(Int(a.nf_bracket)) { int(ctx, Int(prio)) } else { sqlite3_result_null(ctx) }
            default: sqlite3_result_null(ctx)
            }
        } else {
            sqlite3_result_null(ctx)
        }
    }
}

/// Records per attach point (probe, and family and hook for netfilter brackets) with their names, for
/// `probe_events`, counted as the decode goes.
final class ProbeCounts {
    private let names: BundleNames
    private var index: [Int: Int] = [:]
    private(set) var counts: [(probe: Int, family: Int?, hook: Int?, name: String, n: Int)] = []

    init(names: BundleNames) { self.names = names }

    /// Counts record `e`; returns the index of its attach point in `counts`.
    func add(_ e: st_event) -> Int {
        let probe = Int(e.probe)
        let nf = e.role == .netfilter
        let key = nf ? BundleNames.nfKey(probe: probe, family: Int(e.args.nf.pf), hook: Int(e.args.nf.hook)) : probe
        if let i = index[key] {
            counts[i].n += 1
            return i
        }
        index[key] = counts.count
        counts.append((probe, nf ? Int(e.args.nf.pf) : nil, nf ? Int(e.args.nf.hook) : nil, names.probeName(e), 1))
        return counts.count - 1
    }
}
