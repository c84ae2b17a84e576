import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents

/// The decode's state while records stream through in time order: the packets alive, the writers of
/// the event, packet, NAT and TCP tables, and what the clone inference needs at the end.
final class DecodeStream {
    /// A freed packet stays open this long (recording time) for a net_dev_xmit that fires after the
    /// driver freed the skb inside ndo_start_xmit (microseconds later).
    private static let closeDelay: UInt64 = 10_000_000
    /// How long after skb_clone's exit the clone's first record may come (it is usually microseconds).
    private static let cloneWindow: UInt64 = 1_000_000_000

    let db: Database
    let names: BundleNames
    let lost: LostEvents
    let texts = TextCache()
    let times = DecodeTiming()
    private let probes: ProbeCounts
    let store: EventStore
    private let packets: PacketRows
    private let tcp: TCPRows

    /// Records released so far (the id of the latest).
    private(set) var released = 0
    private(set) var packetCount = 0
    private(set) var reordered = 0
    /// Records held by live packets.
    private(set) var heldEvents = 0
    private var latestTs: UInt64 = 0
    /// Packets still open when the stream ended (their free was not traced).
    private(set) var openPackets = 0

    private var open: [UInt64: PacketLife] = [:]
    private var lastClosed: [UInt64: PacketLife] = [:]
    /// Freed packets waiting out `closeDelay`, in free order.
    private var closing: [PacketLife] = []
    private var closingHead = 0
    private var summaries: [CloneInference.Summary] = []
    /// skb_clone's exits (tier 3): the clone's address -> the packet cloned and when, until the clone's
    /// first record; and the clones so found (child index -> parent index).
    private var cloneReturned: [UInt64: (parent: Int, ts: UInt64, head: UInt64)] = [:]
    private var knownClones: [Int: Int] = [:]

    init(db: Database, names: BundleNames, lost: LostEvents) throws {
        self.db = db
        self.names = names
        self.lost = lost
        probes = ProbeCounts(names: names)
        store = try EventStore(db)
        packets = try PacketRows(db, texts: texts)
        tcp = try TCPRows(db, texts: texts)
    }

    /// Takes the next record in time order: assigns it to its packet and writes it.
    func release(_ record: DecodedRecord) throws {
        released += 1
        let id = released
        let e = record.ev
        if e.ts < latestTs { reordered += 1 } else { latestTs = e.ts }
        while closingHead < closing.count, closing[closingHead].freeTs &+ DecodeStream.closeDelay < e.ts {
            let p = closing[closingHead]
            closingHead += 1
            if lastClosed[p.skb] === p { lastClosed[p.skb] = nil }
            try timedFinish(p)
        }
        if closingHead > 4096 && closingHead * 2 > closing.count {
            closing.removeFirst(closingHead)
            closingHead = 0
        }

        var packet: PacketLife?
        if e.skb != 0 {
            let p: PacketLife
            let current = open[e.skb]
            var isOpen = true  // p is the address's open packet
            // skb_clone returned this address: a new sk_buff, whatever the address held before
            var clonedFrom: Int?
            // (and the data head it shares with the parent: a clone not recorded itself, e.g. outside the
            // filter, leaves its address to the next sk_buff there)
            if !cloneReturned.isEmpty, let c = cloneReturned.removeValue(forKey: e.skb), e.ts >= c.ts,
               e.ts - c.ts < DecodeStream.cloneWindow, e.head == c.head || e.head == 0 {
                clonedFrom = c.parent
            }
            if clonedFrom == nil, let q = current, !PacketLives.startsNewLife(e, lastProbe: q.lastProbe, head: q.head, deliveredNetns: q.deliveredNetns,
                                                                 lastNetns: q.lastNetns),
               !PacketLives.isReply(record, after: q.records.last) {
                p = q
            } else if clonedFrom == nil, current == nil, e.role == .transmitted, let q = lastClosed[e.skb] {
                // net_dev_xmit fires after the driver took the skb; it may have been freed already
                p = q
                isOpen = false
            } else {
                if let q = current {
                    // nothing can join it any more: the address now names the new packet
                    q.superseded = true
                    try timedFinish(q)
                }
                packetCount += 1
                p = PacketLife(id: packetCount, skb: e.skb)
                summaries.append(CloneInference.Summary())
                open[e.skb] = p
                if let parent = clonedFrom { knownClones[p.id - 1] = parent - 1 }
            }
            p.append(record, id: Int32(id))
            heldEvents += 1
            if isOpen, e.role.endsLife {
                open[e.skb] = nil
                lastClosed[e.skb] = p
                p.freeIndex = p.records.count - 1
                p.freeTs = e.ts
                closing.append(p)
            }
            packet = p
            if e.probeID == ST_P_SKB_CLONE, e.args.fn.nf & UInt8(ST_FN_RET.rawValue) != 0, e.args.fn.ret != 0,
               cloneReturned.count < 1 << 20 {
                cloneReturned[UInt64(bitPattern: e.args.fn.ret)] = (p.id, e.ts, e.head)
            }
        }
        var t = times.now()
        let attach = probes.add(e)
        try store.released(record.number, id: id, packet: packet?.id ?? 0, step: packet?.records.count ?? 0, attach: attach,
                           name: self.probes.counts[attach].name)
        try tcp.add(id, record, packet: packet)
        times.add(&times.rows, since: &t)
    }

    /// Ends the stream: writes the packets still open, the clone trees and the per-probe counts.
    func finish() throws {
        for p in closing[closingHead...] where !p.records.isEmpty { try finish(p) }
        closing = []
        openPackets = open.count
        for p in open.values.sorted(by: { $0.id < $1.id }) where !p.records.isEmpty { try finish(p) }
        open = [:]
        lastClosed = [:]

        try packets.finish()
        // the clone trees: the pkt table's parent_id and clone_inferred come from these rows
        let (parent, why, inferred) = CloneInference.merge(CloneInference.infer(summaries), known: knownClones)
        cloneReturned = [:]
        let edge = try RowWriter<CloneColumn>(db)
        for (i, q) in parent.enumerated() where q >= 0 {
            edge.int(.parent_id, Int(q) + 1); edge.int(.child_id, i + 1); edge.int(.inferred, inferred[i] ? 1 : 0); edge.text(.why, why[i] ?? "")
            try edge.run()
        }

        let counts = try RowWriter<ProbeEventsColumn>(db)
        try store.finish()
        for c in probes.counts {
            counts.int(.probe, c.probe); counts.int(.family, c.family.map(Int64.init)); counts.int(.hook, c.hook.map(Int64.init))
            counts.text(.name, c.name); counts.int(.events, c.n)
            try counts.run()
        }
        try tcp.finish()
    }

    private func timedFinish(_ p: PacketLife) throws {
        var t = times.now()
        try finish(p)
        times.add(&times.packets, since: &t)
    }

    /// Writes a packet whose life ended (its row, its NAT rewrites), keeps its clone summary and lets
    /// its records go.
    private func finish(_ p: PacketLife) throws {
        guard !p.records.isEmpty else { return }
        let outcome = PacketFate.outcome(p.records, freeIndex: p.freeIndex, superseded: p.superseded, names: names, lost: lost)
        try packets.write(p, outcome, NatRewrites.of(p.records))
        summaries[p.id - 1] = CloneInference.summary(p.records)
        heldEvents -= p.records.count
        p.records = []
        p.ids = []
    }
}
