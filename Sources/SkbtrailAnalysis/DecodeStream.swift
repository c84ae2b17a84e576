import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents

/// The decode's state while records stream through in time order: the packets alive, the writers of
/// the event, packet, NAT and TCP tables, and what the clone inference needs at the end.
final class DecodeStream {
    private static let pKfree = Int(ST_P_KFREE_SKB.rawValue)
    private static let pConsume = Int(ST_P_CONSUME_SKB.rawValue)
    private static let pXmit = Int(ST_P_NET_DEV_XMIT.rawValue)
    private static let pCopy = Int(ST_P_SKB_COPY_DATAGRAM_IOVEC.rawValue)
    /// A freed packet stays open this long (recording time) for a net_dev_xmit that fires after the
    /// driver freed the skb inside ndo_start_xmit (microseconds later).
    private static let closeDelay: UInt64 = 10_000_000

    let decoder: Decoder
    let db: Database
    let names: Decoder.Names
    let lostTotal: Int64
    let lostCPUs: [Int]
    let texts = TextCache()
    let tcp: TCPBuilder
    let times = Decoder.PhaseTimes()
    private let evInsert, pktInsert, natInsert: BulkInsert

    /// Records released so far (the id of the latest).
    private(set) var released = 0
    private(set) var packetCount = 0
    private(set) var reordered = 0
    /// Records held by live packets.
    private(set) var heldEvents = 0
    private var latestTs: UInt64 = 0
    /// Packets still open when the stream ended (their free was not traced).
    private(set) var openPackets = 0

    private var open: [UInt64: Decoder.Packet] = [:]
    private var lastClosed: [UInt64: Decoder.Packet] = [:]
    /// Freed packets waiting out `closeDelay`, in free order.
    private var closing: [Decoder.Packet] = []
    private var closingHead = 0
    private var summaries: [Decoder.CloneSummary] = []
    private var extraHeads: [Int: [(UInt64, UInt64)]] = [:]
    private var natID = 0
    /// Records per attach point (probe, and family and hook for netfilter brackets), and their names.
    private var probeIndex: [Int: Int] = [:]
    private var probeCounts: [(probe: Int, family: Int?, hook: Int?, name: String, n: Int)] = []

    init(decoder: Decoder, db: Database, names: Decoder.Names, lostTotal: Int64, lostCPUs: [Int]) throws {
        self.decoder = decoder
        self.db = db
        self.names = names
        self.lostTotal = lostTotal
        self.lostCPUs = lostCPUs
        tcp = try TCPBuilder(db, texts: texts)
        evInsert = try BulkInsert(db, "INSERT INTO ev VALUES (" + Array(repeating: "?", count: 56).joined(separator: ",") + ")")
        pktInsert = try BulkInsert(db, "INSERT INTO pkt VALUES (" + Array(repeating: "?", count: 31).joined(separator: ",") + ")")
        natInsert = try BulkInsert(db, "INSERT INTO nat VALUES (" + Array(repeating: "?", count: 22).joined(separator: ",") + ")")
    }

    /// Takes the next record in time order: assigns it to its packet and writes it.
    func release(_ item: Decoder.Event) throws {
        released += 1
        let k = released
        let e = item.ev
        if e.ts < latestTs { reordered += 1 } else { latestTs = e.ts }
        while closingHead < closing.count, closing[closingHead].freeTs &+ DecodeStream.closeDelay < e.ts {
            let p = closing[closingHead]
            closingHead += 1
            if lastClosed[p.skb] === p { lastClosed[p.skb] = nil }
            try timedFinalize(p)
        }
        if closingHead > 4096 && closingHead * 2 > closing.count {
            closing.removeFirst(closingHead)
            closingHead = 0
        }

        var packet: Decoder.Packet?
        if e.skb != 0 {
            let probe = Int(e.probe)
            let p: Decoder.Packet
            let current = open[e.skb]
            var isOpen = true  // p is the address's open packet
            if let q = current, !Decoder.startsNewLife(e, after: q) {
                p = q
            } else if current == nil, probe == DecodeStream.pXmit, let q = lastClosed[e.skb] {
                // net_dev_xmit fires after the driver took the skb; it may have been freed already
                p = q
                isOpen = false
            } else {
                if let q = current {
                    // nothing can join it any more: the address now names the new packet
                    q.superseded = true
                    try timedFinalize(q)
                }
                packetCount += 1
                p = Decoder.Packet(id: packetCount, skb: e.skb)
                p.events.reserveCapacity(8)
                p.ids.reserveCapacity(8)
                summaries.append(Decoder.CloneSummary())
                open[e.skb] = p
            }
            p.events.append(item)
            p.ids.append(Int32(k))
            heldEvents += 1
            if e.head != 0 { p.head = e.head }
            p.lastProbe = probe
            if isOpen, probe == DecodeStream.pKfree || probe == DecodeStream.pConsume {
                open[e.skb] = nil
                lastClosed[e.skb] = p
                p.freeIndex = p.events.count - 1
                p.freeTs = e.ts
                closing.append(p)
            }
            packet = p
        }
        var t = times.now()
        try writeEvent(k, item, packet: packet)
        try tcp.add(k, item, packet: packet)
        times.add(&times.rows, since: &t)
    }

    /// Ends the stream: writes the packets still open, the clone trees and the per-probe counts.
    func finish() throws {
        for p in closing[closingHead...] where p.events.count > 0 { try finalize(p) }
        closing = []
        openPackets = open.count
        for p in open.values.sorted(by: { $0.id < $1.id }) where p.events.count > 0 { try finalize(p) }
        open = [:]
        lastClosed = [:]

        let (parent, why) = Decoder.inferClones(summaries, extraHeads: extraHeads)
        let edge = try BulkInsert(db, "INSERT INTO clone_edge VALUES (?, ?, ?, ?)")
        let link = try BulkInsert(db, "UPDATE pkt SET parent_id = ?, clone_inferred = 1 WHERE id = ?")
        for (i, q) in parent.enumerated() where q >= 0 {
            edge.int(Int(q) + 1); edge.int(i + 1); edge.int(1); edge.text(why[i] ?? "")
            try edge.run()
            link.int(Int(q) + 1); link.int(i + 1)
            try link.run()
        }

        let pe = try BulkInsert(db, "INSERT INTO probe_events VALUES (?, ?, ?, ?, ?)")
        for c in probeCounts {
            pe.int(c.probe); pe.optInt(c.family.map(Int64.init)); pe.optInt(c.hook.map(Int64.init)); pe.text(c.name); pe.int(c.n)
            try pe.run()
        }
        try tcp.finish()
    }

    private func timedFinalize(_ p: Decoder.Packet) throws {
        var t = times.now()
        try finalize(p)
        times.add(&times.packets, since: &t)
    }

    /// Writes a packet whose life ended (its row, its NAT rewrites), keeps its clone summary and lets
    /// its records go.
    private func finalize(_ p: Decoder.Packet) throws {
        guard let firstItem = p.events.first, let lastItem = p.events.last else { return }
        let id = p.id
        let first = firstItem.ev, last = lastItem.ev
        let o = decoder.outcome(of: p, names: names, lostTotal: lostTotal, lostCPUs: lostCPUs)
        let nats = decoder.natRewrites(of: p)
        let pk = pktInsert
        pk.int(id); pk.int(p.skb); pk.int(first.head); pk.int(Int(p.ids[0])); pk.int(Int(p.ids[p.ids.count - 1]))
        pk.int(first.ts); pk.int(last.ts); pk.int(p.events.count)
        pk.text(o.fate); pk.optText(o.incomplete)
        pk.optInt(o.dropReason); pk.optText(o.dropReasonName)
        pk.optInt(o.dropLocation.map { Int64(bitPattern: $0) }); pk.optText(o.dropSymbol)
        pk.optText(o.nfFamily); pk.optText(o.nfHook); pk.optText(o.nfTable)
        if o.endNetns != 0 { pk.int(o.endNetns) } else { pk.null() }
        if o.endIfindex != 0 { pk.int(o.endIfindex) } else { pk.null() }
        if let h = o.tupleHdr {
            pk.text(h.l3 == .ipv4 ? "ipv4" : h.l3 == .ipv6 ? "ipv6" : "arp"); pk.text(h.protoName)
            pk.textOrNull(h.src.text); pk.textOrNull(h.dst.text)
            if h.hasPorts { pk.int(Int(h.sport)); pk.int(Int(h.dport)) } else { pk.null(); pk.null() }
            pk.text(h.tupleText)
        } else {
            for _ in 0..<6 { pk.null() }
            pk.text(first.protocol == 0 ? "unknown" : "ethertype 0x" + String(UInt16(bigEndian: first.protocol), radix: 16))
        }
        pk.null(); pk.null()  // parent_id, clone_inferred: set by the clone inference in finish()
        pk.int(o.forwarded ? 1 : 0); pk.int(o.netnsCount); pk.int(nats.count)
        try pk.run()

        let nx = natInsert
        for n in nats {
            natID += 1
            let e = n.event
            nx.int(natID); nx.int(id); nx.int(Int(n.eventID)); nx.int(e.ts); nx.text(n.kind); nx.text(n.proto)
            nx.text(n.before.src.text)
            if n.hasPorts { nx.int(Int(n.before.sport)) } else { nx.null() }
            nx.text(n.before.dst.text)
            if n.hasPorts { nx.int(Int(n.before.dport)) } else { nx.null() }
            nx.text(n.after.src.text)
            if n.hasPorts { nx.int(Int(n.after.sport)) } else { nx.null() }
            nx.text(n.after.dst.text)
            if n.hasPorts { nx.int(Int(n.after.dport)) } else { nx.null() }
            nx.optText(n.family); nx.optText(n.hook); nx.optText(n.table)
            nx.int(e.netns); nx.int(e.ifindex); nx.optText(n.ctOrig); nx.optText(n.ctReply); nx.text(n.text)
            try nx.run()
        }

        // the clone summary: heads in order of first appearance, with the last bytes hash of each
        var s = Decoder.CloneSummary(firstTs: first.ts, lastTs: last.ts)
        var heads: [(UInt64, UInt64)] = []
        for e in p.events where e.ev.head != 0 {
            if let i = heads.firstIndex(where: { $0.0 == e.ev.head }) {
                if e.bytesHash != 0 { heads[i].1 = e.bytesHash }
            } else {
                heads.append((e.ev.head, e.bytesHash))
            }
            if e.bytesHash != 0 && s.firstHash == 0 { s.firstHash = e.bytesHash }
        }
        if let h = heads.first {
            s.head = h.0
            s.lastHash = h.1
            if heads.count > 1 { extraHeads[id - 1] = Array(heads.dropFirst()) }
        }
        summaries[id - 1] = s
        heldEvents -= p.events.count
        p.events = []
        p.ids = []
    }

    /// One row of `ev`.
    private func writeEvent(_ k: Int, _ item: Decoder.Event, packet: Decoder.Packet?) throws {
        let ins = evInsert
        let e = item.ev
        let h = item.hdr.value
        let probe = Int(e.probe)
        let nf = KernelNames.isNFBracket(probe)
        let key = nf ? probe | Int(e.args.nf.pf) << 8 | Int(e.args.nf.hook) << 16 : probe
        let name: String
        if let i = probeIndex[key] {
            name = probeCounts[i].name
            probeCounts[i].n += 1
        } else {
            name = names.probeName(e)
            probeIndex[key] = probeCounts.count
            probeCounts.append((probe, nf ? Int(e.args.nf.pf) : nil, nf ? Int(e.args.nf.hook) : nil, name, 1))
        }
        ins.int(k); ins.int(e.ts); ins.int(probe); ins.text(name)
        ins.int(e.cpu); ins.int(e.pid); ins.int(e.tid); ins.text(texts.comm(e))
        ins.int(e.netns); ins.int(e.ifindex); ins.int(e.skb); ins.int(e.head); ins.int(e.len); ins.int(e.mark)
        ins.int(Int(UInt16(bigEndian: e.protocol))); ins.int(Int(e.l3_from)); ins.int(Int(e.flags))
        if let p = packet { ins.int(p.id); ins.int(p.events.count) } else { ins.null(); ins.null() }
        if h.l3 == .none {
            for _ in 0..<19 { ins.null() }
        } else {
            ins.text(h.l3 == .ipv4 ? "ipv4" : h.l3 == .ipv6 ? "ipv6" : "arp")
            if h.l3 == .arp { ins.null(); ins.text("ARP") } else { ins.int(Int(h.l4)); ins.text(h.protoName) }
            if h.vlan != 0 { ins.int(Int(h.vlan) - 1) } else { ins.null() }
            ins.textOrNull(texts.address(h.src)); ins.textOrNull(texts.address(h.dst))
            if h.hasPorts { ins.int(Int(h.sport)); ins.int(Int(h.dport)) } else { ins.null(); ins.null() }
            if h.l4 == 6 && h.hasPorts {
                ins.text(texts.tcpFlags[Int(h.tcpFlags)]); ins.int(h.tcpSeq); ins.int(h.tcpAck)
            } else { ins.null(); ins.null(); ins.null() }
            if h.icmpType >= 0 { ins.int(Int(h.icmpType)); ins.int(Int(h.icmpCode)) } else { ins.null(); ins.null() }
            if h.icmpID >= 0 { ins.int(Int(h.icmpID)); ins.int(Int(h.icmpSeq)) } else { ins.null(); ins.null() }
            if h.ipID >= 0 { ins.int(Int(h.ipID)) } else { ins.null() }
            if h.ttl >= 0 { ins.int(Int(h.ttl)) } else { ins.null() }
            ins.textOrNull(h.tunnel); ins.textOrNull(h.inner)
        }
        // reason, location
        if probe == DecodeStream.pKfree || probe == DecodeStream.pConsume {
            if probe == DecodeStream.pKfree { ins.int(e.args.free.reason) } else { ins.null() }
            ins.int(e.args.free.location)
        } else if probe == Int(ST_P_TCP_SEND_RESET.rawValue) || probe == Int(ST_P_UDP_FAIL_QUEUE_RCV_SKB.rawValue) {
            ins.int(e.args.sock.reason); ins.null()
        } else { ins.null(); ins.null() }
        // netfilter: from the bracket record, or the last bracket a dropped packet passed
        if nf {
            let a = e.args.nf
            ins.int(Int(a.pf)); ins.int(Int(a.hook)); ins.int(Int(a.bracket)); ins.int(Int(a.priority))
            ins.int(a.in_ifindex); ins.int(a.out_ifindex)
            if e.flags & UInt8(ST_F_CT.rawValue) != 0 {
                ins.int(Int(a.ctinfo)); ins.int(a.ct_status); ins.int(a.ct_mark)
                ins.text(texts.tuple(a.ct_orig)); ins.text(texts.tuple(a.ct_reply))
            } else { for _ in 0..<5 { ins.null() } }
        } else if probe == DecodeStream.pKfree && e.flags & UInt8(ST_F_NF_LAST.rawValue) != 0 {
            let a = e.args.free
            ins.int(Int(a.nf_pf)); ins.int(Int(a.nf_hook)); ins.int(Int(a.nf_bracket))
            let b = Int(a.nf_bracket)
            if b < BundleFormat.nfBracketPriorities.count { ins.int(Int(BundleFormat.nfBracketPriorities[b])) } else { ins.null() }
            for _ in 0..<7 { ins.null() }
        } else {
            for _ in 0..<11 { ins.null() }
        }
        // rc
        switch probe {
        case DecodeStream.pXmit, 52: ins.int(Int(e.args.dev.rc))
        case 40, 41, 43: ins.int(Int(e.args.route.err))
        case DecodeStream.pCopy: ins.int(Int(e.args.misc.a))
        default: ins.null()
        }
        // socket
        if (20...26).contains(probe) || probe == 30 {
            let s = e.args.sock
            if s.sk != 0 { ins.int(s.sk) } else { ins.null() }
            ins.int(Int(s.state))
            if probe == Int(ST_P_INET_SOCK_SET_STATE.rawValue) { ins.int(Int(s.oldstate)) } else { ins.null() }
        } else { ins.null(); ins.null(); ins.null() }
        ins.text(texts.detail(e, names: names))
        try ins.run()
    }
}
