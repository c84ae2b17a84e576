import Foundation
import GRDB

extension Diagnosis {
    /// `skbtrail rules`: every rule, what it needs, and (with a bundle) whether the bundle has it.
    /// `jsonLines` (with `json`): each rule an object on its own line instead of one array.
    public static func rulesReport(userDirectory: String?, analysis: AnalysisDatabase?, json: Bool, jsonLines: Bool = false,
                                   limits: QueryLimits = .defaults) throws -> String {
        var (rules, errors) = try DiagnosisRule.all(userDirectory: userDirectory)
        var status: [String: Row] = [:]
        if let analysis {
            let diagnosis = try analysis.diagnose(userRules: userDirectory, limits: limits)
            errors = diagnosis.errors
            rules = diagnosis.rules
            for row in try analysis.reader.read({ try Row.fetchAll($0, sql: "SELECT * FROM findings.diag_rule") }) { status[row.text("source")] = row }
        } else {
            // without a bundle, compile-check the user's rules on an empty analysis schema
            errors += try Diagnosis.checkWithoutBundle(rules.filter { !$0.isBuiltin })
        }
        if json {
            let items: [JSON] = rules.map { r in
                var fields: [(String, JSON)] = [("id", .string(r.id)), ("level", .string(r.level)), ("title", .string(r.title)),
                                                ("needs", .array(r.needs.map { .string($0) })), ("source", .string(r.source))]
                if let s = status[r.source] {
                    let missing = s.text("missing")
                    fields += [("available", .bool(missing.isEmpty)), ("missing", .opt(missing.isEmpty ? nil : missing)),
                               ("findings", .int(s.int("findings"))), ("error", .opt(s.optText("error")))]
                }
                return .object(fields)
            } + errors.filter { e in !rules.contains { $0.source == e.source } }.map { .object([("error", .string($0.description))]) }
            return jsonLines ? items.map { $0.text + "\n" }.joined() : JSON.array(items).text + "\n"
        }
        var rows: [[String]] = [analysis == nil ? ["ID", "LEVEL", "NEEDS", "TITLE"] : ["ID", "LEVEL", "NEEDS", "BUNDLE", "FOUND", "TITLE"]]
        for r in rules {
            var row = [r.id + (r.isBuiltin ? "" : " *"), r.level, r.needs.isEmpty ? "-" : r.needs.joined(separator: ",")]
            if analysis != nil {
                let s = status[r.source]
                let missing = s?.text("missing") ?? ""
                let error = s?.optText("error")
                row += [error != nil ? "broken" : missing.isEmpty ? "ok" : "inferred", "\(s?.int("findings") ?? 0)"]
            }
            row.append(r.title)
            rows.append(row)
        }
        var out = TextLayout.align(rows, indent: "")
        if rules.contains(where: { !$0.isBuiltin }) { out += "* from \(userDirectory ?? "")\n" }
        if analysis != nil {
            for r in rules {
                if let missing = status[r.source]?.optText("missing"), !missing.isEmpty {
                    out += "\(r.id): \(missing): its findings say what was inferred\n"
                }
            }
        }
        for e in errors { out += "rule error: \(e.description)\n" }
        // a rule that failed as it ran: its reason, where the errors above do not already give it
        for r in rules {
            if let error = status[r.source]?.optText("error"), !errors.contains(where: { $0.description.contains(error) || error.contains($0.description) }) {
                out += "\(r.id): broken: \(error)\n"
            }
        }
        return out
    }

    /// Compiles rules against the analysis schema alone (no bundle), to report syntax errors by line.
    /// Preparing is in the sandbox too: SQLite carries out some PRAGMAs while it prepares them.
    static func checkWithoutBundle(_ rules: [DiagnosisRule]) throws -> [RuleError] {
        guard !rules.isEmpty else { return [] }
        let c = try RawConnection(creating: ":memory:")
        try AnalysisSchema.registerTables(connection: c.handle)
        for file in AnalysisSchema.tables { try c.execute(file.sql) }
        let sandbox = Sandbox(c.handle, limits: .defaults)
        return rules.compactMap { rule in
            let failure = sandbox.preparing(.read) { rule.check(c.handle) }
            if let refusal = sandbox.refusal {
                return RuleError(source: rule.source, line: nil, message: "\(refusal): a rule only reads")
            }
            return failure
        }
    }
}
