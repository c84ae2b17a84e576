import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// The records of an analysis database, decoded on demand from the chunks the decode copied in
/// (`ev_chunk`), for the `ev` virtual table. A chunk is decompressed and walked when one of its records
/// is asked for; the latest few stay decoded, so a scan in time or packet order decodes each once.
final class EventSource {
    /// One chunk, walked: its event records, their packet bytes, and what the decode stored of each.
    final class Chunk {
        let id: Int64
        let firstRecord: Int
        var events: [st_event] = []
        /// Each record's packet bytes: a range of `bytes`.
        var ranges: [(start: Int, count: Int)] = []
        var bytes: [UInt8] = []
        var ids: [UInt32] = []
        var packets: [UInt32] = []
        var steps: [UInt32] = []
        /// Parsed headers by record, when asked for.
        var headers: [HeaderBox?] = []
        var lastUse = 0

        init(id: Int64, firstRecord: Int) {
            self.id = id
            self.firstRecord = firstRecord
        }
    }

    private let connection: OpaquePointer
    /// The schema the tables are in ("main", or "analysis" where the analysis is attached).
    private let schema: String
    private let names: BundleNames
    let texts = TextCache()
    private let headerTable = HeaderTable()
    /// (first record, records, chunk id), by first record.
    private var index: [(first: Int, count: Int, id: Int64)] = []
    private var cache: [Chunk] = []
    private var uses = 0
    private static let cacheSize = 24  // chunks of about 1 MiB of records, 1.5 MiB decoded
    private var idBlock: (block: Int, records: [UInt32])?
    private var probeNames: [Int: String] = [:]
    /// The probe names of `ev_name`, read on first use.
    private var allNames: [String]?
    /// The packets, for their records.
    private let packets: PacketSource
    /// Event records in all.
    private(set) var total = 0

    init(connection: OpaquePointer, schema: String) throws {
        self.connection = connection
        self.schema = schema
        names = try BundleNames(connection: connection, schema: schema)
        packets = try PacketSource(connection: connection, schema: schema)
        try query("SELECT first_record, records, id FROM \(quoted("ev_chunk")) ORDER BY first_record") { s in
            index.append((Int(sqlite3_column_int64(s, 0)), Int(sqlite3_column_int64(s, 1)), sqlite3_column_int64(s, 2)))
        }
        total = index.last.map { $0.first + $0.count } ?? 0
    }

    private func quoted(_ table: String) -> String { "\"\(schema.replacingOccurrences(of: "\"", with: "\"\""))\".\(table)" }

    /// Runs `sql` on the connection, calling `row` for each result row.
    func query(_ sql: String, bind: (OpaquePointer) -> Void = { _ in }, _ row: (OpaquePointer) throws -> Void) throws {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw AnalysisError.message("reading the records failed: \(String(cString: sqlite3_errmsg(connection)))")
        }
        defer { sqlite3_finalize(statement) }
        bind(statement)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else {
                throw AnalysisError.message("reading the records failed: \(String(cString: sqlite3_errmsg(connection)))")
            }
            try row(statement)
        }
    }

    /// A blob column's bytes.
    static func bytes(_ s: OpaquePointer, _ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(s, column))
        guard n > 0, let p = sqlite3_column_blob(s, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// A blob column as u32 values.
    static func words(_ s: OpaquePointer, _ column: Int32) -> [UInt32] {
        let n = Int(sqlite3_column_bytes(s, column)) / 4
        guard n > 0, let p = sqlite3_column_blob(s, column) else { return [] }
        return Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt32.self), count: n))
    }

    // MARK: records

    /// The chunk holding record `number` and the record's index in it.
    func locate(_ number: Int) throws -> (Chunk, Int)? {
        guard number >= 0 && number < total else { return nil }
        uses += 1
        for c in cache where number >= c.firstRecord && number < c.firstRecord + c.events.count {
            c.lastUse = uses
            return (c, number - c.firstRecord)
        }
        var lo = 0, hi = index.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if index[mid].first <= number { lo = mid } else { hi = mid - 1 }
        }
        let entry = index[lo]
        guard number < entry.first + entry.count else { return nil }
        let chunk = try decode(entry.id, firstRecord: entry.first)
        guard number - chunk.firstRecord < chunk.events.count else { return nil }
        chunk.lastUse = uses
        if cache.count >= EventSource.cacheSize, let oldest = cache.indices.min(by: { cache[$0].lastUse < cache[$1].lastUse }) {
            cache.remove(at: oldest)
        }
        cache.append(chunk)
        return (chunk, number - chunk.firstRecord)
    }

    private func decode(_ id: Int64, firstRecord: Int) throws -> Chunk {
        let chunk = Chunk(id: id, firstRecord: firstRecord)
        try query("SELECT codec, raw_size, data, carry, ids, packets, steps FROM \(quoted("ev_chunk")) WHERE id = ?",
                  bind: { sqlite3_bind_int64($0, 1, id) }) { s in
            let codec = String(cString: sqlite3_column_text(s, 0))
            let rawSize = Int(sqlite3_column_int64(s, 1))
            let data = Data(EventSource.bytes(s, 2))
            let carry = EventSource.bytes(s, 3)
            chunk.ids = EventSource.words(s, 4)
            chunk.packets = EventSource.words(s, 5)
            chunk.steps = EventSource.words(s, 6)
            let (buffer, count) = try ChunkCodec.decompress(data, codec: codec, rawSize: rawSize, chunk: id)
            var walker = RecordWalker(carry: carry)
            do {
                try walker.walk(buffer, count: count, chunk: id) { ev, snap in
                    chunk.events.append(ev)
                    chunk.ranges.append((chunk.bytes.count, snap.count))
                    chunk.bytes.append(contentsOf: snap)
                }
            } catch BundleError.corruptChunk {
                // the decode kept the records before the damage, and so does this walk
            }
        }
        guard chunk.ids.count == chunk.events.count, chunk.packets.count == chunk.events.count,
              chunk.steps.count == chunk.events.count else {
            throw AnalysisError.message("the analysis database's records of chunk \(id) do not match the chunk: decode the bundle again with --no-cache")
        }
        chunk.headers = Array(repeating: nil, count: chunk.events.count)
        return chunk
    }

    /// The parsed headers of record `i` of `chunk`.
    func headers(_ chunk: Chunk, _ i: Int) -> HeaderBox {
        if let h = chunk.headers[i] { return h }
        let e = chunk.events[i]
        let r = chunk.ranges[i]
        var box = HeaderTable.none
        if r.count > 0 && e.l3_from != 0 {
            chunk.bytes.withUnsafeBytes { raw in
                box = headerTable.intern(UnsafeRawBufferPointer(rebasing: raw[r.start..<(r.start + r.count)]),
                                         ethertype: UInt16(bigEndian: e.protocol))
            }
        }
        chunk.headers[i] = box
        return box
    }

    /// The record number of event `id`.
    func recordNumber(id: Int64) throws -> Int? {
        guard id >= 1 && id <= Int64(total) else { return nil }
        let block = Int((id - 1) / 65536)
        if idBlock?.block != block {
            var records: [UInt32] = []
            try query("SELECT records FROM \(quoted("ev_id")) WHERE block = ?", bind: { sqlite3_bind_int64($0, 1, Int64(block)) }) {
                records = EventSource.words($0, 0)
            }
            idBlock = (block, records)
        }
        let i = Int((id - 1) % 65536)
        guard let records = idBlock?.records, i < records.count else { return nil }
        return Int(records[i])
    }

    /// The record numbers of packet `id`'s steps, in order.
    func packetRecords(_ id: Int64) throws -> [UInt32] { try packets.records(id) }

    /// The ids of the events at probe `name`, ascending.
    func ids(named name: String) throws -> [UInt32] {
        var ids: [UInt32] = []
        try query("SELECT ids FROM \(quoted("ev_name")) WHERE name = ? ORDER BY block",
                  bind: { s in _ = name.withCString { sqlite3_bind_text(s, 1, $0, -1, SQLITE_TRANSIENT_VALUE) } }) {
            ids += EventSource.words($0, 0)
        }
        return ids
    }

    /// The ids of the events at the probes whose names match `pattern`, ascending.
    func ids(like pattern: LikePattern) throws -> [UInt32] {
        if allNames == nil {
            var names: [String] = []
            try query("SELECT DISTINCT name FROM \(quoted("ev_name")) ORDER BY name") { s in
                if let t = sqlite3_column_text(s, 0) { names.append(String(cString: t)) }
            }
            allNames = names
        }
        let lists = try (allNames ?? []).filter(pattern.matches).map { try ids(named: $0) }
        // each name's ids ascend; the names' ids interleave
        return lists.count == 1 ? lists[0] : lists.joined().sorted()
    }

    /// What names the probe of `e`: its probe, and for a netfilter bracket its family and hook too.
    func probeKey(_ e: st_event) -> Int {
        let p = Int(e.probe)
        return ProbeTable.isNetfilterBracket(p) ? BundleNames.nfKey(probe: p, family: Int(e.args.nf.pf), hook: Int(e.args.nf.hook)) : p
    }

    /// The name of the probe that wrote `e` (cached by attach point).
    func probeName(_ e: st_event) -> String {
        let key = probeKey(e)
        if let n = probeNames[key] { return n }
        let n = names.probeName(e)
        probeNames[key] = n
        return n
    }

    func detail(_ e: st_event) -> String { texts.detail(e, names: names) }
}

/// SQLITE_TRANSIENT: SQLite copies the value before the call returns.
let SQLITE_TRANSIENT_VALUE = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
