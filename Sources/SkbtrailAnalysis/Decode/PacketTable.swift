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
        var strings: [String] = []
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
        try query("SELECT parent_id, child_id FROM \(quoted("clone_edge"))") { s in
            parents[sqlite3_column_int64(s, 1)] = sqlite3_column_int64(s, 0)
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
        if cache.count >= 8, let oldest = cache.indices.min(by: { cache[$0].lastUse < cache[$1].lastUse }) { cache.remove(at: oldest) }
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
            s.ids = Array(UnsafeRawBufferPointer(rebasing: p[o..<(o + count * 4)]).bindMemory(to: UInt32.self))
            o += count * 4
            s.slots = (0..<(count * columns)).map { p.loadUnaligned(fromByteOffset: o + $0 * 8, as: Int64.self) }
            o += count * columns * 8
            let end = o + stringBytes
            while o + 4 <= end {
                let n = u32(o)
                o += 4
                guard o + n <= end else { throw damaged() }
                s.strings.append(String(decoding: UnsafeRawBufferPointer(rebasing: p[o..<(o + n)]), as: UTF8.self))
                o += n
            }
            o = end
            s.offsets = (0...count).map { UInt32(u32(o + $0 * 4)) }
            o += (count + 1) * 4
            s.numbers = (0..<numberCount).map { UInt32(u32(o + $0 * 4)) }
        }
    }

    /// The record numbers of packet `id`'s steps, in order.
    func records(_ id: Int64) throws -> [UInt32] {
        guard let (s, slot) = try locate(id) else { return [] }
        let a = Int(s.offsets[slot]), b = Int(s.offsets[slot + 1])
        guard a <= b, b <= s.numbers.count else { return [] }
        return Array(s.numbers[a..<b])
    }

    /// The text of string `k` (1-based) of segment `s`.
    func string(_ s: Segment, _ k: Int64) -> String? {
        k >= 1 && k <= Int64(s.strings.count) ? s.strings[Int(k - 1)] : nil
    }
}

/// The `pkt` virtual table (module `skbtrail_packets`): one row per packet with the columns of
/// `PacketColumn`, served by a `PacketSource`. Ways in: by `id`, or every packet in id order.
final class PacketTable: VirtualTableKind, VirtualTable {
    static let moduleName = "skbtrail_packets"
    let declaration = "CREATE TABLE x(" + PacketColumn.allCases.map { String(describing: $0) }.joined(separator: ", ") + ")"
    private let connection: OpaquePointer?
    private let schema: String
    private var source: PacketSource?

    init() {
        connection = nil
        schema = ""
    }

    private init(connection: OpaquePointer, schema: String) {
        self.connection = connection
        self.schema = schema
    }

    func table(connection: OpaquePointer, schema: String) -> VirtualTable { PacketTable(connection: connection, schema: schema) }

    static func register(_ db: Database) throws {
        try VirtualTables.register(moduleName, PacketTable(), on: db)
    }

    func packets() throws -> PacketSource {
        if let source { return source }
        guard let connection else { throw AnalysisError.message("internal: the packet table has no connection") }
        let s = try PacketSource(connection: connection, schema: schema)
        source = s
        return s
    }

    func bestIndex(_ info: UnsafeMutablePointer<sqlite3_index_info>) {
        let id = PacketColumn.id.rawValue - 1
        if let i = VirtualTables.constraint(info, column: id) ?? VirtualTables.constraint(info, column: -1) {
            VirtualTables.use(info, i)
            info.pointee.idxNum = 1
            info.pointee.estimatedCost = 1
            info.pointee.estimatedRows = 1
            info.pointee.idxFlags = SQLITE_INDEX_SCAN_UNIQUE
        } else {
            info.pointee.idxNum = 0
            info.pointee.estimatedCost = 100_000
            info.pointee.estimatedRows = 100_000
            if VirtualTables.ordered(info, by: [id]) { info.pointee.orderByConsumed = 1 }
        }
    }

    func cursor() -> VirtualCursor { Cursor(table: self) }

    final class Cursor: VirtualCursor {
        let table: PacketTable
        var id: Int64 = 0
        var last: Int64 = 0
        var segment: PacketSource.Segment?
        var slot = 0

        init(table: PacketTable) { self.table = table }

        func filter(plan: Int32, value: OpaquePointer?) throws {
            let source = try table.packets()
            if plan == 1 {
                let wanted = VirtualTables.integer(value) ?? 0
                id = wanted
                last = wanted
            } else {
                id = 1
                last = source.total
            }
            try load()
        }

        func next() throws {
            id += 1
            try load()
        }

        private func load() throws {
            segment = nil
            let source = try table.packets()
            while id >= 1 && id <= last {
                if let (s, i) = try source.locate(id) {
                    segment = s
                    slot = i
                    return
                }
                id += 1
            }
        }

        var eof: Bool { segment == nil }
        var rowid: Int64 { id }

        func column(_ i: Int32, _ ctx: OpaquePointer) {
            guard let s = segment, let source = table.source, let column = PacketColumn(rawValue: i + 1) else {
                sqlite3_result_null(ctx)
                return
            }
            switch column {
            case .parent_id:
                if let p = source.parents[id] { sqlite3_result_int64(ctx, p) } else { sqlite3_result_null(ctx) }
            case .clone_inferred:
                if source.parents[id] != nil { sqlite3_result_int64(ctx, 1) } else { sqlite3_result_null(ctx) }
            case .records:
                let a = Int(s.offsets[slot]), b = Int(s.offsets[slot + 1])
                guard a <= b, b <= s.numbers.count else { sqlite3_result_null(ctx); return }
                s.numbers[a..<b].withUnsafeBytes { sqlite3_result_blob(ctx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT_VALUE) }
            default:
                let k = source.slotOf[Int(column.rawValue)]
                let v = s.value(slot, k)
                if v == PacketSegment.null {
                    sqlite3_result_null(ctx)
                } else if PacketSegment.textColumns.contains(column) {
                    if let t = source.string(s, v) { EventValues.text(ctx, t) } else { sqlite3_result_null(ctx) }
                } else {
                    sqlite3_result_int64(ctx, v)
                }
            }
        }
    }
}
