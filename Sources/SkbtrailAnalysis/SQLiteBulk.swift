import Foundation
import GRDB
import GRDBSQLite

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A prepared INSERT bound through the SQLite C API: GRDB's argument arrays cost too much per row
/// when a decode writes millions of them.
final class BulkInsert {
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer?
    private var index: Int32 = 0

    init(_ db: Database, _ sql: String) throws {
        statement = try db.makeStatement(sql: sql)
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
    }

    @inline(__always) func int(_ v: Int64) { index += 1; sqlite3_bind_int64(handle, index, v) }
    @inline(__always) func int(_ v: Int) { int(Int64(v)) }
    @inline(__always) func int(_ v: UInt64) { int(Int64(bitPattern: v)) }
    @inline(__always) func int(_ v: UInt32) { int(Int64(v)) }
    @inline(__always) func optInt(_ v: Int64?) {
        if let v { int(v) } else { null() }
    }
    @inline(__always) func null() { index += 1; sqlite3_bind_null(handle, index) }
    @inline(__always) func text(_ v: String) {
        index += 1
        var s = v
        s.withUTF8 { buf in
            _ = buf.withMemoryRebound(to: CChar.self) { c in
                sqlite3_bind_text(handle, index, c.baseAddress, Int32(c.count), transient)
            }
        }
    }
    @inline(__always) func optText(_ v: String?) {
        if let v { text(v) } else { null() }
    }
    /// Text, or NULL when empty.
    @inline(__always) func textOrNull(_ v: String) {
        if v.isEmpty { null() } else { text(v) }
    }

    /// Runs the statement with the values bound since the last run.
    func run() throws {
        let rc = sqlite3_step(handle)
        index = 0
        sqlite3_reset(handle)
        guard rc == SQLITE_DONE else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            throw AnalysisError.message("writing the analysis database failed: \(message)")
        }
    }
}
