import Foundation
import GRDB
import SkbtrailBundle
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The analysis schema (schema/analysis, schema/findings), embedded at build time.
enum AnalysisSchema {
    typealias File = (path: String, sql: String)

    private static func files(_ prefix: String) -> [File] {
        EmbeddedAnalysisSchema.files.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
            .map { (path: $0.key, sql: $0.value) }
    }

    /// Tables, views and the knowledge bases of an analysis database, created before the decode writes.
    static var tables: [File] { files("analysis/").filter { !$0.path.hasSuffix("indexes.sql") } }
    /// Indexes, created after the decode's bulk insert (faster than maintaining them row by row).
    static var indexes: [File] { files("analysis/").filter { $0.path.hasSuffix("indexes.sql") } }
    /// The tables of a findings file.
    static var findingTables: [File] { files("findings/").filter { !$0.path.hasSuffix("views.sql") } }
    /// The `finding` and `rule` views, made on a reader's connection with the findings attached.
    static var findingViews: [File] { files("findings/").filter { $0.path.hasSuffix("views.sql") } }

    /// Registers the virtual tables `ev` and `pkt` are made of: every connection to an analysis
    /// database needs them before its first query.
    static func registerTables(_ db: Database) throws {
        try EventTable.register(db)
        try PacketTable.register(db)
        if let c = db.sqliteConnection { NetworkFunction.register(connection: c) }
    }

    static func registerTables(connection: OpaquePointer) throws {
        try EventTable.register(connection: connection)
        try PacketTable.register(connection: connection)
        NetworkFunction.register(connection: connection)
    }

    /// Connects the virtual tables of `schema` now, before a sandbox is set: SQLite connects one on its
    /// first use, and its declaration would then look to the sandbox like a change of the schema.
    static func connectTables(_ c: RawConnection, schema: String = "main") throws {
        try c.execute("SELECT 1 FROM \(schema).ev WHERE 0; SELECT 1 FROM \(schema).pkt WHERE 0")
    }
}

/// The one owner of a bundle's analysis database: it opens the bundle (read-only), finds or builds the
/// decode in the cache, builds the findings of a rule set, and gives read-only access to both.
///
/// The cache holds, per bundle content, an analysis database (`KEY.skba`, the decode) and per rule set a
/// findings file (`KEY-findings-RULES.skbf`). Each is written whole into a temporary file under a lock
/// (`KEY.lock`) and renamed into place, and never changed after: any number of readers, in any number
/// of processes, read them at once without locks, and a second process waiting on the lock finds the
/// work done. The key covers the bundle's content (every metadata row and every chunk's bytes) and the
/// analyzer's own decoding (a build-time hash of its sources and schema); the findings key adds the
/// rules' texts. The cache lives in `$SKBTRAIL_CACHE_DIR`, `$XDG_CACHE_HOME/skbtrail` or
/// `~/.cache/skbtrail`; where it cannot be written, a temporary directory serves and goes with this object.
public final class AnalysisDatabase {
    /// Where the analysis database lives.
    public enum CacheMode: Sendable {
        /// The user's cache directory (see above).
        case auto
        /// A temporary directory removed when the `AnalysisDatabase` goes away.
        case none
        /// This directory.
        case directory(String)
    }

    public let bundle: BundleReader
    /// The analysis database file.
    public let path: String
    /// Read-only: the analysis database as `main`, and once findings were asked for, the findings file
    /// as `findings` with the `finding` and `rule` views.
    public let reader: DatabaseQueue
    /// Counts of the decode this open did; nil when the cache answered.
    public let decodeStats: Decoder.Stats?
    /// What the decode found damaged in the bundle and left out (chunks, rows, values), a sentence each.
    public let damage: [String]
    /// The cache key's file stem (bundle uuid and content hash).
    let stem: String
    private let key: String
    private var directory: String
    /// A directory of this object's own (no cache, or an unwritable one), removed with it.
    private var temporaryDirectory: String?
    /// The findings file attached to `reader`, if any.
    private(set) var attachedFindings: String?

    /// Opens `bundlePath`, decoding it unless the cache holds a decode of the same content.
    public init(bundlePath: String, cache: CacheMode = .auto, progress: ProgressBar? = ProgressBar()) throws {
        bundle = try BundleReader(path: bundlePath)
        var content = try bundle.contentHash()
        content.add(EmbeddedDecoderHash.value)
        key = "\(bundle.recording.uuid)|\(content.hex)"
        let uuid = bundle.recording.uuid.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        stem = "\(uuid.isEmpty ? "bundle" : uuid)-\(content.hex)"
        switch cache {
        case .none: directory = ""
        case .directory(let dir): directory = dir
        case .auto: directory = AnalysisDatabase.defaultCacheDirectory()
        }
        if directory.isEmpty || (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) == nil {
            // no cache, or an unwritable one: the analysis should still run
            directory = ""
        }
        // Swift runs no deinit for an init that throws: a temporary directory goes here then.
        var opened = false
        var temporary: String?
        defer { if !opened, let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        if directory.isEmpty {
            temporary = try AnalysisDatabase.makeTemporaryDirectory()
            directory = temporary ?? ""
        }
        var path = (directory as NSString).appendingPathComponent("\(stem).skba")
        var stats: Decoder.Stats?
        if !AnalysisDatabase.isComplete(path, key: key) {
            var lock = CacheLock(directory: directory, stem: stem)
            if lock == nil && temporary == nil {
                // a cache we may read but not write (another user's, a read-only medium)
                temporary = try AnalysisDatabase.makeTemporaryDirectory()
                directory = temporary ?? ""
                path = (directory as NSString).appendingPathComponent("\(stem).skba")
                lock = CacheLock(directory: directory, stem: stem)
            }
            defer { lock?.release() }
            // another process may have built it while this one waited for the lock
            if !AnalysisDatabase.isComplete(path, key: key) {
                let reader = bundle, progress = progress, key = key
                stats = try AnalysisDatabase.build(path) { db in
                    let stats = try Decoder(reader: reader, progress: progress).decode(into: db)
                    try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('cache_key', ?), ('complete', '1')", arguments: [key])
                    return stats
                }
            }
        }
        self.path = path
        temporaryDirectory = temporary
        decodeStats = stats
        reader = try AnalysisDatabase.openReader(path)
        let noted = try? reader.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'damage'") }
        damage = (noted ?? nil).map { $0.split(separator: "\n").map(String.init) } ?? []
        opened = true
    }

    deinit {
        try? reader.close()
        if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
    }

    // MARK: findings

    /// Runs the diagnosis rules (the built-in ones plus those of `userDirectory`) unless this rule set's
    /// findings are in the cache, and attaches them to `reader` (the `finding` and `rule` views).
    @discardableResult
    public func diagnose(userRules userDirectory: String? = nil, limits: QueryLimits = .defaults) throws -> Diagnosis {
        let (rules, loadErrors) = try DiagnosisRule.all(userDirectory: userDirectory)
        var rulesHash = Hash64()
        rulesHash.add(key)
        for r in rules { rulesHash.add(r.source); rulesHash.add(r.sql) }
        let findingsKey = rulesHash.hex
        var findingsPath = findingsFile(findingsKey, in: directory)
        if !AnalysisDatabase.isComplete(findingsPath, key: findingsKey) {
            var lock = CacheLock(directory: directory, stem: stem)
            if lock == nil {
                let own = try temporaryDirectory ?? AnalysisDatabase.makeTemporaryDirectory()
                temporaryDirectory = own
                findingsPath = findingsFile(findingsKey, in: own)
                lock = CacheLock(directory: own, stem: stem)
            }
            defer { lock?.release() }
            if !AnalysisDatabase.isComplete(findingsPath, key: findingsKey) {
                try buildFindings(findingsPath, key: findingsKey, rules: rules, limits: limits)
            }
        }
        try attach(findings: findingsPath)
        let runErrors = try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT source, error FROM findings.diag_rule WHERE error IS NOT NULL ORDER BY rowid")
                .map { RuleError(stored: $0["error"]) }
        }
        return Diagnosis(rules: rules, errors: loadErrors + runErrors)
    }

    /// Runs `rules` into a new findings file at `path`, written whole into a temporary file and renamed.
    private func buildFindings(_ target: String, key findingsKey: String, rules: [DiagnosisRule], limits: QueryLimits) throws {
        let partial = target + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            let c = try RawConnection(creating: partial)
            try AnalysisSchema.registerTables(connection: c.handle)
            // each statement its own transaction: a rule stopped at its time limit takes back its own
            // findings only (SQLite rolls back the whole transaction of an interrupted statement)
            try c.execute("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF")
            try c.execute("ATTACH DATABASE '\(path.replacingOccurrences(of: "'", with: "''"))' AS analysis")
            try AnalysisSchema.connectTables(c, schema: "analysis")
            for f in AnalysisSchema.findingTables { try c.execute(f.sql) }
            try RuleEngine.run(rules, c, limits: limits)
            try c.execute("INSERT OR REPLACE INTO meta VALUES ('cache_key', '\(findingsKey)'), ('complete', '1')")
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        try? FileManager.default.removeItem(atPath: target)
        do {
            try FileManager.default.moveItem(atPath: partial, toPath: target)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw AnalysisError.analysisDatabase(path: target, why: error.localizedDescription)
        }
    }

    private func findingsFile(_ findingsKey: String, in dir: String) -> String {
        (dir as NSString).appendingPathComponent("\(stem)-findings-\(findingsKey).skbf")
    }

    /// Attaches a findings file as `findings` to the reader and makes the `finding` and `rule` views.
    private func attach(findings file: String) throws {
        guard attachedFindings != file else { return }
        try reader.inDatabase { db in
            try db.execute(sql: "PRAGMA query_only = 0")
            defer { try? db.execute(sql: "PRAGMA query_only = 1") }
            if attachedFindings != nil {
                try db.execute(sql: "DROP VIEW IF EXISTS temp.finding; DROP VIEW IF EXISTS temp.rule; DETACH DATABASE findings")
            }
            try db.execute(sql: "ATTACH DATABASE ? AS findings", arguments: [file])
            for f in AnalysisSchema.findingViews { try db.execute(sql: f.sql) }
        }
        attachedFindings = file
    }

    /// A connection of its own for SQL that users write (`skbtrail sql`): the analysis read-only, the
    /// findings attached as on `reader`, and a sandbox that lets the query read and nothing else.
    func userConnection(limits: QueryLimits) throws -> (RawConnection, Sandbox) {
        let c = try RawConnection(readOnly: path)
        try AnalysisSchema.registerTables(connection: c.handle)
        try AnalysisSchema.connectTables(c)
        if let attachedFindings {
            try c.execute("ATTACH DATABASE '\(attachedFindings.replacingOccurrences(of: "'", with: "''"))' AS findings")
            for f in AnalysisSchema.findingViews { try c.execute(f.sql) }
        }
        return (c, Sandbox(c.handle, limits: limits))
    }

    // MARK: files

    /// Builds a cache file: `body` fills a new database in a temporary file beside `path`, in one
    /// transaction, and the file is renamed into place only when it is complete.
    @discardableResult
    static func build<T>(_ path: String, _ body: (Database) throws -> T) throws -> T {
        let partial = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            let db = try DatabaseQueue(path: partial)
            try db.writeWithoutTransaction { db in
                try AnalysisSchema.registerTables(db)
                try db.execute(sql: "PRAGMA main.page_size = 65536")
                try db.execute(sql: "PRAGMA main.journal_mode = OFF")
                try db.execute(sql: "PRAGMA main.locking_mode = EXCLUSIVE")
                try db.execute(sql: "PRAGMA main.cache_size = -65536")
                try db.execute(sql: "PRAGMA main.synchronous = OFF")
            }
            let result = try db.write { try body($0) }
            try db.close()
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: partial, toPath: path)
            return result
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            if error is AnalysisError || error is BundleError { throw error }
            throw AnalysisError.analysisDatabase(path: path, why: "\(error)")
        }
    }

    /// Whether `path` is a complete cache file of `key`.
    static func isComplete(_ path: String, key: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path), let db = try? openReader(path) else { return false }
        defer { try? db.close() }
        let values = try? db.read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key IN ('cache_key', 'complete')")
        }
        var found: [String: String] = [:]
        for row in values ?? [] { found[row["key"]] = row["value"] }
        return found["cache_key"] == key && found["complete"] == "1"
    }

    /// A read-only connection (`PRAGMA query_only` too: nothing run through it changes a file).
    static func openReader(_ path: String) throws -> DatabaseQueue {
        var config = Configuration()
        config.readonly = true
        config.prepareDatabase { db in
            try AnalysisSchema.registerTables(db)
            try db.execute(sql: "PRAGMA query_only = 1")
        }
        do {
            return try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw AnalysisError.analysisDatabase(path: path, why: "\(error)")
        }
    }

    /// The cache directory the environment names.
    public static func defaultCacheDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SKBTRAIL_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return (xdg as NSString).appendingPathComponent("skbtrail") }
        let home = env["HOME"] ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/skbtrail")
    }

    /// A new directory `skbtrail-PID-UUID` in $TMPDIR. Those of processes that are gone (a crash, a
    /// kill -9) are removed first.
    static func makeTemporaryDirectory() throws -> String {
        let tmp = NSTemporaryDirectory()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] where name.hasPrefix("skbtrail-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[1]), pid > 0, kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: (tmp as NSString).appendingPathComponent(name))
        }
        let dir = (tmp as NSString).appendingPathComponent("skbtrail-\(getpid())-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw AnalysisError.analysisDatabase(path: dir, why: "\(error)")
        }
        return dir
    }
}

/// An exclusive lock on one bundle's entries in a cache directory (`flock` on `STEM.lock`), so that
/// only one process builds them. Nil where the lock file cannot be made (the directory is not ours).
struct CacheLock {
    private var fd: Int32

    init?(directory: String, stem: String) {
        let path = (directory as NSString).appendingPathComponent("\(stem).lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { close(fd); return nil }
        }
    }

    mutating func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }
}
