import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// Decodes a bundle into an analysis database: records, packets, clone trees, NAT rewrites.
///
/// Everything happens in memory (one pass over the chunks, a sort by time, one pass per packet), then
/// the tables are written with prepared statements in one transaction.
public struct Decoder {
    /// Bumped whenever decoding changes what lands in the analysis database (it invalidates caches).
    public static let version = 4

    /// Counts of one decode.
    public struct Stats: Sendable {
        public var events = 0
        public var packets = 0
        public var unknownRecords = 0
        public var seconds = 0.0
        var started = Date()
    }

    struct Event {
        var ev: st_event
        /// Index into `headers.list`: a packet's records mostly carry the same bytes, so each distinct
        /// byte string is parsed and kept once (0: no packet bytes).
        var hdrIndex: Int32
        var bytesHash: UInt64
    }

    /// The parsed headers of every distinct packet byte string, shared by the records that carry it.
    final class HeaderTable {
        var list: [PacketHeaders] = [PacketHeaders()]
        var index: [UInt64: Int32] = [:]

        /// The index of the headers parsed from `raw`, parsing them the first time these bytes are seen.
        func intern(_ raw: UnsafeRawBufferPointer, ethertype: UInt16) -> Int32 {
            var key: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(ethertype) ^ UInt64(raw.count) << 16
            var i = 0
            while i + 8 <= raw.count {
                key = (key ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
                key ^= key >> 32 // carries high-bit differences down, so later words cannot cancel them
                i += 8
            }
            while i < raw.count {
                key = (key ^ UInt64(raw[i])) &* 0x100_0000_01b3
                i += 1
            }
            if let known = index[key] { return known }
            let n = Int32(list.count)
            list.append(PacketHeaders.parse(raw, ethertype: ethertype))
            index[key] = n
            return n
        }

        subscript(_ e: Event) -> PacketHeaders { list[Int(e.hdrIndex)] }
    }

    struct Packet {
        var skb: UInt64
        var events: [Int32] = []  // ranks
        var freeRank: Int32 = -1
        /// The address came back as a new sk_buff before this one's free was seen.
        var superseded = false
        /// Probe of the latest event.
        var lastProbe = 0
        /// skb->head at the latest event.
        var head: UInt64 = 0
        var parent: Int = -1
        var cloneWhy = ""
    }

    struct NatRow {
        var packet: Int
        var rank: Int32
        var kind: String
        var proto: String
        var before: NatTuple
        var after: NatTuple
        var hasPorts: Bool
        var family: String?
        var hook: String?
        var table: String?
        var ctOrig: String?
        var ctReply: String?
        var text: String
    }

    let reader: BundleReader
    let progress: ProgressBar?
    let headers = HeaderTable()

    public init(reader: BundleReader, progress: ProgressBar? = nil) {
        self.reader = reader
        self.progress = progress
    }

    // MARK: names from the bundle

    struct Names {
        var probe: [Int: String] = [:]
        var nfProbe: [Int: String] = [:]  // probe | family << 8 | hook << 16
        var dropReason: [Int64: String] = [:]
        var rstReason: [Int64: String] = [:]
        var symbol: [Int64: String] = [:]
        var ifname: [Int64: String] = [:]  // netns << 32 | ifindex

        func probeName(_ e: st_event) -> String {
            let p = Int(e.probe)
            if KernelNames.isNFBracket(p) {
                let key = p | Int(e.args.nf.pf) << 8 | Int(e.args.nf.hook) << 16
                if let n = nfProbe[key] { return n }
                let b = p - KernelNames.nfBracketFirst
                let prio = b < BundleFormat.nfBracketPriorities.count ? Int(BundleFormat.nfBracketPriorities[b]) : b
                return "nf:\(KernelNames.family(Int(e.args.nf.pf))):\(KernelNames.hook(Int(e.args.nf.hook)).lowercased()):\(prio)"
            }
            return probe[p] ?? KernelNames.probes[p] ?? "probe \(p)"
        }

        func ifname(netns: UInt32, ifindex: UInt32) -> String {
            ifname[Int64(netns) << 32 | Int64(ifindex)] ?? (ifindex == 0 ? "-" : "if\(ifindex)")
        }

        func symbolText(_ location: UInt64) -> String {
            symbol[Int64(bitPattern: location)] ?? "0x" + String(location, radix: 16)
        }
    }

    func loadNames() throws -> Names {
        var names = Names()
        for p in try reader.probes() {
            if KernelNames.isNFBracket(p.probe), let f = p.family, let h = p.hook {
                names.nfProbe[p.probe | f << 8 | h << 16] = p.name
            } else if names.probe[p.probe] == nil {
                names.probe[p.probe] = p.name
            }
        }
        names.dropReason = try reader.enumNames(table: "drop_reason")
        names.rstReason = try reader.enumNames(table: "rst_reason")
        for s in try reader.symbols() {
            names.symbol[s.address] = s.offset == 0 ? s.name : "\(s.name)+0x\(String(s.offset, radix: 16))"
        }
        for i in try reader.interfaces() { names.ifname[i.netns << 32 | Int64(i.ifindex)] = i.name }
        return names
    }

    // MARK: decode

    /// Decodes the bundle into a new database at `path` (which must not exist).
    public func decode(into path: String) throws -> Stats {
        let started = Date()
        var stats = Stats()
        stats.started = started
        let names = try loadNames()
        let chunks = try reader.chunks()
        let total = chunks.reduce(0) { $0 + $1.records }

        // 1. walk every record
        var events: [Event] = []
        events.reserveCapacity(total)
        var walker = RecordWalker()
        do {
            try reader.forEachChunk { info, buffer, count in
                try walker.walk(buffer, count: count, chunk: info.id) { ev, snap in
                    var hdr: Int32 = 0
                    var hash: UInt64 = 0
                    if !snap.isEmpty && ev.l3_from != 0 {
                        snap.withUnsafeBytes { raw in
                            hdr = headers.intern(raw, ethertype: UInt16(bigEndian: ev.protocol))
                            hash = Decoder.fnv(raw, limit: 64)
                        }
                    }
                    events.append(Event(ev: ev, hdrIndex: hdr, bytesHash: hash))
                }
                progress?.update("decoding", done: events.count, total: total)
            }
        } catch BundleError.corruptChunk(let why) {
            throw AnalysisError.corruptChunk(path: reader.path, why: why.hasPrefix(reader.path + ", ") ? String(why.dropFirst(reader.path.count + 2)) : why)
        }
        stats.unknownRecords = walker.unknownRecords
        Decoder.phase("walk", started)
        stats.events = events.count

        // 2. sort by time (chunks are not sorted; CPUs interleave); stable on ties
        var order = [(UInt64, Int32)](); order.reserveCapacity(events.count)
        for (i, e) in events.enumerated() { order.append((e.ev.ts, Int32(i))) }
        order.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        let rank = order.map { Int($0.1) }  // rank -> index into events
        order = []

        Decoder.phase("sort", started)
        // 3. packets: one per sk_buff life
        var packets: [Packet] = []
        var packetOf = [Int32](repeating: -1, count: events.count)  // by rank
        var open: [UInt64: Int] = [:]
        var lastClosed: [UInt64: Int] = [:]
        for k in 0..<rank.count {
            let e = events[rank[k]].ev
            guard e.skb != 0 else { continue }
            let probe = Int(e.probe)
            let p: Int
            if let q = open[e.skb], !Decoder.startsNewLife(e, after: packets[q]) {
                p = q
            } else if open[e.skb] == nil, probe == Int(ST_P_NET_DEV_XMIT.rawValue), let q = lastClosed[e.skb] {
                // net_dev_xmit fires after the driver took the skb; it may have been freed already
                p = q
            } else {
                if let q = open[e.skb] { packets[q].superseded = true }
                p = packets.count
                packets.append(Packet(skb: e.skb))
                open[e.skb] = p
            }
            packets[p].events.append(Int32(k))
            if e.head != 0 { packets[p].head = e.head }
            packets[p].lastProbe = probe
            packetOf[k] = Int32(p)
            if probe == Int(ST_P_KFREE_SKB.rawValue) || probe == Int(ST_P_CONSUME_SKB.rawValue), open[e.skb] == p {
                open[e.skb] = nil
                lastClosed[e.skb] = p
                packets[p].freeRank = Int32(k)
            }
        }
        stats.packets = packets.count

        Decoder.phase("packets", started)
        // 4. clone trees, inferred from shared data heads
        inferClones(&packets, events: events, rank: rank)
        Decoder.phase("clones", started)

        // 5. write
        let lost = try reader.lost()
        let lostTotal = lost.values.reduce(0, +)
        try write(path: path, names: names, events: events, rank: rank, packets: packets, packetOf: packetOf,
                  chunks: chunks, lostTotal: lostTotal, lostCPUs: lost.filter { $0.value > 0 }.keys.sorted(),
                  stats: &stats)
        stats.seconds = Date().timeIntervalSince(started)
        Decoder.phase("written", started)
        return stats
    }

    /// An address seen again with another data head where a packet enters the stack (receive, local
    /// output, the first bracket of a hook, the device queue) is a new sk_buff whose predecessor's free
    /// was not traced (TCP frees many skbs without a tracepoint).
    /// The same holds, whatever the head, when a packet enters where its previous step cannot lead: the
    /// receive path after anything but a transmit (a veth or loopback crossing), or local output after
    /// anything but a device queue (a tunnel sending its outer packet).
    static func startsNewLife(_ e: st_event, after p: Packet) -> Bool {
        let probe = Int(e.probe)
        let firstBracket = KernelNames.isNFBracket(probe) && e.args.nf.bracket == 0
        let outputEntry: Bool = firstBracket && e.args.nf.hook == 3
        let preroutingEntry: Bool = firstBracket && e.args.nf.hook == 0
        let deviceEntry: Bool = probe >= 1 && probe <= 4
        guard deviceEntry || outputEntry || preroutingEntry else { return false }
        if e.head != 0 && p.head != 0 && e.head != p.head { return true }
        let last = p.lastProbe
        switch probe {
        case 1, 2, 3:
            let fromTransmit: Set<Int> = [1, 2, 3, 4, 5, 6, 50, 51, 52]
            return !fromTransmit.contains(last)
        default:
            let fromQueue: Set<Int> = [4, 5, 6, 50, 51]
            return outputEntry && !fromQueue.contains(last)
        }
    }

    /// With SKBTRAIL_TIMING set, prints how long decoding took up to each phase (for tuning).
    static func phase(_ name: String, _ started: Date) {
        guard ProcessInfo.processInfo.environment["SKBTRAIL_TIMING"] != nil else { return }
        FileHandle.standardError.write(Data(String(format: "%@: %.3f s\n", name, Date().timeIntervalSince(started)).utf8))
    }

    static func fnv(_ raw: UnsafeRawBufferPointer, limit: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<min(limit, raw.count) {
            h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3
        }
        return h
    }

    /// Packets sharing a data head are clones when their lives overlap, or when one starts after the
    /// other ended with the same packet bytes (the head cannot be reused while a clone holds it, so a
    /// clone read later, e.g. by an AF_PACKET socket, still points at it). The earliest is the parent.
    func inferClones(_ packets: inout [Packet], events: [Event], rank: [Int]) {
        struct Group { var root: Int; var maxLast: UInt64; var lastHash: UInt64 }
        var groups: [UInt64: Group] = [:]
        for p in 0..<packets.count {
            let evs = packets[p].events
            guard let firstRank = evs.first, let lastRank = evs.last else { continue }
            let first = events[rank[Int(firstRank)]]
            let firstTs = first.ev.ts
            let lastTs = events[rank[Int(lastRank)]].ev.ts
            var heads: [UInt64] = []
            var lastHashByHead: [UInt64: UInt64] = [:]
            var firstHash: UInt64 = 0
            for r in evs {
                let e = events[rank[Int(r)]]
                if e.ev.head == 0 { continue }
                if !heads.contains(e.ev.head) { heads.append(e.ev.head) }
                if e.bytesHash != 0 {
                    if firstHash == 0 { firstHash = e.bytesHash }
                    lastHashByHead[e.ev.head] = e.bytesHash
                }
            }
            for h in heads {
                if var g = groups[h] {
                    if g.root != p && packets[p].parent < 0 && h == heads[0] {
                        if firstTs <= g.maxLast {
                            packets[p].parent = g.root
                            packets[p].cloneWhy = "shares data head \(String(h, radix: 16)) while the parent lives"
                        } else if firstHash != 0 && firstHash == g.lastHash {
                            packets[p].parent = g.root
                            packets[p].cloneWhy = "shares data head \(String(h, radix: 16)) and its bytes after the parent was freed"
                        } else {
                            g.root = p  // the buffer was reused: a new group
                        }
                    }
                    g.maxLast = max(g.maxLast, lastTs)
                    if let lh = lastHashByHead[h] { g.lastHash = lh }
                    groups[h] = g
                } else {
                    groups[h] = Group(root: p, maxLast: lastTs, lastHash: lastHashByHead[h] ?? 0)
                }
            }
        }
        // A parent that is itself a clone: attach to its root, so trees are one level per inference.
        for p in 0..<packets.count {
            var root = packets[p].parent
            var guardSteps = 0
            while root >= 0, packets[root].parent >= 0, guardSteps < 64 { root = packets[root].parent; guardSteps += 1 }
            if root >= 0 { packets[p].parent = root }
        }
    }
}
