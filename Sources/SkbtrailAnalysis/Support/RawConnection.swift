import Foundation
import GRDBSQLite

/// An SQLite connection that GRDB does not manage, for SQL that users write: a sandbox's authorizer can
/// stay set on it, where GRDB keeps its own on the connections it manages.
final class RawConnection {
    let handle: OpaquePointer

    /// Opens `path` read-only.
    convenience init(readOnly path: String) throws {
        try self.init(path, flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)
    }

    /// Creates `path` (which must not exist) for writing: a cache file being built.
    convenience init(creating path: String) throws {
        try self.init(path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX)
    }

    private init(_ path: String, flags: Int32) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let why = db.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            sqlite3_close(db)
            throw AnalysisError.analysisDatabase(path: path, why: why)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs statements that return nothing (setup: ATTACH, temp views).
    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &error) == SQLITE_OK else {
            let why = error.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(error)
            throw AnalysisError.message("internal: \(why)")
        }
    }
}
