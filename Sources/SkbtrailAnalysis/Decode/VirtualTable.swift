import Foundation
import GRDB
import GRDBSQLite

/// A read-only SQLite virtual table written in Swift: the analysis database serves its records (`ev`)
/// and packets (`pkt`) this way, from compact blobs, instead of a row per record or packet.
/// (Classes, not protocols: the C callbacks run per row and column, and a cast to a protocol costs a
/// dynamic conformance lookup each time.)
class VirtualTableKind {
    /// `CREATE TABLE x(...)`: the columns.
    var declaration: String { "" }
    /// A table of this kind in `schema` of `connection`.
    func table(connection: OpaquePointer, schema: String) -> VirtualTable { fatalError("abstract") }
}

class VirtualTable {
    /// Chooses a plan (`info.idxNum`) for the constraints and order SQLite offers.
    func bestIndex(_ info: UnsafeMutablePointer<sqlite3_index_info>) {}
    func cursor() -> VirtualCursor { fatalError("abstract") }
}

class VirtualCursor {
    /// Starts plan `plan` with the constraint value `value` (nil when the plan has none).
    func filter(plan: Int32, value: OpaquePointer?) throws {}
    func next() throws {}
    var eof: Bool { true }
    var rowid: Int64 { 0 }
    /// Sets column `column` of the current row as the result of `ctx`.
    func column(_ column: Int32, _ ctx: OpaquePointer) {}
}

/// Registration and the C callbacks shared by every kind. A table (cursor) is SQLite's struct followed
/// by a pointer to the Swift object.
enum VirtualTables {
    /// Makes the module `name` known to `db` (once per connection).
    static func register(_ name: String, _ kind: VirtualTableKind, on db: Database) throws {
        guard let connection = db.sqliteConnection else { return }
        try register(name, kind, connection: connection)
    }

    static func register(_ name: String, _ kind: VirtualTableKind, connection: OpaquePointer) throws {
        let aux = Unmanaged.passRetained(kind).toOpaque()
        let rc = withUnsafePointer(to: &module) { m in
            sqlite3_create_module_v2(connection, name, m, aux) { p in
                if let p { Unmanaged<VirtualTableKind>.fromOpaque(p).release() }
            }
        }
        guard rc == SQLITE_OK else {
            throw AnalysisError.message("cannot register the virtual table \(name): \(String(cString: sqlite3_errmsg(connection)))")
        }
    }

    private static let tableSize = MemoryLayout<sqlite3_vtab>.stride
    private static let cursorSize = MemoryLayout<sqlite3_vtab_cursor>.stride

    private static func allocate(_ size: Int, holding object: AnyObject) -> UnsafeMutableRawPointer {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size + MemoryLayout<UnsafeMutableRawPointer>.stride, alignment: 16)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.advanced(by: size).storeBytes(of: Unmanaged.passRetained(object).toOpaque(), as: UnsafeMutableRawPointer.self)
        return raw
    }

    private static func free(_ raw: UnsafeMutableRawPointer, after size: Int) {
        Unmanaged<AnyObject>.fromOpaque(raw.advanced(by: size).load(as: UnsafeMutableRawPointer.self)).release()
        raw.deallocate()
    }

    private static func table(_ p: UnsafeMutablePointer<sqlite3_vtab>) -> VirtualTable {
        Unmanaged<VirtualTable>.fromOpaque(UnsafeMutableRawPointer(p).advanced(by: tableSize).load(as: UnsafeMutableRawPointer.self))
            .takeUnretainedValue()
    }

    private static func cursor(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>) -> VirtualCursor {
        Unmanaged<VirtualCursor>.fromOpaque(UnsafeMutableRawPointer(p).advanced(by: cursorSize).load(as: UnsafeMutableRawPointer.self))
            .takeUnretainedValue()
    }

    /// Reports `error` through the table's message (SQLite frees it) and returns SQLITE_ERROR.
    private static func fail(_ vtab: UnsafeMutablePointer<sqlite3_vtab>?, _ error: Error) -> Int32 {
        guard let vtab else { return SQLITE_ERROR }
        sqlite3_free(vtab.pointee.zErrMsg)
        vtab.pointee.zErrMsg = nil
        let bytes = Array(AnalysisError.describe(error).utf8) + [0]
        if let copy = sqlite3_malloc(Int32(bytes.count)) {
            bytes.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            vtab.pointee.zErrMsg = copy.assumingMemoryBound(to: CChar.self)
        }
        return SQLITE_ERROR
    }

    nonisolated(unsafe) private static var module: sqlite3_module = {
        var m = sqlite3_module()
        m.iVersion = 1
        m.xCreate = connect
        m.xConnect = connect
        m.xBestIndex = { vtab, info in
            guard let vtab, let info else { return SQLITE_ERROR }
            table(vtab).bestIndex(info)
            return SQLITE_OK
        }
        m.xDisconnect = disconnect
        m.xDestroy = disconnect
        m.xOpen = { vtab, out in
            guard let vtab, let out else { return SQLITE_ERROR }
            let raw = allocate(cursorSize, holding: table(vtab).cursor())
            out.pointee = raw.assumingMemoryBound(to: sqlite3_vtab_cursor.self)
            return SQLITE_OK
        }
        m.xClose = { cur in
            if let cur { free(UnsafeMutableRawPointer(cur), after: cursorSize) }
            return SQLITE_OK
        }
        m.xFilter = { cur, idxNum, _, argc, argv in
            guard let cur else { return SQLITE_ERROR }
            do {
                try cursor(cur).filter(plan: idxNum, value: argc >= 1 ? argv?[0] : nil)
                return SQLITE_OK
            } catch {
                return fail(cur.pointee.pVtab, error)
            }
        }
        m.xNext = { cur in
            guard let cur else { return SQLITE_ERROR }
            do {
                try cursor(cur).next()
                return SQLITE_OK
            } catch {
                return fail(cur.pointee.pVtab, error)
            }
        }
        m.xEof = { cur in
            guard let cur else { return 1 }
            return cursor(cur).eof ? 1 : 0
        }
        m.xColumn = { cur, ctx, i in
            guard let cur, let ctx else { return SQLITE_ERROR }
            cursor(cur).column(i, ctx)
            return SQLITE_OK
        }
        m.xRowid = { cur, out in
            guard let cur, let out else { return SQLITE_ERROR }
            out.pointee = cursor(cur).rowid
            return SQLITE_OK
        }
        return m
    }()

    private static let connect: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?,
                                                 UnsafeMutablePointer<UnsafeMutablePointer<sqlite3_vtab>?>?,
                                                 UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 = { db, aux, argc, argv, out, _ in
        guard let db, let aux, let out, let argv, argc >= 2, let schemaName = argv[1] else { return SQLITE_ERROR }
        let kind = Unmanaged<VirtualTableKind>.fromOpaque(aux).takeUnretainedValue()
        let rc = kind.declaration.withCString { sqlite3_declare_vtab(db, $0) }
        guard rc == SQLITE_OK else { return rc }
        let raw = allocate(tableSize, holding: kind.table(connection: db, schema: String(cString: schemaName)))
        out.pointee = raw.assumingMemoryBound(to: sqlite3_vtab.self)
        return SQLITE_OK
    }

    private static let disconnect: @convention(c) (UnsafeMutablePointer<sqlite3_vtab>?) -> Int32 = { vtab in
        guard let vtab else { return SQLITE_OK }
        sqlite3_free(vtab.pointee.zErrMsg)
        free(UnsafeMutableRawPointer(vtab), after: tableSize)
        return SQLITE_OK
    }

    // MARK: helpers for kinds

    /// The index of a usable constraint `op` on `column` (0-based), if SQLite offers one.
    static func constraint(_ info: UnsafeMutablePointer<sqlite3_index_info>, column: Int32, op: Int32 = SQLITE_INDEX_CONSTRAINT_EQ) -> Int? {
        let constraints = UnsafeBufferPointer(start: info.pointee.aConstraint, count: Int(info.pointee.nConstraint))
        return constraints.firstIndex { $0.usable != 0 && Int32($0.op) == op && $0.iColumn == column }
    }

    /// Whether the query's ORDER BY is a suffix of `columns` (0-based), all ascending.
    static func ordered(_ info: UnsafeMutablePointer<sqlite3_index_info>, by columns: [Int32]) -> Bool {
        let orderBy = UnsafeBufferPointer(start: info.pointee.aOrderBy, count: Int(info.pointee.nOrderBy))
        guard !orderBy.isEmpty, orderBy.count <= columns.count else { return false }
        return zip(orderBy, columns.suffix(orderBy.count)).allSatisfy { $0.desc == 0 && $0.iColumn == $1 }
    }

    /// Uses constraint `i` as the filter's value, and tells SQLite whether it need not check it again.
    static func use(_ info: UnsafeMutablePointer<sqlite3_index_info>, _ i: Int, omit: Bool = true) {
        info.pointee.aConstraintUsage[i].argvIndex = 1
        info.pointee.aConstraintUsage[i].omit = omit ? 1 : 0
    }

    /// An integer argument, clamped to `range`, or nil when it is not an integer.
    static func integer(_ value: OpaquePointer?) -> Int64? {
        guard let value, sqlite3_value_numeric_type(value) == SQLITE_INTEGER else { return nil }
        return sqlite3_value_int64(value)
    }

    /// A text argument.
    static func text(_ value: OpaquePointer?) -> String? {
        guard let value, sqlite3_value_type(value) == SQLITE_TEXT, let t = sqlite3_value_text(value) else { return nil }
        return String(cString: t)
    }
}
