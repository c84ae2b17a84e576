import Foundation
import GRDB
import SkbtrailBundle

/// An analyzed bundle: the bundle (read-only) and its analysis database (read-only once built).
///
/// The analysis database is a cache keyed by the bundle's content (recording uuid, chunk count, last
/// chunk id, file size and the decoder version), kept under `$SKBTRAIL_CACHE_DIR`,
/// `$XDG_CACHE_HOME/skbtrail` or `~/.cache/skbtrail`; a later command on the same bundle reuses it.
public final class Analysis {
    /// Where the analysis database lives.
    public enum CacheMode: Sendable {
        /// The user's cache directory (see above).
        case auto
        /// A temporary file removed when the `Analysis` goes away.
        case none
        /// This directory.
        case directory(String)
    }

    public let bundle: BundleReader
    public let databasePath: String
    /// Read-only (and `PRAGMA query_only`): nothing run through it can change the analysis.
    public let db: DatabaseQueue
    /// Counts of the decode this open did; nil when the cache answered.
    public let decodeStats: Decoder.Stats?
    private let temporaryDirectory: String?

    /// Opens `bundlePath`, decoding it unless the cache holds a decode of the same content.
    public init(bundlePath: String, cache: CacheMode = .auto, progress: ProgressBar? = ProgressBar()) throws {
        bundle = try BundleReader(path: bundlePath)
        let key = try Analysis.cacheKey(bundle)
        var directory: String
        var temporary: String?
        switch cache {
        case .none:
            directory = Analysis.makeTemporaryDirectory()
            temporary = directory
        case .directory(let dir):
            directory = dir
        case .auto:
            directory = Analysis.defaultCacheDirectory()
        }
        if temporary == nil {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                // an unwritable cache directory should not stop the analysis
                directory = Analysis.makeTemporaryDirectory()
                temporary = directory
            }
        }
        // a temporary directory goes with a failed open (deinit does not run for an init that throws)
        var opened = false
        defer { if !opened, let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let path = (directory as NSString).appendingPathComponent("\(key.name).skba")
        var stats: Decoder.Stats?
        if !Analysis.isValidCache(path: path, key: key.full) {
            let partial = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
            try? FileManager.default.removeItem(atPath: partial)
            do {
                stats = try Decoder(reader: bundle, progress: progress).decode(into: partial)
                let db = try DatabaseQueue(path: partial)
                try db.write { try $0.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('cache_key', ?)", arguments: [key.full]) }
                try db.close()
                try? FileManager.default.removeItem(atPath: path)
                try FileManager.default.moveItem(atPath: partial, toPath: path)
            } catch {
                try? FileManager.default.removeItem(atPath: partial)
                if let error = error as? AnalysisError { throw error }
                if let error = error as? BundleError { throw error }
                throw AnalysisError.analysisDatabase(path: path, why: "\(error)")
            }
        }
        databasePath = path
        decodeStats = stats
        temporaryDirectory = temporary
        db = try Analysis.openReadOnly(path)
        opened = true
    }

    /// Fills the `finding` view with the built-in rules' findings, unless it holds them already (once
    /// per decode and rule set). `diag` and `rules` do it; `sql` does it for a query that reads findings.
    public func ensureFindings() throws {
        _ = try Diagnosis(self)
    }

    deinit {
        if let temporaryDirectory {
            try? db.close()
            try? FileManager.default.removeItem(atPath: temporaryDirectory)
        }
    }

    static func openReadOnly(_ path: String) throws -> DatabaseQueue {
        var config = Configuration()
        config.readonly = true
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA query_only = 1") }
        do {
            return try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw AnalysisError.analysisDatabase(path: path, why: "\(error)")
        }
    }

    static func isValidCache(path: String, key: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path), let db = try? openReadOnly(path) else { return false }
        defer { try? db.close() }
        let values = try? db.read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key IN ('cache_key', 'complete')")
        }
        var found: [String: String] = [:]
        for row in values ?? [] { found[row["key"]] = row["value"] }
        return found["cache_key"] == key && found["complete"] == "1"
    }

    /// The cache directory the environment names.
    public static func defaultCacheDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SKBTRAIL_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return (xdg as NSString).appendingPathComponent("skbtrail") }
        let home = env["HOME"] ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/skbtrail")
    }

    static func makeTemporaryDirectory() -> String {
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("skbtrail-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The content key of a bundle: its identity and size, plus the decoder version.
    static func cacheKey(_ bundle: BundleReader) throws -> (name: String, full: String) {
        let chunks = try bundle.chunks()
        let full = [bundle.recording.uuid, String(chunks.count), String(chunks.last?.id ?? 0),
                    String(chunks.reduce(0) { $0 + $1.records }), String(bundle.fileSize()),
                    "decoder \(Decoder.version)"].joined(separator: "|")
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in full.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let safeUUID = bundle.recording.uuid.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return ("\(safeUUID.isEmpty ? "bundle" : safeUUID)-\(String(h, radix: 16))", full)
    }
}
