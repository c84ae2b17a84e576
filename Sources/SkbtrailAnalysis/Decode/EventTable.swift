import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// The `ev` virtual table (module `skbtrail_events`): one row per record, in time order, with the columns
/// of `EventColumn`, served by an `EventSource` from the chunks of the analysis database. Ways in:
/// by `id`, by `packet_id` (a packet's steps, in order), by `probe_name` (`=`, `IN` or `LIKE`), or every
/// record in time order.
final class EventTable: VirtualTable {
    static let moduleName = "skbtrail_events"

    enum Plan: Int32 {
        /// Every record, in time (id) order.
        case scan = 0
        /// The record with one id.
        case id = 1
        /// A packet's records, in step order.
        case packet = 2
        /// The records of one probe name, in id order.
        case name = 3
        /// The records whose probe name matches a LIKE pattern, in id order. SQLite still checks the
        /// pattern on each row (the constraint is not omitted), so `PRAGMA case_sensitive_like` and a
        /// pattern this plan does not take (not text) stay SQLite's to decide.
        case like = 4
    }

    private let connection: OpaquePointer
    private let schema: String
    private var source: EventSource?

    init(connection: OpaquePointer, schema: String) {
        self.connection = connection
        self.schema = schema
    }

    /// The records, read on first use (the schema is complete by then).
    func events() throws -> EventSource {
        if let source { return source }
        let s = try EventSource(connection: connection, schema: schema)
        source = s
        return s
    }

    /// Makes the module known to `db` (every connection that reads an analysis database).
    static func register(_ db: Database) throws {
        try VirtualTables.register(moduleName, Module(), on: db)
    }

    static func register(connection: OpaquePointer) throws {
        try VirtualTables.register(moduleName, Module(), connection: connection)
    }

    /// The module: its columns, and a table for each schema that declares one.
    final class Module: VirtualTableKind {
        private static let columns = "CREATE TABLE x(" + EventColumn.allCases.map { $0 == .data ? "data HIDDEN" : String(describing: $0) }.joined(separator: ", ") + ")"
        override var declaration: String { Module.columns }
        override func table(connection: OpaquePointer, schema: String) -> VirtualTable {
            EventTable(connection: connection, schema: schema)
        }
    }

    override func bestIndex(_ info: UnsafeMutablePointer<sqlite3_index_info>) {
        func col(_ c: EventColumn) -> Int32 { c.rawValue - 1 }
        var plan = Plan.scan
        if let i = VirtualTables.constraint(info, column: col(.id)) {
            plan = .id
            VirtualTables.use(info, i)
            info.pointee.estimatedCost = 1
            info.pointee.estimatedRows = 1
            info.pointee.idxFlags = SQLITE_INDEX_SCAN_UNIQUE
        } else if let i = VirtualTables.constraint(info, column: col(.packet_id)) {
            plan = .packet
            VirtualTables.use(info, i)
            info.pointee.estimatedCost = 20
            info.pointee.estimatedRows = 10
            if VirtualTables.ordered(info, by: [col(.packet_id), col(.step)]) { info.pointee.orderByConsumed = 1 }
        } else if let i = VirtualTables.constraint(info, column: col(.probe_name)) {
            plan = .name
            VirtualTables.use(info, i)
            info.pointee.estimatedCost = 50_000
            info.pointee.estimatedRows = 20_000
            if VirtualTables.ordered(info, by: [col(.id)]) { info.pointee.orderByConsumed = 1 }
        } else if let i = VirtualTables.constraint(info, column: col(.probe_name), op: SQLITE_INDEX_CONSTRAINT_LIKE) {
            // only `x LIKE y` reaches here: SQLite does not offer LIKE with an ESCAPE to a virtual table
            plan = .like
            VirtualTables.use(info, i, omit: false)
            info.pointee.estimatedCost = 100_000
            info.pointee.estimatedRows = 50_000
            if VirtualTables.ordered(info, by: [col(.id)]) { info.pointee.orderByConsumed = 1 }
        } else {
            info.pointee.estimatedCost = 1_000_000
            info.pointee.estimatedRows = 1_000_000
            if VirtualTables.ordered(info, by: [col(.id)]) { info.pointee.orderByConsumed = 1 }
        }
        info.pointee.idxNum = plan.rawValue
    }

    override func cursor() -> VirtualCursor { Cursor(table: self) }

    final class Cursor: VirtualCursor {
        let table: EventTable
        var plan = Plan.scan
        /// Record numbers (or, with `listIsIDs`, event ids) to visit; a scan visits ids 1 ... total.
        var list: [UInt32] = []
        var listIsIDs = false
        var position = 0
        var end = 0
        /// The current record.
        var chunk: EventSource.Chunk?
        var index = 0

        init(table: EventTable) { self.table = table }

        override func filter(plan raw: Int32, value: OpaquePointer?) throws {
            let source = try table.events()
            plan = Plan(rawValue: raw) ?? .scan
            position = 0
            list = []
            listIsIDs = false
            switch plan {
            case .scan:
                end = source.total
            case .id:
                if let id = VirtualTables.integer(value), id >= 1, id <= Int64(UInt32.max) { list = [UInt32(id)] }
                listIsIDs = true
                end = list.count
            case .packet:
                if let id = VirtualTables.integer(value) { list = try source.packetRecords(id) }
                end = list.count
            case .name:
                if let name = VirtualTables.text(value) { list = try source.ids(named: name) }
                listIsIDs = true
                end = list.count
            case .like:
                if let pattern = likePattern(value) {
                    list = try source.ids(like: pattern)
                    listIsIDs = true
                    end = list.count
                } else if let value, sqlite3_value_type(value) == SQLITE_NULL {
                    end = 0  // LIKE NULL matches nothing
                } else {
                    plan = .scan  // SQLite's like() decides on every record
                    end = source.total
                }
            }
            try load()
        }

        /// The pattern of a LIKE constraint, when this plan can match it as SQLite would: text, valid
        /// UTF-8, and not so long that SQLite's like() refuses it (that error stays SQLite's to raise).
        private func likePattern(_ value: OpaquePointer?) -> LikePattern? {
            guard let value, sqlite3_value_type(value) == SQLITE_TEXT, let t = sqlite3_value_text(value) else { return nil }
            guard sqlite3_value_bytes(value) <= sqlite3_limit(table.connection, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, -1) else { return nil }
            let text = UnsafeRawPointer(t).assumingMemoryBound(to: CChar.self)
            return String(validatingCString: text).map(LikePattern.init)
        }

        override func next() throws {
            position += 1
            try load()
        }

        /// Moves to the record at `position` (or past the end); a record that cannot be found is skipped.
        private func load() throws {
            chunk = nil
            let source = try table.events()
            while position < end {
                let number: Int?
                if plan == .scan {
                    number = try source.recordNumber(id: Int64(position + 1))
                } else if listIsIDs {
                    number = try source.recordNumber(id: Int64(list[position]))
                } else {
                    number = Int(list[position])
                }
                if let number, let (c, i) = try source.locate(number) {
                    chunk = c
                    index = i
                    return
                }
                position += 1
            }
        }

        override var eof: Bool { chunk == nil }
        override var rowid: Int64 { chunk.map { Int64($0.ids[index]) } ?? 0 }

        override func column(_ i: Int32, _ ctx: OpaquePointer) {
            guard let chunk, let column = EventColumn(rawValue: i + 1), let source = table.source else {
                sqlite3_result_null(ctx)
                return
            }
            EventValues.result(column, chunk: chunk, index: index, source: source, into: ctx)
        }
    }
}
