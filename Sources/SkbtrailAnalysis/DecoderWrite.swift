import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents

extension Decoder {
    private static let pKfree = Int(ST_P_KFREE_SKB.rawValue)
    private static let pConsume = Int(ST_P_CONSUME_SKB.rawValue)
    private static let pXmit = Int(ST_P_NET_DEV_XMIT.rawValue)
    private static let pCopy = Int(ST_P_SKB_COPY_DATAGRAM_IOVEC.rawValue)

    /// Where a packet's life ended, as far as the records say.
    struct Outcome {
        var fate = "incomplete"
        var incomplete: String?
        var dropReason: Int64?
        var dropReasonName: String?
        var dropLocation: UInt64?
        var dropSymbol: String?
        var nfFamily: String?
        var nfHook: String?
        var nfTable: String?
        var forwarded = false
        var endNetns: UInt32 = 0
        var endIfindex: UInt32 = 0
        var netnsCount = 0
        var tupleHdr: PacketHeaders?
    }

    func outcome(of packet: Packet, names: Names, lostTotal: Int64, lostCPUs: [Int]) -> Outcome {
        var out = Outcome()
        var stage = Stage.none
        var netns: [UInt32] = []  // a packet crosses a few at most
        for (i, e) in packet.events.enumerated() {
            let probe = Int(e.ev.probe)
            if e.ev.netns != 0 {
                if !netns.contains(e.ev.netns) { netns.append(e.ev.netns) }
                out.endNetns = e.ev.netns
                out.endIfindex = e.ev.ifindex
            }
            if out.tupleHdr == nil && e.hdr.value.l3 != .none { out.tupleHdr = e.hdr.value }
            if i == packet.freeIndex { break }
            switch probe {
            case 1, 2, 3:
                // received again after leaving a device: a veth or loopback crossing starts a new hop
                if stage == .transmitted || stage == .forwarded { stage = .none }
            case Decoder.pCopy, Int(ST_P_TCP_PROBE.rawValue):
                stage = .delivered
            case Decoder.pXmit:
                if e.ev.args.dev.rc == 0 { stage = out.forwarded && stage == .forwarded ? .forwarded : .transmitted }
            default:
                if KernelNames.isNFBracket(probe) {
                    switch e.ev.args.nf.hook {
                    case 1: stage = .delivered
                    case 2: stage = .forwarded; out.forwarded = true
                    default: break
                    }
                }
            }
        }
        out.netnsCount = netns.count
        if packet.freeIndex >= 0 {
            let free = packet.events[packet.freeIndex].ev
            if Int(free.probe) == Decoder.pKfree {
                let reason = Int64(free.args.free.reason)
                let name = names.dropReason[reason] ?? "reason \(reason)"
                if name == "SKB_CONSUMED" {
                    out.fate = Decoder.fate(stage)
                } else {
                    out.fate = "dropped"
                    out.dropReason = reason
                    out.dropReasonName = name
                    out.dropLocation = free.args.free.location
                    out.dropSymbol = names.symbolText(free.args.free.location)
                    if Decoder.droppedInNetfilter(free, reasonName: name) {
                        out.nfFamily = KernelNames.family(Int(free.args.free.nf_pf))
                        out.nfHook = KernelNames.hook(Int(free.args.free.nf_hook))
                        out.nfTable = KernelNames.tableAfter(bracket: Int(free.args.free.nf_bracket))
                    }
                }
            } else {
                out.fate = Decoder.fate(stage)
            }
            if free.netns != 0 { out.endNetns = free.netns; out.endIfindex = free.ifindex }
            if lostTotal > 0 {
                out.incomplete = "events may be missing: \(lostTotal) events were lost during the recording"
            }
        } else if packet.superseded && stage != .none && lostTotal == 0 {
            // freed without a tracepoint (TCP's __kfree_skb, defer-free): its last stage is its fate
            out.fate = Decoder.fate(stage)
            out.incomplete = "its free was not traced; the address was reused by a later packet"
        } else if stage == .delivered && lostTotal == 0 {
            // Local delivery reached and nothing dropped it: UDP frees a read datagram with
            // __consume_stateless_skb and TCP with __kfree_skb, neither of which has a tracepoint.
            out.fate = Decoder.fate(stage)
            out.incomplete = "reached local delivery; its free was not traced (the socket layer frees it without a tracepoint)"
        } else {
            out.fate = "incomplete"
            out.incomplete = packet.superseded && lostTotal == 0
                ? "its free was not traced; the address was reused by a later packet"
                : lostTotal > 0
                ? "no free seen: \(lostTotal) events were lost during the recording (CPU \(lostCPUs.map(String.init).joined(separator: ", ")))"
                : "no free seen before the recording ended"
        }
        return out
    }

    /// How far a packet got before its free, for the fate of a packet that was not dropped.
    enum Stage: String { case none = "consumed", delivered, transmitted, forwarded }

    private static func fate(_ stage: Stage) -> String { stage.rawValue }

    /// Tuple changes between consecutive events of one packet: DNAT (destination), SNAT (source).
    func natRewrites(of packet: Packet) -> [NatRow] {
        var rows: [NatRow] = []
        var prevBox: HeaderBox?
        let id = packet.id
        for (i, e) in packet.events.enumerated() {
            let r = packet.ids[i]
            let box = e.hdr
            guard box.value.l3 == .ipv4 || box.value.l3 == .ipv6, !box.value.fragment else { continue }
            defer { prevBox = box }
            // the same bytes (most consecutive records): nothing was rewritten
            guard let pb = prevBox, pb !== box else { continue }
            let p = pb.value, h = box.value
            guard p.l3 == h.l3, p.l4 == h.l4 else { continue }
            let before = p.natKey, after = h.natKey
            if before == after { continue }
            var family: String?, hook: String?, table: String?, ctOrig: String?, ctReply: String?
            let probe = Int(e.ev.probe)
            if KernelNames.isNFBracket(probe) {
                let nf = e.ev.args.nf
                family = KernelNames.family(Int(nf.pf))
                hook = KernelNames.hook(Int(nf.hook))
                if nf.bracket > 0 { table = KernelNames.tableAfter(bracket: Int(nf.bracket) - 1) }
                if e.ev.flags & UInt8(ST_F_CT.rawValue) != 0 {
                    ctOrig = Decoder.tupleText(nf.ct_orig)
                    ctReply = Decoder.tupleText(nf.ct_reply)
                }
            }
            var reply = false
            if KernelNames.isNFBracket(probe) && e.ev.flags & UInt8(ST_F_CT.rawValue) != 0 {
                let info = e.ev.args.nf.ctinfo
                reply = info >= 3 && info != 7
            }
            let suffix = reply ? " (reply: reverses the original direction's NAT)" : ""
            let ports = h.hasPorts
            func side(_ a: IPAddress, _ port: UInt16) -> String {
                guard ports else { return a.text }
                return a.family == 6 ? "[\(a.text)]:\(port)" : "\(a.text):\(port)"
            }
            if before.dst != after.dst || (ports && before.dport != after.dport) {
                rows.append(NatRow(packet: id, eventID: r, event: e.ev, kind: "DNAT", proto: h.protoName, before: before, after: after,
                                   hasPorts: ports, family: family, hook: hook, table: table, ctOrig: ctOrig,
                                   ctReply: ctReply,
                                   text: "DNAT \(side(before.dst, before.dport)) -> \(side(after.dst, after.dport))" + suffix))
            }
            if before.src != after.src || before.sport != after.sport {
                var text = "SNAT \(side(before.src, before.sport)) -> \(side(after.src, after.sport))"
                if !ports && before.sport != after.sport { text += " id \(before.sport) -> \(after.sport)" }
                text += suffix
                rows.append(NatRow(packet: id, eventID: r, event: e.ev, kind: "SNAT", proto: h.protoName, before: before, after: after,
                                   hasPorts: ports, family: family, hook: hook, table: table, ctOrig: ctOrig,
                                   ctReply: ctReply, text: text))
            }
        }
        return rows
    }

    static func tupleText(_ t: st_ct_tuple) -> String {
        let v6 = t.l3num == 10
        let src = IPAddress(kernelBytes: t.src, v6: v6), dst = IPAddress(kernelBytes: t.dst, v6: v6)
        let sport = UInt16(bigEndian: t.sport), dport = UInt16(bigEndian: t.dport)
        let proto = PacketHeaders.protoName(t.protonum, v6: v6)
        switch t.protonum {
        case 6, 17, 132, 136:
            let a = v6 ? "[\(src.text)]" : src.text, b = v6 ? "[\(dst.text)]" : dst.text
            return "\(proto) \(a):\(sport) > \(b):\(dport)"
        case 1, 58:
            return "\(proto) \(src.text) > \(dst.text) id \(sport)"
        default:
            return "\(proto) \(src.text) > \(dst.text)"
        }
    }

    static func comm(_ c: st_event) -> String {
        var t = c.comm
        return withUnsafeBytes(of: &t) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// The probe-specific part of a step, in words ("rc 0", "NO_SOCKET at tcp_v4_rcv+0x1a2").
    static func detail(_ e: st_event, names: Names) -> String {
        let probe = Int(e.probe)
        switch probe {
        case pKfree:
            let a = e.args.free
            var s = "\(names.dropReason[Int64(a.reason)] ?? "reason \(a.reason)") at \(names.symbolText(a.location))"
            if droppedInNetfilter(e, reasonName: names.dropReason[Int64(a.reason)] ?? "") {
                s += " (netfilter \(KernelNames.family(Int(a.nf_pf))) \(KernelNames.hook(Int(a.nf_hook))), \(KernelNames.tablePhrase(KernelNames.tableAfter(bracket: Int(a.nf_bracket)))))"
            }
            return s
        case pConsume:
            return e.args.free.location == 0 ? "" : "at \(names.symbolText(e.args.free.location))"
        case pXmit:
            return "rc \(e.args.dev.rc)"
        case pCopy:
            return "len \(e.args.misc.a)"
        case Int(ST_P_ICMP_SEND.rawValue):
            let a = e.args.misc
            return "type \(a.a) code \(a.b)"
        case 20...26:
            let s = e.args.sock
            var text = sockText(s)
            switch probe {
            case Int(ST_P_INET_SOCK_SET_STATE.rawValue):
                text += " \(KernelNames.tcpState(Int(s.oldstate))) -> \(KernelNames.tcpState(Int(s.state)))"
            case Int(ST_P_TCP_SEND_RESET.rawValue):
                text += " \(KernelNames.tcpState(Int(s.state))) reason \(names.rstReason[Int64(s.reason)] ?? String(s.reason))"
            case Int(ST_P_SOCK_RCVQUEUE_FULL.rawValue):
                text += " rmem \(s.reason) rcvbuf \(s.rcvbuf)"
            case Int(ST_P_TCP_PROBE.rawValue), Int(ST_P_TCP_RETRANSMIT_SKB.rawValue):
                text += " \(KernelNames.tcpState(Int(s.state))) cwnd \(s.snd_cwnd) srtt \(s.srtt_us >> 3)us retrans \(s.total_retrans)"
            default:
                text += " \(KernelNames.tcpState(Int(s.state)))"
            }
            return text
        case Int(ST_P_UDP_FAIL_QUEUE_RCV_SKB.rawValue):
            return "\(sockText(e.args.sock)) rc \(Int32(bitPattern: e.args.sock.reason))"
        case 40, 41:
            let r = e.args.route
            let v6 = r.family == 10
            return "table \(r.table) \(IPAddress(kernelBytes: r.saddr, v6: v6).text) > \(IPAddress(kernelBytes: r.daddr, v6: v6).text) err \(r.err) oif \(r.oif) iif \(r.iif)"
        case 42, 43:
            let r = e.args.route
            var s = "\(IPAddress(kernelBytes: r.daddr, v6: r.family == 10).text) \(KernelNames.nudState(Int(r.nud_state)))"
            if probe == 43 { s += " rc \(r.err)" }
            return s
        case 50, 51:
            let d = e.args.dev
            var k = d.kind
            let kind = withUnsafeBytes(of: &k) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return "\(kind) \(String(d.handle >> 16, radix: 16)):\(String(d.handle & 0xFFFF, radix: 16)) qlen \(d.qlen)"
        case 52:
            return "\(KernelNames.xdpAction(Int(e.args.dev.rc))) prog \(e.args.dev.prog_id)"
        default:
            if KernelNames.isNFBracket(probe) {
                let nf = e.args.nf
                var s = "\(KernelNames.family(Int(nf.pf))) \(KernelNames.hook(Int(nf.hook))) \(nf.priority)"
                if nf.bracket > 0 { s += " changed by \(KernelNames.tableAfter(bracket: Int(nf.bracket) - 1))" }
                if nf.in_ifindex != 0 { s += " in \(names.ifname(netns: e.netns, ifindex: nf.in_ifindex))" }
                if nf.out_ifindex != 0 { s += " out \(names.ifname(netns: e.netns, ifindex: nf.out_ifindex))" }
                if e.flags & UInt8(ST_F_CT.rawValue) != 0 { s += " ct \(KernelNames.ctInfo(Int(nf.ctinfo)))" }
                if e.mark != 0 { s += " mark 0x\(String(e.mark, radix: 16))" }
                return s
            }
            return ""
        }
    }

    /// A free carries the last netfilter bracket its skb passed; the drop happened inside that hook
    /// only when a later bracket of it did not run, or when the kernel says NETFILTER_DROP.
    static func droppedInNetfilter(_ e: st_event, reasonName: String) -> Bool {
        guard e.flags & UInt8(ST_F_NF_LAST.rawValue) != 0 else { return false }
        return Int(e.args.free.nf_bracket) < BundleFormat.nfBracketPriorities.count - 1 || reasonName == "NETFILTER_DROP"
    }

    static func sockText(_ s: st_args_sock) -> String {
        guard s.family == 2 || s.family == 10 else { return "sk" }
        let v6 = s.family == 10
        let a = IPAddress(kernelBytes: s.saddr, v6: v6).text, b = IPAddress(kernelBytes: s.daddr, v6: v6).text
        return v6 ? "[\(a)]:\(s.sport) > [\(b)]:\(s.dport)" : "\(a):\(s.sport) > \(b):\(s.dport)"
    }

    /// Copies the bundle's metadata tables, column by column where both sides have the column.
    func copyMetadata(into db: Database) throws {
        let tables = ["recording", "probe", "drop_reason", "rst_reason", "symbol", "netns", "interface", "address",
                      "snapshot", "sysctl", "lost"]
        for table in tables {
            let target = try db.columns(in: "bundle_\(table)").map(\.name)
            let rows: [Row] = try reader.db.read { src in
                guard try src.tableExists(table) else { return [] }
                let have = Set(try src.columns(in: table).map(\.name))
                let cols = target.filter { have.contains($0) }
                guard !cols.isEmpty else { return [] }
                return try Row.fetchAll(src, sql: "SELECT \(cols.joined(separator: ", ")) FROM \(table)")
            }
            guard let firstRow = rows.first else { continue }
            let cols = Array(firstRow.columnNames)
            let statement = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO bundle_\(table) (\(cols.joined(separator: ", "))) VALUES (\(cols.map { _ in "?" }.joined(separator: ", ")))")
            for row in rows {
                try statement.execute(arguments: StatementArguments(cols.map { row[$0] as DatabaseValue }))
            }
        }
    }
}

/// Text that repeats across millions of records, built once: addresses, task names, conntrack
/// tuples and netfilter step details.
final class TextCache {
    struct Bytes40: Hashable { var a, b, c, d, e: UInt64 }
    struct NFKey: Hashable {
        var probe: UInt16, pf: UInt8, hook: UInt8, bracket: UInt8, ctinfo: UInt8, flags: UInt8
        var netns: UInt32, inIf: UInt32, outIf: UInt32, mark: UInt32
    }
    private var addresses: [IPAddress: String] = [:]
    private var comms: [Bytes40: String] = [:]
    private var tuples: [Bytes40: String] = [:]
    private var nfDetails: [NFKey: String] = [:]
    let tcpFlags: [String] = (0..<256).map { PacketHeaders.tcpFlagsText(UInt8($0)) }

    func address(_ a: IPAddress) -> String {
        if a.family == 0 { return "" }
        if let s = addresses[a] { return s }
        let s = a.text
        if addresses.count < 1_000_000 { addresses[a] = s }
        return s
    }

    func comm(_ e: st_event) -> String {
        var c = e.comm
        let key = withUnsafeBytes(of: &c) { p in
            Bytes40(a: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self), c: 0, d: 0, e: 0)
        }
        if let s = comms[key] { return s }
        let s = Decoder.comm(e)
        comms[key] = s
        return s
    }

    func tuple(_ t: st_ct_tuple) -> String {
        var copy = t
        let key = withUnsafeBytes(of: &copy) { p in
            Bytes40(a: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    c: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self), d: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
                    e: p.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        }
        if let s = tuples[key] { return s }
        let s = Decoder.tupleText(t)
        if tuples.count < 1_000_000 { tuples[key] = s }
        return s
    }

    /// The detail of the high-volume probes whose text depends on a few fields only.
    struct SimpleKey: Hashable { var probe: UInt16; var a: UInt64; var b: UInt64 }
    private var simpleDetails: [SimpleKey: String] = [:]

    func detail(_ e: st_event, names: Decoder.Names) -> String {
        let probe = Int(e.probe)
        var simple: SimpleKey?
        switch probe {
        case Int(ST_P_KFREE_SKB.rawValue):
            let f = e.args.free
            simple = SimpleKey(probe: e.probe, a: f.location,
                               b: UInt64(f.reason) | UInt64(e.flags & UInt8(ST_F_NF_LAST.rawValue)) << 32
                                   | UInt64(f.nf_pf) << 40 | UInt64(f.nf_hook) << 48 | UInt64(f.nf_bracket) << 56)
        case Int(ST_P_CONSUME_SKB.rawValue):
            simple = SimpleKey(probe: e.probe, a: e.args.free.location, b: 0)
        case Int(ST_P_NET_DEV_XMIT.rawValue), 52:
            simple = SimpleKey(probe: e.probe, a: UInt64(UInt32(bitPattern: e.args.dev.rc)), b: UInt64(e.args.dev.prog_id))
        case Int(ST_P_SKB_COPY_DATAGRAM_IOVEC.rawValue):
            simple = SimpleKey(probe: e.probe, a: UInt64(UInt32(bitPattern: e.args.misc.a)), b: 0)
        default:
            break
        }
        if let key = simple {
            if let s = simpleDetails[key] { return s }
            let s = Decoder.detail(e, names: names)
            if simpleDetails.count < 1_000_000 { simpleDetails[key] = s }
            return s
        }
        guard KernelNames.isNFBracket(probe) else { return Decoder.detail(e, names: names) }
        let nf = e.args.nf
        let key = NFKey(probe: e.probe, pf: nf.pf, hook: nf.hook, bracket: nf.bracket, ctinfo: nf.ctinfo,
                        flags: e.flags & UInt8(ST_F_CT.rawValue), netns: e.netns, inIf: nf.in_ifindex,
                        outIf: nf.out_ifindex, mark: e.mark)
        if let s = nfDetails[key] { return s }
        let s = Decoder.detail(e, names: names)
        if nfDetails.count < 1_000_000 { nfDetails[key] = s }
        return s
    }
}
