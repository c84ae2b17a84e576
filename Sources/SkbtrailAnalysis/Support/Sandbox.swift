import Foundation
import GRDB
import GRDBSQLite

/// Limits for SQL that users write (`skbtrail sql`, rule files): how long one statement may run and how
/// much memory SQLite may use for it.
public struct QueryLimits: Sendable {
    /// Seconds a statement may run; 0 for no limit.
    public var seconds: Double
    /// Bytes SQLite may allocate in all while it runs; 0 for no limit.
    public var memory: Int64
    /// The longest string or blob a statement may make.
    public var length: Int32 = 100 << 20

    public init(seconds: Double = 300, memory: Int64 = 2 << 30) {
        self.seconds = seconds
        self.memory = memory
    }

    public static let defaults = QueryLimits()
}

/// Runs SQL that users wrote in a sandbox: an authorizer that lets it read and call functions, and
/// nothing else (no writes, no ATTACH, no PRAGMA that sets anything, no fts3_tokenizer or
/// load_extension), a time limit and Ctrl-C through SQLite's progress handler, a length limit per
/// value and a memory limit. Set on a connection around the preparation and run of the user's statement.
public final class Sandbox {
    /// What the statement being prepared may do besides reading.
    enum Mode {
        /// Read only (`skbtrail sql`).
        case read
        /// Read, and insert into the findings tables (a rule wrapped by the engine).
        case rule
    }

    /// The signal (SIGINT, SIGTERM or SIGHUP) that asked to stop, else 0: running statements stop at
    /// their next progress check, decodes at the next chunk, reports at the next packet.
    nonisolated(unsafe) public static var interrupted: Int32 = 0

    /// Catches SIGINT, SIGTERM and SIGHUP into `interrupted` (the analyzer's commands call it once), so
    /// that a stopped command unwinds and removes what it made.
    public static func catchInterrupt() {
        for s in [SIGINT, SIGTERM, SIGHUP] { signal(s) { Sandbox.interrupted = $0 } }
    }

    /// How the stop was asked for, for messages: "Ctrl-C" or the signal's name.
    public static var interruptName: String {
        switch interrupted {
        case SIGINT: return "Ctrl-C"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(interrupted)"
        }
    }

    /// Throws when a stop was asked for: the loops of long work call it at each step.
    public static func checkInterrupt(_ what: String) throws {
        if interrupted != 0 { throw AnalysisError.message("\(what) stopped: interrupted (\(interruptName))") }
    }

    static let readPragmas: Set<String> = [
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
        "database_list", "collation_list", "function_list", "module_list", "pragma_list", "compile_options",
        "user_version", "application_id", "schema_version", "data_version", "page_size", "page_count",
        "freelist_count", "encoding",
    ]
    static let deniedFunctions: Set<String> = ["fts3_tokenizer", "load_extension", "readfile", "writefile", "edit", "fts5_source_id"]

    var mode = Mode.read
    /// Why the authorizer refused, for the message.
    var refusal: String?
    private var deadline: Date?
    private var timedOut = false
    let limits: QueryLimits
    private let connection: OpaquePointer

    init(_ connection: OpaquePointer, limits: QueryLimits) {
        self.connection = connection
        self.limits = limits
    }

    /// Authorizes what a statement prepared within `body` does; other statements are not checked.
    func preparing<T>(_ mode: Mode, _ body: () throws -> T) rethrows -> T {
        self.mode = mode
        refusal = nil
        let me = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_set_authorizer(connection, { me, action, a, b, c, _ in
            guard let me else { return SQLITE_DENY }
            return Unmanaged<Sandbox>.fromOpaque(me).takeUnretainedValue().authorize(action, a, b, c)
        }, me)
        defer { sqlite3_set_authorizer(connection, nil, nil) }
        return try body()
    }

    private func authorize(_ action: Int32, _ a: UnsafePointer<CChar>?, _ b: UnsafePointer<CChar>?, _ c: UnsafePointer<CChar>?) -> Int32 {
        func name(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        switch action {
        case SQLITE_SELECT, SQLITE_READ, SQLITE_RECURSIVE:
            return SQLITE_OK
        case SQLITE_FUNCTION:
            let f = name(b).lowercased()
            if Sandbox.deniedFunctions.contains(f) { refusal = "the function \(f) is not allowed"; return SQLITE_DENY }
            return SQLITE_OK
        case SQLITE_PRAGMA:
            let p = name(a).lowercased()
            let isInfo = ["table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"].contains(p)
            if Sandbox.readPragmas.contains(p) && (b == nil || isInfo) { return SQLITE_OK }
            refusal = "PRAGMA \(p)\(b == nil ? "" : " = \(name(b))") is not allowed (only PRAGMAs that read, such as table_info)"
            return SQLITE_DENY
        case SQLITE_INSERT where mode == .rule && (name(a) == "diag_finding" || name(a) == "diag_rule"):
            return SQLITE_OK
        case SQLITE_UPDATE where mode == .rule && name(a) == "diag_finding":
            return SQLITE_OK
        case SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE:
            refusal = "it would change the table \(name(a))"
            return SQLITE_DENY
        case SQLITE_ATTACH, SQLITE_DETACH:
            refusal = "ATTACH and DETACH are not allowed"
            return SQLITE_DENY
        case SQLITE_TRANSACTION, SQLITE_SAVEPOINT:
            refusal = "transactions are not allowed"
            return SQLITE_DENY
        default:
            refusal = "it would change the database"
            return SQLITE_DENY
        }
    }

    /// Runs `body` (the steps of a statement) under the limits; a limit that is hit is an error that names it.
    func running<T>(_ what: String, _ body: () throws -> T) throws -> T {
        deadline = limits.seconds > 0 ? Date().addingTimeInterval(limits.seconds) : nil
        timedOut = false
        let me = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_progress_handler(connection, 20_000, { me in
            guard let me else { return 0 }
            let s = Unmanaged<Sandbox>.fromOpaque(me).takeUnretainedValue()
            if Sandbox.interrupted != 0 { return 1 }
            if let d = s.deadline, Date() > d { s.timedOut = true; return 1 }
            return 0
        }, me)
        let oldLength = sqlite3_limit(connection, SQLITE_LIMIT_LENGTH, limits.length)
        let oldHeap = limits.memory > 0 ? sqlite3_hard_heap_limit64(limits.memory) : -1
        defer {
            sqlite3_progress_handler(connection, 0, nil, nil)
            sqlite3_limit(connection, SQLITE_LIMIT_LENGTH, oldLength)
            if oldHeap >= 0 { _ = sqlite3_hard_heap_limit64(oldHeap) }
        }
        do {
            return try body()
        } catch {
            throw explain(error, what)
        }
    }

    /// The error of a statement in words: a limit, an interrupt, a refusal, or SQLite's message.
    func explain(_ error: Error, _ what: String) -> Error {
        let message = "\(error)"
        if Sandbox.interrupted != 0 { return AnalysisError.message("\(what) stopped: interrupted (\(Sandbox.interruptName))") }
        if timedOut {
            return AnalysisError.message("\(what) ran longer than \(QueryLimits.text(seconds: limits.seconds)) and was stopped: give --timeout more time, or a narrower query")
        }
        if message.contains("out of memory") || message.contains("NOMEM") {
            return AnalysisError.message("\(what) needed more than \(limits.memory >> 20) MiB and was stopped: give --memory more, or a narrower query")
        }
        if message.contains("too big") {
            return AnalysisError.message("\(what) made a value longer than \(limits.length >> 20) MiB and was stopped")
        }
        return error
    }
}

extension QueryLimits {
    static func text(seconds: Double) -> String {
        seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
    }
}
