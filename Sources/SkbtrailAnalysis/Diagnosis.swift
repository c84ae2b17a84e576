import Foundation
import GRDB
import SkbtrailBundle

/// Runs the diagnosis rules on an analysis database and keeps their findings in it (`finding` view).
///
/// The findings are stored in the analysis database (the cache), keyed by the text of the rules run, so
/// `skbtrail sql BUNDLE "SELECT * FROM finding"` sees them after `skbtrail diag` or `skbtrail rules
/// BUNDLE`, and a second `diag` with the same rules reuses them. The bundle itself is never touched. When
/// the cache file cannot be written, the work happens on a temporary copy.
public final class Diagnosis {
    /// Where the findings can be read (the analysis database, or a temporary copy of it).
    public let db: DatabaseQueue
    public let rules: [DiagnosisRule]
    /// Rules that could not be loaded or run; the others ran.
    public let errors: [RuleError]
    private let temporaryDirectory: String?

    /// The diagnosis schema files (finding tables and helper views, the drop-reason knowledge base): they
    /// are idempotent, so they run again on analysis databases decoded before they existed.
    static let schemaNames = ["analysis/4-diagnosis.sql", "analysis/5-drop-reasons.sql"]
    static var schemaFiles: [(path: String, sql: String)] {
        schemaNames.compactMap { name in BundleFormat.sql(name).map { (path: name, sql: $0) } }
    }

    /// Runs `rules` (default: the built-in ones plus `userDirectory`) on `analysis`.
    public init(_ analysis: Analysis, userDirectory: String? = nil) throws {
        let (rules, loadErrors) = try DiagnosisRule.all(userDirectory: userDirectory)
        self.rules = rules
        var temporary: String?
        var queue: DatabaseQueue
        var config = Configuration()
        config.busyMode = .timeout(10)
        do {
            queue = try DatabaseQueue(path: analysis.databasePath, configuration: config)
            try queue.write { try $0.execute(sql: "CREATE TABLE IF NOT EXISTS diag_probe_check (x)") }
        } catch {
            // a read-only cache (another user's, a read-only medium): work on a copy
            let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("skbtrail-diag-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let copy = (dir as NSString).appendingPathComponent("analysis.skba")
            try FileManager.default.copyItem(atPath: analysis.databasePath, toPath: copy)
            queue = try DatabaseQueue(path: copy, configuration: config)
            temporary = dir
        }
        temporaryDirectory = temporary
        db = queue
        // the copy goes with a failed run (deinit does not run for an init that throws)
        var ran = false
        defer { if !ran, let temporary { try? queue.close(); try? FileManager.default.removeItem(atPath: temporary) } }
        var runErrors: [RuleError] = []
        try queue.write { db in
            try db.execute(sql: "DROP TABLE IF EXISTS diag_probe_check")
            for file in Diagnosis.schemaFiles { try db.execute(sql: file.sql) }
            let key = Diagnosis.key(rules)
            let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'findings_key'")
            if stored == key {
                runErrors = try Row.fetchAll(db, sql: "SELECT source, error FROM diag_rule WHERE error IS NOT NULL ORDER BY source")
                    .map { Diagnosis.storedError(source: $0["source"], text: $0["error"]) }
                return
            }
            try db.execute(sql: "DELETE FROM diag_finding")
            try db.execute(sql: "DELETE FROM diag_rule")
            let availability = try ProbeAvailability(db)
            for rule in rules {
                let missing = availability.missing(rule.needs)
                var error = rule.check(db)
                var count = 0
                if error == nil {
                    let started = Date()
                    defer { Decoder.phase("rule \(rule.id)", started) }
                    do {
                        count = try Diagnosis.run(rule, missing: missing, availability: availability, db)
                    } catch let e as DatabaseError {
                        error = RuleError(source: rule.source, line: nil, message: e.message ?? "\(e)")
                    }
                }
                if let error { runErrors.append(error) }
                try db.execute(sql: """
                    INSERT OR REPLACE INTO diag_rule (id, title, level, needs, source, missing, error, findings)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [rule.id, rule.title, rule.level, rule.needs.joined(separator: ", "), rule.source,
                                     missing.map(\.description).joined(separator: "; "), error?.description, count])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('findings_key', ?)", arguments: [key])
        }
        errors = loadErrors + runErrors
        ran = true
    }

    deinit {
        if let temporaryDirectory {
            try? db.close()
            try? FileManager.default.removeItem(atPath: temporaryDirectory)
        }
    }

    static func storedError(source: String, text: String) -> RuleError {
        // stored as its description: 'file:line: message'
        RuleError(source: source, line: nil, message: text).withStoredText(text)
    }

    /// Identifies the rules run: their sources and texts, and the knowledge base.
    static func key(_ rules: [DiagnosisRule]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ s: String) { for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }; h = (h ^ 0xff) &* 0x100_0000_01b3 }
        for r in rules { mix(r.source); mix(r.sql) }
        for f in schemaFiles { mix(f.sql) }
        return "rules \(rules.count) \(String(h, radix: 16))"
    }

    /// Runs one rule into diag_finding; returns the number of findings.
    static func run(_ rule: DiagnosisRule, missing: [ProbeAvailability.Missing], availability: ProbeAvailability,
                    _ db: Database) throws -> Int {
        let columns = try db.makeStatement(sql: rule.body).columnNames.map { $0.lowercased() }
        let confidence = columns.contains("confidence")
            ? "CASE WHEN r.confidence = 'inferred' THEN 'inferred' ELSE ? END" : "?"
        let inferred = columns.contains("inferred") ? "coalesce(r.inferred, ?)" : "?"
        let note: String? = missing.isEmpty ? nil
            : "not proven: " + missing.map(\.description).joined(separator: "; ")
            + "; this finding is inferred from the events that were recorded"
        let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM diag_finding") ?? 0
        try db.execute(sql: """
            INSERT INTO diag_finding (packet_id, event_id, level, code, rule, message, advice, confidence, inferred)
            SELECT r.packet_id, r.event_id, upper(r.level), coalesce(r.code, ?), ?, coalesce(r.message, ''), r.advice,
                   \(confidence), \(inferred)
            FROM (
            \(rule.body)
            ) AS r
            """, arguments: [rule.id, rule.id, note == nil ? "certain" : "inferred", note])
        let after = try Int.fetchOne(db, sql: "SELECT count(*) FROM diag_finding") ?? 0
        // a rule's own 'inferred' column makes the finding inferred too
        try db.execute(sql: "UPDATE diag_finding SET confidence = 'inferred' WHERE id > ? AND inferred IS NOT NULL",
                       arguments: [before])
        return after - before
    }
}

extension RuleError {
    fileprivate func withStoredText(_ text: String) -> RuleError {
        // the stored text already names file and line; keep it whole
        var copy = self
        copy.message = text
        copy.source = ""
        return copy
    }
}

/// Which probes a bundle attached, to say what a rule's findings could not prove.
public struct ProbeAvailability {
    public struct Missing: CustomStringConvertible {
        public var need: String
        public var why: String
        public var description: String { "\(need) \(why)" }
    }

    var attached: [String: Bool] = [:]
    var errors: [String: String] = [:]
    var netfilter = false
    var netfilterError: String?

    init(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT name, kind, attached, error FROM bundle_probe") {
            let name: String = row["name"]
            let kind: String = row["kind"] ?? ""
            let ok = (row["attached"] as Int64? ?? 0) == 1
            if kind == "netfilter" {
                netfilter = netfilter || ok
                if !ok, netfilterError == nil { netfilterError = row["error"] }
            } else {
                attached[name] = (attached[name] ?? false) || ok
                if !ok, let e: String = row["error"] { errors[name] = e }
            }
        }
    }

    /// The needs of a rule this bundle cannot prove.
    func missing(_ needs: [String]) -> [Missing] {
        needs.compactMap { need in
            if need == "netfilter" {
                if netfilter { return nil }
                return Missing(need: "netfilter brackets", why: "were not attached" + (netfilterError.map { " (\($0))" } ?? ""))
            }
            switch attached[need] {
            case true?: return nil
            case false?: return Missing(need: "probe \(need)", why: "was not attached" + (errors[need].map { " (\($0))" } ?? ""))
            case nil: return Missing(need: "probe \(need)", why: "is not in this recording")
            }
        }
    }
}
