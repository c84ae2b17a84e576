import Foundation
import GRDB
import GRDBSQLite

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The columns of one table of the analysis database, in an enum: each case is a column by its SQL name,
/// numbered from 1 in declaration order (`case id = 1, ts, ...`). A `RowWriter` checks them against the
/// table, so a column added, removed or misspelled is an error at the first write, never a shifted value.
protocol TableColumns: CaseIterable, RawRepresentable where RawValue == Int32 {
    static var table: String { get }
}

/// An INSERT whose values are bound by column name, through the SQLite C API (GRDB's argument arrays
/// cost too much per row when a decode writes millions of them). A column left unbound in a row is NULL.
/// Every bind's return code is checked: the first failure is reported by `run()` with the column's name.
final class RowWriter<Column: TableColumns> {
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer?
    private var bindError: (code: Int32, column: Column)?

    /// Prepares `INSERT INTO table (every column) VALUES (...)` after checking that `Column` names exactly
    /// the table's columns, in declaration order numbered from 1.
    init(_ db: Database) throws {
        let names = Column.allCases.map { String(describing: $0) }
        for (i, c) in Column.allCases.enumerated() where Int(c.rawValue) != i + 1 {
            throw AnalysisError.message("internal: column \(names[i]) of \(Column.table) is numbered \(c.rawValue), not \(i + 1)")
        }
        let actual = try db.columns(in: Column.table).map(\.name)
        guard Set(actual) == Set(names), actual.count == names.count else {
            let missing = actual.filter { !names.contains($0) }, extra = names.filter { !actual.contains($0) }
            throw AnalysisError.message("internal: the writer of \(Column.table) does not match its schema (not written: \(missing.joined(separator: ", ")); not in the table: \(extra.joined(separator: ", ")))")
        }
        let sql = "INSERT INTO \(Column.table) (\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", ")))"
        statement = try db.makeStatement(sql: sql)
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        guard sqlite3_bind_parameter_count(handle) == Int32(names.count) else {
            throw AnalysisError.message("internal: the insert into \(Column.table) has \(sqlite3_bind_parameter_count(handle)) parameters for \(names.count) columns")
        }
    }

    @inline(__always) private func check(_ rc: Int32, _ column: Column) {
        if rc != SQLITE_OK && bindError == nil { bindError = (rc, column) }
    }

    @inline(__always) func int(_ column: Column, _ v: Int64) { check(sqlite3_bind_int64(handle, column.rawValue, v), column) }
    @inline(__always) func int(_ column: Column, _ v: Int) { int(column, Int64(v)) }
    @inline(__always) func int(_ column: Column, _ v: UInt64) { int(column, Int64(bitPattern: v)) }
    @inline(__always) func int(_ column: Column, _ v: UInt32) { int(column, Int64(v)) }
    @inline(__always) func int(_ column: Column, _ v: Int32) { int(column, Int64(v)) }
    @inline(__always) func int(_ column: Column, _ v: Int64?) { if let v { int(column, v) } }
    /// An integer, or NULL when it is 0.
    @inline(__always) func nonZero(_ column: Column, _ v: UInt32) { if v != 0 { int(column, Int64(v)) } }

    @inline(__always) func text(_ column: Column, _ v: String) {
        var s = v
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { c in
                check(sqlite3_bind_text(handle, column.rawValue, c.baseAddress, Int32(c.count), transient), column)
            }
        }
    }
    @inline(__always) func text(_ column: Column, _ v: String?) { if let v { text(column, v) } }
    /// Text, or NULL when empty.
    @inline(__always) func nonEmpty(_ column: Column, _ v: String) { if !v.isEmpty { text(column, v) } }

    /// Bytes (SQLite copies them before this returns).
    @inline(__always) func blob(_ column: Column, _ v: UnsafeRawBufferPointer) {
        // a zero-length blob, not NULL, for no bytes
        check(sqlite3_bind_blob(handle, column.rawValue, v.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(v.count), transient), column)
    }

    /// Inserts the row bound since the last run; every column is NULL again afterwards.
    func run() throws {
        let rc = sqlite3_step(handle)
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        if let bindError {
            self.bindError = nil
            throw AnalysisError.message("writing the analysis database failed: binding \(Column.table).\(bindError.column) returned \(bindError.code)")
        }
        guard rc == SQLITE_DONE else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            throw AnalysisError.message("writing the analysis database failed (\(Column.table)): \(message)")
        }
    }
}
