import Foundation
import GRDB
import SkbtrailBundle

/// A diagnosis of one analysis: the rules that ran and the rules that could not be loaded or run (the
/// others ran). Its findings are read through `AnalysisDatabase.reader` (the `finding` view).
public struct Diagnosis {
    public let rules: [DiagnosisRule]
    public let errors: [RuleError]
}

/// Runs diagnosis rules into a findings file (AnalysisDatabase.diagnose builds one per rule set).
enum RuleEngine {
    /// Runs `rules` on the analysis database attached to `db` as `analysis` (its views resolve by
    /// their names), writing diag_finding and diag_rule of `db`.
    static func run(_ rules: [DiagnosisRule], _ db: Database) throws {
        let availability = try ProbeAvailability(db)
        for rule in rules {
            let missing = availability.missing(rule.needs)
            var error = rule.check(db)
            var count = 0
            if error == nil {
                let started = Date()
                defer { DecodeTiming.phase("rule \(rule.id)", started) }
                do {
                    count = try run(rule, missing: missing, db)
                } catch let e as DatabaseError {
                    error = RuleError(source: rule.source, line: nil, message: e.message ?? "\(e)")
                }
            }
            try db.execute(sql: """
                INSERT OR REPLACE INTO diag_rule (id, title, level, needs, source, missing, error, findings)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [rule.id, rule.title, rule.level, rule.needs.joined(separator: ", "), rule.source,
                                 missing.map(\.description).joined(separator: "; "), error?.description, count])
        }
    }

    /// Runs one rule into diag_finding; returns the number of findings.
    static func run(_ rule: DiagnosisRule, missing: [ProbeAvailability.Missing], _ db: Database) throws -> Int {
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
