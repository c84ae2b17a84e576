import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents

/// Decodes a bundle into an analysis database: records, packets, clone trees, NAT rewrites.
///
/// One streaming pass: chunks are walked in order, their records put in time order through a window
/// of about one chunk (the recorder's ring buffer is filled in nearly time order), and each record,
/// once released, is assigned to its packet and written. A packet is rebuilt and written when its life
/// ends, so memory holds the window, the packets alive at that moment and a summary per packet for the
/// clone inference at the end, not the recording.
public struct Decoder {
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
    }

    let reader: BundleReader
    let progress: ProgressBar?
    private let headers = HeaderTable()

    init(reader: BundleReader, progress: ProgressBar? = nil) {
        self.reader = reader
        self.progress = progress
    }

    /// Decodes the bundle into `db`, an empty database (the analysis schema is created here).
    func decode(into db: Database) throws -> Stats {
        var stats = Stats()
        let started = Date()
        let chunks = try reader.chunks()
        let total = chunks.reduce(0) { $0 &+ $1.records }
        let lostPerCPU = try reader.lost()
        let lost = LostEvents(total: lostPerCPU.values.reduce(Int64(0)) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 }, cpus: lostPerCPU.filter { $0.value > 0 }.keys.sorted())
        try AnalysisSchema.registerTables(db)
        for file in AnalysisSchema.tables { try db.execute(sql: file.sql) }
        var damage = try MetadataCopy.copy(from: reader, into: db)
        try CounterSamples.write(db)
        // names from the copies, whose values MetadataCopy checked
        guard let connection = db.sqliteConnection else { throw AnalysisError.message("internal: no database connection") }
        let names = try BundleNames(connection: connection, schema: "main")
        try writeChunks(db, chunks)
        let stream = try DecodeStream(db: db, names: names, lost: lost)
        // The time-order window: records walked but not yet released, and their times.
        var pending: [DecodedRecord] = []
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
            try reader.forEachChunk { info, buffer, count, codec, stored in
                try Sandbox.checkInterrupt("the decode of \(reader.path)")
                times.add(&times.read, since: &t)
                var minTs = UInt64.max
                let carry = walker.carry
                let first = stream.store.records
                var number = UInt32(truncatingIfNeeded: first)
                do {
                    try walker.walk(buffer, count: count, chunk: info.id) { ev, snap in
                        var hdr = HeaderTable.none
                        var hash: UInt64 = 0
                        if !snap.isEmpty && ev.l3_from != 0 {
                            snap.withUnsafeBytes { raw in
                                hdr = headers.intern(raw, ethertype: UInt16(bigEndian: ev.protocol))
                                hash = HeaderTable.bytesHash(raw, limit: 64)
                            }
                        }
                        pending.append(DecodedRecord(ev: ev, hdr: hdr, bytesHash: hash, number: number))
                        number &+= 1
                        pendingTs.append(ev.ts)
                        minTs = min(minTs, ev.ts)
                    }
                } catch BundleError.corruptChunk(let why) {
                    // the records before the damage stay; the rest of the chunk is left out
                    damage.append("\(reader.path), \(why): the rest of the chunk is skipped")
                }
                try stream.store.add(chunk: info.id, records: Int(number &- UInt32(truncatingIfNeeded: first)), codec: codec,
                                     rawSize: info.rawSize, data: stored, carry: carry)
                times.add(&times.walk, since: &t)
                // Later chunks hold records reserved later; one older than this chunk's oldest
                // would have waited in the kernel for the whole chunk (counted as reordered).
                if minTs != .max { try release(before: minTs) }  // a chunk without events moves nothing
                progress?.update("decoding", done: stream.released, total: total)
                t = times.now()
            }
        }
        try release(before: .max)
        DecodeTiming.phase("streamed", started)
        var t = times.now()
        try stream.finish()
        times.add(&times.finish, since: &t)
        DecodeTiming.phase("clones", started)
        stats.unknownRecords = walker.unknownRecords
        stats.events = stream.released
        stats.packets = stream.packetCount
        stats.reordered = stream.reordered
        DecodeTiming.note("held: \(stats.peakHeld) records at most, \(stats.reordered) reordered, \(stream.openPackets) packets never freed")
        for file in AnalysisSchema.indexes { try db.execute(sql: file.sql) }
        times.add(&times.indexes, since: &t)
        times.report()
        DecodeTiming.phase("indexed", started)
        let meta: [(String, String)] = [
            ("bundle_path", reader.path),
            ("events", String(stats.events)), ("unknown_records", String(stats.unknownRecords)),
            ("reordered_events", String(stats.reordered)), ("unresolved_bytes", String(walker.unresolvedBytes)),
            ("packets", String(stats.packets)),
            ("damage", (reader.damage + damage).joined(separator: "\n")),
        ]
        for (k, v) in meta { try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES (?, ?)", arguments: [k, v]) }
        progress?.finish()
        stats.seconds = Date().timeIntervalSince(started)
        return stats
    }

    private func writeChunks(_ db: Database, _ chunks: [ChunkInfo]) throws {
        let w = try RowWriter<ChunkColumn>(db)
        for c in chunks {
            w.int(.id, c.id); w.int(.first_ts, c.firstTs); w.int(.last_ts, c.lastTs); w.int(.records, c.records)
            w.int(.raw_size, c.rawSize); w.int(.stored_size, c.storedSize); w.text(.codec, reader.recording.codec)
            try w.run()
        }
    }
}
