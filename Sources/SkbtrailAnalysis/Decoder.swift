import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// Decodes a bundle into an analysis database: records, packets, clone trees, NAT rewrites.
///
/// One streaming pass: chunks are walked in order, their records put in time order through a window
/// of about one chunk (the recorder's ring buffer is filled in nearly time order), and each record,
/// once released, is assigned to its packet and written. A packet is rebuilt and written when its life
/// ends, so memory holds the window, the packets alive at that moment and a 40-byte summary per packet
/// for the clone inference at the end, not the recording.
public struct Decoder {
    /// Bumped whenever decoding changes what lands in the analysis database (it invalidates caches).
    public static let version = 6

    /// Counts of one decode.
    public struct Stats: Sendable {
        public var events = 0
        public var packets = 0
        public var unknownRecords = 0
        /// Records whose time came before one already released (out of order by more than a chunk).
        public var reordered = 0
        /// Most records held at once: the time-order window plus the records of live packets.
        public var peakHeld = 0
        public var seconds = 0.0
        var started = Date()
    }

    struct Event {
        var ev: st_event
        /// The parsed headers of the record's packet bytes, shared by the records that carry the same
        /// bytes (a packet's records mostly do), so each distinct byte string is parsed once.
        var hdr: HeaderBox
        var bytesHash: UInt64
    }

    /// Parsed headers, shared by reference between the records that carry the same bytes.
    final class HeaderBox {
        let value: PacketHeaders
        init(_ value: PacketHeaders) { self.value = value }
    }

    /// Interns parsed headers by a hash of their bytes. It remembers the latest 64 Ki byte strings
    /// (a packet's records come close together), so it stays small however long the recording.
    final class HeaderTable {
        static let none = HeaderBox(PacketHeaders())
        static let capacity = 1 << 16
        var index: [UInt64: HeaderBox] = [:]

        /// The headers parsed from `raw`, parsing them unless these bytes were seen lately.
        func intern(_ raw: UnsafeRawBufferPointer, ethertype: UInt16) -> HeaderBox {
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
            if index.count >= HeaderTable.capacity { index.removeAll(keepingCapacity: true) }
            let box = HeaderBox(PacketHeaders.parse(raw, ethertype: ethertype))
            index[key] = box
            return box
        }

        subscript(_ e: Event) -> PacketHeaders { e.hdr.value }
    }

    /// One packet (the life of one sk_buff address) while its records arrive.
    final class Packet {
        let id: Int
        let skb: UInt64
        var events: [Event] = []
        /// Event ids (time-order ranks, from 1) of `events`.
        var ids: [Int32] = []
        /// Index into `events` of the free that ended its life, -1 while none.
        var freeIndex = -1
        var freeTs: UInt64 = 0
        /// The address came back as a new sk_buff before this one's free was seen.
        var superseded = false
        /// Probe of the latest event.
        var lastProbe = 0
        /// skb->head at the latest event.
        var head: UInt64 = 0
        /// Its TCP window was written (tcp_win holds the first step that has the field).
        var windowSeen = false

        init(id: Int, skb: UInt64) {
            self.id = id
            self.skb = skb
        }
    }

    /// What the clone inference needs of a packet, kept for every packet until the end.
    struct CloneSummary {
        var firstTs: UInt64 = 0
        var lastTs: UInt64 = 0
        /// The first data head its records carry (0: none), and the last bytes hash seen with it.
        var head: UInt64 = 0
        var lastHash: UInt64 = 0
        /// The first bytes hash of any of its records with a head.
        var firstHash: UInt64 = 0
    }

    struct NatRow {
        var packet: Int
        var eventID: Int32
        var event: st_event
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
        var stats = Stats()
        stats.started = Date()
        let names = try loadNames()
        let chunks = try reader.chunks()
        let total = chunks.reduce(0) { $0 + $1.records }
        let lost = try reader.lost()
        let lostTotal = lost.values.reduce(0, +)
        let db = try openAnalysisDatabase(path)
        let sqlFiles = BundleFormat.sqlFiles(under: "analysis")
        try db.write { db in
            for file in sqlFiles where !file.path.hasSuffix("indexes.sql") { try db.execute(sql: file.sql) }
            try copyMetadata(into: db)
            try writeChunks(db, chunks)
            let stream = try DecodeStream(decoder: self, db: db, names: names, lostTotal: lostTotal,
                                          lostCPUs: lost.filter { $0.value > 0 }.keys.sorted())
            // The time-order window: records walked but not yet released, and their times.
            var pending: [Event] = []
            var pendingTs: [UInt64] = []
            var order: [Int] = []
            var walker = RecordWalker()
            let times = stream.times
            /// Releases, in time order, the pending records older than `watermark`.
            func release(before watermark: UInt64) throws {
                var t = times.now()
                order.removeAll(keepingCapacity: true)
                order.append(contentsOf: pending.indices)
                order.sort { pendingTs[$0] != pendingTs[$1] ? pendingTs[$0] < pendingTs[$1] : $0 < $1 }
                var cut = 0
                while cut < order.count && pendingTs[order[cut]] < watermark { cut += 1 }
                times.add(&times.order, since: &t)
                for i in order[..<cut] { try stream.release(pending[i]) }
                times.add(&times.released, since: &t)
                stats.peakHeld = max(stats.peakHeld, pending.count + stream.heldEvents)
                let rest = order[cut...].map { pending[$0] }
                pending = rest
                pendingTs = rest.map(\.ev.ts)
            }
            do {
                var t = times.now()
                try reader.forEachChunk { info, buffer, count in
                    times.add(&times.read, since: &t)
                    var minTs = UInt64.max
                    try walker.walk(buffer, count: count, chunk: info.id) { ev, snap in
                        var hdr = HeaderTable.none
                        var hash: UInt64 = 0
                        if !snap.isEmpty && ev.l3_from != 0 {
                            snap.withUnsafeBytes { raw in
                                hdr = headers.intern(raw, ethertype: UInt16(bigEndian: ev.protocol))
                                hash = Decoder.bytesHash(raw, limit: 64)
                            }
                        }
                        pending.append(Event(ev: ev, hdr: hdr, bytesHash: hash))
                        pendingTs.append(ev.ts)
                        minTs = min(minTs, ev.ts)
                    }
                    times.add(&times.walk, since: &t)
                    // Later chunks hold records reserved later; one older than this chunk's oldest
                    // would have waited in the kernel for the whole chunk (counted as reordered).
                    if minTs != .max { try release(before: minTs) }  // a chunk without events moves nothing
                    progress?.update("decoding", done: stream.released, total: total)
                    t = times.now()
                }
            } catch BundleError.corruptChunk(let why) {
                throw AnalysisError.corruptChunk(path: reader.path, why: why.hasPrefix(reader.path + ", ") ? String(why.dropFirst(reader.path.count + 2)) : why)
            }
            try release(before: .max)
            Decoder.phase("streamed", stats.started)
            var t = times.now()
            try stream.finish()
            times.add(&times.finish, since: &t)
            Decoder.phase("clones", stats.started)
            stats.unknownRecords = walker.unknownRecords
            stats.events = stream.released
            stats.packets = stream.packetCount
            stats.reordered = stream.reordered
            if ProcessInfo.processInfo.environment["SKBTRAIL_TIMING"] != nil {
                FileHandle.standardError.write(Data("held: \(stats.peakHeld) records at most, \(stats.reordered) reordered, \(stream.openPackets) packets never freed\n".utf8))
            }
            for file in sqlFiles where file.path.hasSuffix("indexes.sql") { try db.execute(sql: file.sql) }
            times.add(&times.indexes, since: &t)
            times.report()
            Decoder.phase("indexed", stats.started)
            let meta: [(String, String)] = [
                ("decoder_version", String(Decoder.version)), ("bundle_path", reader.path),
                ("events", String(stats.events)), ("unknown_records", String(stats.unknownRecords)),
                ("reordered_events", String(stats.reordered)), ("unresolved_bytes", String(walker.unresolvedBytes)),
                ("packets", String(stats.packets)), ("complete", "1"),
            ]
            for (k, v) in meta { try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES (?, ?)", arguments: [k, v]) }
        }
        progress?.finish()
        try db.close()
        stats.seconds = Date().timeIntervalSince(stats.started)
        Decoder.phase("written", stats.started)
        return stats
    }

    func openAnalysisDatabase(_ path: String) throws -> DatabaseQueue {
        do {
            let db = try DatabaseQueue(path: path)
            try db.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA page_size = 65536")
                try db.execute(sql: "PRAGMA journal_mode = OFF")
                try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
                try db.execute(sql: "PRAGMA cache_size = -65536")
                try db.execute(sql: "PRAGMA synchronous = OFF")
            }
            return db
        } catch {
            throw AnalysisError.analysisDatabase(path: path, why: "\(error)")
        }
    }

    func writeChunks(_ db: Database, _ chunks: [ChunkInfo]) throws {
        let chunkInsert = try BulkInsert(db, "INSERT INTO bundle_chunk VALUES (?, ?, ?, ?, ?, ?, ?)")
        for c in chunks {
            chunkInsert.int(c.id); chunkInsert.int(c.firstTs); chunkInsert.int(c.lastTs); chunkInsert.int(c.records)
            chunkInsert.int(c.rawSize); chunkInsert.int(c.storedSize); chunkInsert.text(reader.recording.codec)
            try chunkInsert.run()
        }
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
            switch last {  // the probes a receive can follow: a transmit, the queue or XDP
            case 1, 2, 3, 4, 5, 6, 50, 51, 52: return false
            default: return true
            }
        default:
            switch last {  // the probes local output can follow: the device queue (a tunnel's outer packet)
            case 4, 5, 6, 50, 51: return false
            default: return outputEntry
            }
        }
    }

    /// With SKBTRAIL_TIMING set: where a decode's time goes, summed over the stream (for tuning and
    /// bench/analyzer.sh). Without it, `now()` is 0 and nothing is measured.
    final class PhaseTimes {
        let enabled = ProcessInfo.processInfo.environment["SKBTRAIL_TIMING"] != nil
        /// Reading chunks: the SQLite blob, zstd, the split codec.
        var read: UInt64 = 0
        /// Walking records, parsing their headers.
        var walk: UInt64 = 0
        /// Putting records in time order.
        var order: UInt64 = 0
        /// Releasing records: all of packets, NAT and rows (the next three are parts of it).
        var released: UInt64 = 0
        /// Writing event and TCP rows.
        var rows: UInt64 = 0
        /// Rebuilding and writing finished packets (outcome, NAT, the packet row).
        var packets: UInt64 = 0
        var finish: UInt64 = 0
        var indexes: UInt64 = 0

        @inline(__always) func now() -> UInt64 { enabled ? DispatchTime.now().uptimeNanoseconds : 0 }
        @inline(__always) func add(_ total: inout UInt64, since t: inout UInt64) {
            guard enabled else { return }
            let n = DispatchTime.now().uptimeNanoseconds
            total &+= n &- t
            t = n
        }

        func report() {
            guard enabled else { return }
            let rebuild = released &- rows &- packets
            let lines = [("read", read), ("walk", walk), ("order", order), ("rebuild", rebuild), ("rows", rows),
                         ("packets", packets), ("finish", finish), ("indexes", indexes)]
            for (name, ns) in lines {
                FileHandle.standardError.write(Data(String(format: "time %@: %.3f s\n", name, Double(ns) / 1e9).utf8))
            }
        }
    }

    /// With SKBTRAIL_TIMING set, prints how long decoding took up to each phase (for tuning).
    static func phase(_ name: String, _ started: Date) {
        guard ProcessInfo.processInfo.environment["SKBTRAIL_TIMING"] != nil else { return }
        FileHandle.standardError.write(Data(String(format: "%@: %.3f s\n", name, Date().timeIntervalSince(started)).utf8))
    }

    /// A hash of the first `limit` bytes (the headers a rewrite changes), a word at a time.
    static func bytesHash(_ raw: UnsafeRawBufferPointer, limit: Int) -> UInt64 {
        let n = min(limit, raw.count)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(n)
        var i = 0
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 32
            i += 8
        }
        while i < n {
            h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3
            i += 1
        }
        return h == 0 ? 1 : h  // 0 means no bytes
    }

    /// Packets sharing a data head are clones when their lives overlap, or when one starts after the
    /// other ended with the same packet bytes (the head cannot be reused while a clone holds it, so a
    /// clone read later, e.g. by an AF_PACKET socket, still points at it). The earliest is the parent.
    /// `extraHeads` holds, by packet index, the heads after the first and their last bytes hashes.
    /// Returns the parent index of each packet (-1: none) and why, for each clone.
    static func inferClones(_ packets: [CloneSummary], extraHeads: [Int: [(UInt64, UInt64)]]) -> (parent: [Int32], why: [Int: String]) {
        struct Group { var root: Int; var maxLast: UInt64; var lastHash: UInt64 }
        var groups: [UInt64: Group] = [:]
        var parent = [Int32](repeating: -1, count: packets.count)
        var why: [Int: String] = [:]
        for p in 0..<packets.count {
            let s = packets[p]
            guard s.head != 0 else { continue }
            var heads = [(s.head, s.lastHash)]
            if let more = extraHeads[p] { heads += more }
            for (h, lastHash) in heads {
                if var g = groups[h] {
                    if g.root != p && parent[p] < 0 && h == s.head {
                        if s.firstTs <= g.maxLast {
                            parent[p] = Int32(g.root)
                            why[p] = "shares data head \(String(h, radix: 16)) while the parent lives"
                        } else if s.firstHash != 0 && s.firstHash == g.lastHash {
                            parent[p] = Int32(g.root)
                            why[p] = "shares data head \(String(h, radix: 16)) and its bytes after the parent was freed"
                        } else {
                            g.root = p  // the buffer was reused: a new group
                        }
                    }
                    g.maxLast = max(g.maxLast, s.lastTs)
                    if lastHash != 0 { g.lastHash = lastHash }
                    groups[h] = g
                } else {
                    groups[h] = Group(root: p, maxLast: s.lastTs, lastHash: lastHash)
                }
            }
        }
        // A parent that is itself a clone: attach to its root, so trees are one level per inference.
        for p in 0..<packets.count {
            var root = Int(parent[p])
            var guardSteps = 0
            while root >= 0, parent[root] >= 0, guardSteps < 64 { root = Int(parent[root]); guardSteps += 1 }
            if root >= 0 { parent[p] = Int32(root) }
        }
        return (parent, why)
    }
}
