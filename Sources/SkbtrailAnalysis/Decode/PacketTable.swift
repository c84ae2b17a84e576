import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle

/// The packets of an analysis database, read from the segments `PacketStore` wrote: a segment is
/// decompressed when one of its packets is asked for, the latest few stay.
final class PacketSource {
    final class Segment {
        let id: Int
        var count = 0
        var columns = 0
        var ids: [UInt32] = []
        var slots: [Int64] = []
        /// The string area: each string's bytes, and where each ends.
        var stringBytes: [UInt8] = []
        var stringEnds: [Int] = []
        var offsets: [UInt32] = []
        var numbers: [UInt32] = []
        var lastUse = 0
        init(id: Int) { self.id = id }

        func value(_ slot: Int, _ column: Int) -> Int64 { slots[slot * columns + column] }
    }

    private let connection: OpaquePointer
    private let schema: String
    private var cache: [Segment] = []
    private var uses = 0
    private var indexBlock: (block: Int, entries: [UInt32])?
    /// Parents of clones, from clone_edge.
    private(set) var parents: [Int64: Int64] = [:]
    /// The clones whose parent is inferred (from a shared data head); the others skb_clone named.
    private(set) var inferredClones: Set<Int64> = []
    /// The largest packet id.
    private(set) var total: Int64 = 0
    /// Slots of `PacketSegment.columns` by PacketColumn raw value.
    let slotOf: [Int]

    init(connection: OpaquePointer, schema: String) throws {
        self.connection = connection
        self.schema = schema
        var slotOf = [Int](repeating: -1, count: PacketColumn.allCases.count + 1)
        for (i, c) in PacketSegment.columns.enumerated() { slotOf[Int(c.rawValue)] = i }
        self.slotOf = slotOf
        try query("SELECT parent_id, child_id, inferred FROM \(quoted("clone_edge"))") { s in
            parents[sqlite3_column_int64(s, 1)] = sqlite3_column_int64(s, 0)
            if sqlite3_column_int64(s, 2) != 0 { inferredClones.insert(sqlite3_column_int64(s, 1)) }
        }
        try query("SELECT max(block), (SELECT length(entries) FROM \(quoted("pkt_index")) ORDER BY block DESC LIMIT 1) FROM \(quoted("pkt_index"))") { s in
            if sqlite3_column_type(s, 0) != SQLITE_NULL {
                total = sqlite3_column_int64(s, 0) * Int64(PacketSegment.indexBlock) + sqlite3_column_int64(s, 1) / 4
            }
        }
    }

    private func quoted(_ table: String) -> String { "\"\(schema.replacingOccurrences(of: "\"", with: "\"\""))\".\(table)" }

    private func query(_ sql: String, bind: (OpaquePointer) -> Void = { _ in }, _ row: (OpaquePointer) throws -> Void) throws {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw AnalysisError.message("reading the packets failed: \(String(cString: sqlite3_errmsg(connection)))")
        }
        defer { sqlite3_finalize(statement) }
        bind(statement)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else {
                throw AnalysisError.message("reading the packets failed: \(String(cString: sqlite3_errmsg(connection)))")
            }
            try row(statement)
        }
    }

    /// The segment and slot of packet `id`.
    func locate(_ id: Int64) throws -> (Segment, Int)? {
        guard id >= 1 && id <= total else { return nil }
        let block = Int((id - 1) / Int64(PacketSegment.indexBlock))
        if indexBlock?.block != block {
            var entries: [UInt32] = []
            try query("SELECT entries FROM \(quoted("pkt_index")) WHERE block = ?", bind: { sqlite3_bind_int64($0, 1, Int64(block)) }) {
                entries = EventSource.words($0, 0)
            }
            indexBlock = (block, entries)
        }
        let i = Int((id - 1) % Int64(PacketSegment.indexBlock))
        guard let entries = indexBlock?.entries, i < entries.count, entries[i] != 0 else { return nil }
        let e = Int(entries[i]) - 1
        let segment = try self.segment(e / PacketSegment.capacity)
        let slot = e % PacketSegment.capacity
        guard slot < segment.count, Int64(segment.ids[slot]) == id else { return nil }
        return (segment, slot)
    }

    private func segment(_ id: Int) throws -> Segment {
        uses += 1
        if let s = cache.first(where: { $0.id == id }) {
            s.lastUse = uses
            return s
        }
        let s = Segment(id: id)
        var data = Data()
        try query("SELECT data FROM \(quoted("pkt_segment")) WHERE id = ?", bind: { sqlite3_bind_int64($0, 1, Int64(id)) }) {
            data = Data(EventSource.bytes($0, 0))
        }
        try unpack(data, into: s)
        s.lastUse = uses
        if cache.count >= 32, let oldest = cache.indices.min(by: { cache[$0].lastUse < cache[$1].lastUse }) { cache.remove(at: oldest) }
        cache.append(s)
        return s
    }

    private func unpack(_ data: Data, into s: Segment) throws {
        func damaged() -> AnalysisError {
            AnalysisError.message("the analysis database's packet segment \(s.id) is damaged: decode the bundle again with --no-cache")
        }
        let size = data.withUnsafeBytes { Zstd.frameContentSize($0) }
        guard let size, size >= 16, size <= Zstd.maxFrame else { throw damaged() }
        var raw: [UInt8] = []
        try Zstd.decompress(data, expected: size, into: &raw)
        try raw.withUnsafeBytes { p in
            func u32(_ o: Int) -> Int { Int(p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            let count = u32(0), columns = u32(4), stringBytes = u32(8), numberCount = u32(12)
            guard columns == PacketSegment.columns.count else { throw damaged() }
            var o = 16
            let need = o + count * 4 + count * columns * 8 + stringBytes + (count + 1) * 4 + numberCount * 4
            guard need <= size else { throw damaged() }
            s.count = count
            s.columns = columns
            func copy<T>(_ n: Int, at offset: Int, as: T.Type) -> [T] {
                [T](unsafeUninitializedCapacity: n) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: p[offset..<(offset + n * MemoryLayout<T>.stride)]))
                    initialized = n
                }
            }
            s.ids = copy(count, at: o, as: UInt32.self)
            o += count * 4
            s.slots = copy(count * columns, at: o, as: Int64.self)
            o += count * columns * 8
            let end = o + stringBytes
            s.stringBytes.reserveCapacity(stringBytes)
            while o + 4 <= end {
                let n = u32(o)
                o += 4
                guard o + n <= end else { throw damaged() }
                s.stringBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[o..<(o + n)]))
                s.stringEnds.append(s.stringBytes.count)
                o += n
            }
            o = end
            s.offsets = copy(count + 1, at: o, as: UInt32.self)
            o += (count + 1) * 4
            s.numbers = copy(numberCount, at: o, as: UInt32.self)
        }
    }

    /// The ids of the packets whose column `c` (one of `PacketValueIndex.columns`) is `value`, ascending.
    func ids(_ c: PacketColumn, _ value: String) throws -> [UInt32] {
        var ids: [UInt32] = []
        try query("SELECT ids FROM \(quoted("pkt_value")) WHERE col = ? AND value = ? ORDER BY block", bind: { s in
            _ = String(describing: c).withCString { sqlite3_bind_text(s, 1, $0, -1, SQLITE_TRANSIENT_VALUE) }
            _ = value.withCString { sqlite3_bind_text(s, 2, $0, -1, SQLITE_TRANSIENT_VALUE) }
        }) { ids += EventSource.words($0, 0) }
        return ids
    }

    /// The record numbers of packet `id`'s steps, in order.
    func records(_ id: Int64) throws -> [UInt32] {
        guard let (s, slot) = try locate(id) else { return [] }
        let a = Int(s.offsets[slot]), b = Int(s.offsets[slot + 1])
        guard a <= b, b <= s.numbers.count else { return [] }
        return Array(s.numbers[a..<b])
    }

    /// The bytes of string `k` (1-based) of segment `s`, to `body`; false when there is none.
    @discardableResult
    func withString(_ s: Segment, _ k: Int64, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard k >= 1 && k <= Int64(s.stringEnds.count) else { return false }
        let i = Int(k - 1)
        let start = i == 0 ? 0 : s.stringEnds[i - 1]
        s.stringBytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<s.stringEnds[i]])) }
        return true
    }

    /// Column `c` of slot `slot` of `s` as text (nil for NULL or a column that is not text).
    func text(_ s: Segment, _ slot: Int, _ c: PacketColumn) -> String? {
        let k = slotOf[Int(c.rawValue)]
        guard k >= 0 else { return nil }
        var out: String?
        withString(s, s.value(slot, k)) { out = String(decoding: $0, as: UTF8.self) }
        return out
    }

    /// Column `c` of slot `slot` of `s` as an integer (nil for NULL).
    func int(_ s: Segment, _ slot: Int, _ c: PacketColumn) -> Int64? {
        let k = slotOf[Int(c.rawValue)]
        guard k >= 0 else { return nil }
        let v = s.value(slot, k)
        return v == PacketSegment.null ? nil : v
    }

    /// Packet `id` as the path reports show it.
    func record(_ id: Int64) throws -> PacketRecord? {
        guard let (s, i) = try locate(id) else { return nil }
        return PacketRecord(id: id, skb: int(s, i, .skb) ?? 0, firstTs: int(s, i, .first_ts) ?? 0, lastTs: int(s, i, .last_ts) ?? 0,
                            fate: text(s, i, .fate) ?? "", incomplete: text(s, i, .incomplete),
                            dropReason: text(s, i, .drop_reason_name), dropSymbol: text(s, i, .drop_symbol),
                            nfFamily: text(s, i, .nf_family), nfHook: text(s, i, .nf_hook), nfTable: text(s, i, .nf_table),
                            netns: int(s, i, .end_netns), l3: text(s, i, .l3), proto: text(s, i, .proto),
                            saddr: text(s, i, .saddr), daddr: text(s, i, .daddr), sport: int(s, i, .sport), dport: int(s, i, .dport),
                            tuple: text(s, i, .tuple), parent: parents[id], cloneInferred: inferredClones.contains(id), natCount: int(s, i, .nat_count) ?? 0)
    }
}

/// The `pkt` virtual table (module `skbtrail_packets`): one row per packet with the columns of
/// `PacketColumn`, served by a `PacketSource`. Ways in: by `id`, or every packet in id order.
final class PacketTable: VirtualTable {
    static let moduleName = "skbtrail_packets"
    private let connection: OpaquePointer
    private let schema: String
    private var source: PacketSource?

    init(connection: OpaquePointer, schema: String) {
        self.connection = connection
        self.schema = schema
    }

    static func register(_ db: Database) throws {
        try VirtualTables.register(moduleName, Module(), on: db)
    }

    static func register(connection: OpaquePointer) throws {
        try VirtualTables.register(moduleName, Module(), connection: connection)
    }

    /// The module: its columns, and a table for each schema that declares one.
    final class Module: VirtualTableKind {
        private static let columns = "CREATE TABLE x(" + PacketColumn.allCases.map { String(describing: $0) }.joined(separator: ", ") + ")"
        override var declaration: String { Module.columns }
        override func table(connection: OpaquePointer, schema: String) -> VirtualTable {
            PacketTable(connection: connection, schema: schema)
        }
    }

    func packets() throws -> PacketSource {
        if let source { return source }
        let s = try PacketSource(connection: connection, schema: schema)
        source = s
        return s
    }

    /// The listed columns (`pkt_value_col`) and how many packets each of their values has, read at the
    /// first plan (nil where the analysis database has no lists).
    private var valueCounts: [PacketColumn: [String: Int]]?
    /// Packets in all, for the plans' estimates.
    private var packetCount = 0

    private func counts() -> [PacketColumn: [String: Int]] {
        if let valueCounts { return valueCounts }
        var counts: [PacketColumn: [String: Int]] = [:]
        func each(_ sql: String, _ row: (OpaquePointer) -> Void) {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else { return }
            defer { sqlite3_finalize(statement) }
            while sqlite3_step(statement) == SQLITE_ROW { row(statement) }
        }
        let q = "\"\(schema.replacingOccurrences(of: "\"", with: "\"\""))\"."
        each("SELECT col FROM \(q)pkt_value_col") { s in
            if let t = sqlite3_column_text(s, 0), let c = PacketValueIndex.columns.first(where: { String(describing: $0) == String(cString: t) }) {
                counts[c] = [:]
            }
        }
        each("SELECT col, value, sum(length(ids)) / 4 FROM \(q)pkt_value GROUP BY col, value") { s in
            guard let t = sqlite3_column_text(s, 0), let v = sqlite3_column_text(s, 1),
                  let c = PacketValueIndex.columns.first(where: { String(describing: $0) == String(cString: t) }), counts[c] != nil else { return }
            counts[c]?[String(cString: v)] = Int(sqlite3_column_int64(s, 2))
        }
        each("SELECT sum(packets) FROM \(q)pkt_segment") { s in packetCount = Int(sqlite3_column_int64(s, 0)) }
        valueCounts = counts
        return counts
    }

    override func bestIndex(_ info: UnsafeMutablePointer<sqlite3_index_info>) {
        let id = PacketColumn.id.rawValue - 1
        if let i = VirtualTables.constraint(info, column: id) ?? VirtualTables.constraint(info, column: -1) {
            VirtualTables.use(info, i)
            info.pointee.idxNum = 1
            info.pointee.estimatedCost = 1
            info.pointee.estimatedRows = 1
            info.pointee.idxFlags = SQLITE_INDEX_SCAN_UNIQUE
        } else if let (i, column, rows) = valuePlan(info) {
            // the packets with one value of a listed column, in id order (an IN list: one filter per value)
            VirtualTables.use(info, i)
            info.pointee.idxNum = 2 + Int32(PacketValueIndex.place[Int(column.rawValue)])
            info.pointee.estimatedRows = Int64(rows)
            info.pointee.estimatedCost = Double(rows) + 10
            if VirtualTables.ordered(info, by: [id]) { info.pointee.orderByConsumed = 1 }
        } else {
            info.pointee.idxNum = 0
            info.pointee.estimatedCost = 100_000
            info.pointee.estimatedRows = 100_000
            if VirtualTables.ordered(info, by: [id]) { info.pointee.orderByConsumed = 1 }
        }
    }

    /// The most selective `column = value` constraint on a listed column, with the packets it selects
    /// (exact where the value is known when the statement is prepared). Only SQLite's own comparison
    /// (BINARY) is served: the lists hold each value as it is.
    private func valuePlan(_ info: UnsafeMutablePointer<sqlite3_index_info>) -> (Int, PacketColumn, Int)? {
        let counts = counts()
        guard !counts.isEmpty else { return nil }
        var best: (Int, PacketColumn, Int)?
        for column in PacketValueIndex.columns {
            guard let values = counts[column], let i = VirtualTables.constraint(info, column: column.rawValue - 1),
                  let collation = sqlite3_vtab_collation(info, Int32(i)), String(cString: collation) == "BINARY" else { continue }
            var rows = max(packetCount / max(values.count, 1), 1)
            var value: OpaquePointer?
            if sqlite3_vtab_rhs_value(info, Int32(i), &value) == SQLITE_OK {
                rows = VirtualTables.text(value).flatMap { values[$0] } ?? 0
            }
            if best == nil || rows < best!.2 { best = (i, column, rows) }
        }
        return best
    }

    override func cursor() -> VirtualCursor { Cursor(table: self) }

    final class Cursor: VirtualCursor {
        let table: PacketTable
        var id: Int64 = 0
        var last: Int64 = 0
        /// With a value plan: the ids to visit, and the position in them.
        var list: [UInt32]?
        var position = 0
        var segment: PacketSource.Segment?
        var slot = 0

        init(table: PacketTable) { self.table = table }

        override func filter(plan: Int32, value: OpaquePointer?) throws {
            let source = try table.packets()
            list = nil
            if plan == 1 {
                // an id past the last packet is none (and never counted up to Int64.max)
                let wanted = VirtualTables.integer(value).flatMap { $0 >= 1 && $0 <= source.total ? $0 : nil } ?? 0
                id = wanted
                last = wanted
            } else if plan >= 2, Int(plan - 2) < PacketValueIndex.columns.count {
                let column = PacketValueIndex.columns[Int(plan - 2)]
                list = try VirtualTables.text(value).map { try source.ids(column, $0) } ?? []
                position = 0
            } else {
                id = 1
                last = source.total
            }
            try load()
        }

        override func next() throws {
            if list != nil { position += 1 } else { id += 1 }
            try load()
        }

        private func load() throws {
            segment = nil
            let source = try table.packets()
            if let list {
                while position < list.count {
                    id = Int64(list[position])
                    if let (s, i) = try source.locate(id) {
                        segment = s
                        slot = i
                        return
                    }
                    position += 1
                }
                return
            }
            while id >= 1 && id <= last {
                if let (s, i) = try source.locate(id) {
                    segment = s
                    slot = i
                    return
                }
                id += 1
            }
        }

        override var eof: Bool { segment == nil }
        override var rowid: Int64 { id }

        override func column(_ i: Int32, _ ctx: OpaquePointer) {
            guard let s = segment, let source = table.source, let column = PacketColumn(rawValue: i + 1) else {
                sqlite3_result_null(ctx)
                return
            }
            switch column {
            case .parent_id:
                if let p = source.parents[id] { sqlite3_result_int64(ctx, p) } else { sqlite3_result_null(ctx) }
            case .clone_inferred:
                if source.parents[id] != nil { sqlite3_result_int64(ctx, source.inferredClones.contains(id) ? 1 : 0) } else { sqlite3_result_null(ctx) }
            case .records:
                let a = Int(s.offsets[slot]), b = Int(s.offsets[slot + 1])
                guard a <= b, b <= s.numbers.count else { sqlite3_result_null(ctx); return }
                s.numbers[a..<b].withUnsafeBytes { sqlite3_result_blob(ctx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT_VALUE) }
            default:
                let k = source.slotOf[Int(column.rawValue)]
                let v = s.value(slot, k)
                if v == PacketSegment.null {
                    sqlite3_result_null(ctx)
                } else if PacketSegment.isText[Int(column.rawValue)] {
                    let found = source.withString(s, v) { b in
                        sqlite3_result_text(ctx, b.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(b.count), SQLITE_TRANSIENT_VALUE)
                    }
                    if !found { sqlite3_result_null(ctx) }
                } else {
                    sqlite3_result_int64(ctx, v)
                }
            }
        }
    }
}
