import Foundation
import GRDB
import SkbtrailBundle

/// A diagnosis of one analysis: the rules that ran and the rules that could not be loaded or run (the
/// others ran). Its findings are read through `AnalysisDatabase.reader` (the `finding` view).
public struct Diagnosis {
    public let rules: [DiagnosisRule]
    public let errors: [RuleError]
}

/// Runs diagnosis rules into a findings file (AnalysisDatabase.diagnose builds one per rule set), each
/// in the sandbox users' SQL runs in (it may read, and the engine's wrapper insert its findings) and
/// within `limits`: a rule that runs too long or wants too much memory is stopped and reported as broken,
/// and the others run.
enum RuleEngine {
    /// Runs `rules` on the analysis database attached to `connection` as `analysis` (its views resolve by
    /// their names), writing diag_finding and diag_rule of the connection's main database.
    static func run(_ rules: [DiagnosisRule], _ connection: RawConnection, limits: QueryLimits) throws {
        let availability = try ProbeAvailability(connection.handle)
        let sandbox = Sandbox(connection.handle, limits: limits)
        let record = try RawStatement(connection.handle, """
            INSERT OR REPLACE INTO diag_rule (id, title, level, needs, source, missing, error, findings)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for rule in rules {
            let missing = availability.missing(rule.needs)
            var failure = sandbox.preparing(.read) { rule.check(connection.handle) }
            if let refusal = sandbox.refusal {
                failure = RuleError(source: rule.source, line: nil, message: "\(refusal): a rule only reads")
            }
            var count = 0
            if failure == nil {
                let started = Date()
                defer { DecodeTiming.phase("rule \(rule.id)", started) }
                do {
                    count = try run(rule, missing: missing, connection, sandbox)
                } catch {
                    if Sandbox.interrupted != 0 { throw error }
                    failure = RuleError(source: rule.source, line: nil, message: AnalysisError.describe(error))
                }
            }
            record.reset()
            record.bind(1, rule.id); record.bind(2, rule.title); record.bind(3, rule.level)
            record.bind(4, rule.needs.joined(separator: ", ")); record.bind(5, rule.source)
            record.bind(6, missing.map(\.description).joined(separator: "; ")); record.bind(7, failure?.description)
            record.bind(8, Int64(count))
            _ = try record.step()
        }
    }

    /// Runs one rule into diag_finding; returns the number of findings.
    static func run(_ rule: DiagnosisRule, missing: [ProbeAvailability.Missing], _ connection: RawConnection,
                    _ sandbox: Sandbox) throws -> Int {
        let columns = try sandbox.preparing(.read) { try RawStatement(connection.handle, rule.body) }
        let names = (0..<columns.columnCount).map { columns.columnName($0).lowercased() }
        let confidence = names.contains("confidence")
            ? "CASE WHEN r.confidence = 'inferred' THEN 'inferred' ELSE ? END" : "?"
        let inferred = names.contains("inferred") ? "coalesce(r.inferred, ?)" : "?"
        let note: String? = missing.isEmpty ? nil
            : "not proven: " + missing.map(\.description).joined(separator: "; ")
            + "; this finding is inferred from the events that were recorded"
        let before = try count(connection)
        let insert = try sandbox.preparing(.rule) {
            try RawStatement(connection.handle, """
                INSERT INTO diag_finding (packet_id, event_id, level, code, rule, message, advice, confidence, inferred)
                SELECT r.packet_id, r.event_id, upper(r.level), coalesce(r.code, ?), ?, coalesce(r.message, ''), r.advice,
                       \(confidence), \(inferred)
                FROM (
                \(rule.body)
                ) AS r
                """)
        }
        if let refusal = sandbox.refusal { throw AnalysisError.message("\(refusal): a rule only reads") }
        insert.bind(1, rule.id); insert.bind(2, rule.id); insert.bind(3, note == nil ? "certain" : "inferred"); insert.bind(4, note)
        try sandbox.running("the rule \(rule.id)") { while try insert.step() {} }
        let after = try count(connection)
        // a rule's own 'inferred' column makes the finding inferred too
        try connection.execute("UPDATE diag_finding SET confidence = 'inferred' WHERE id > \(before) AND inferred IS NOT NULL")
        return after - before
    }

    private static func count(_ connection: RawConnection) throws -> Int {
        let s = try RawStatement(connection.handle, "SELECT count(*) FROM diag_finding")
        s.run()
        _ = try s.step()
        return Int(s.int(0))
    }
}
