import Foundation
import SkbtrailBundle
import GRDB

/// What `skbtrail diag` shows.
public struct DiagOptions: Sendable {
    /// Only packets (with their clones) that have a WARN or ERROR finding.
    public var quiet = false
    public var json = false
    public var date = false
    public init(quiet: Bool = false, json: Bool = false, date: Bool = false) {
        self.quiet = quiet
        self.json = json
        self.date = date
    }
}

/// One finding as the report shows it.
struct Finding {
    var packetID: Int64?
    var eventID: Int64?
    var level: String
    var code: String
    var rule: String
    var message: String
    var advice: String?
    var confidence: String
    var inferred: String?

    init(_ row: Row) {
        packetID = row["packet_id"]
        eventID = row["event_id"]
        level = row["level"]
        code = row["code"]
        rule = row["rule"]
        message = row["message"]
        advice = row["advice"]
        confidence = row["confidence"]
        inferred = row["inferred"]
    }

    var severity: Int { level == "ERROR" ? 3 : level == "WARN" ? 2 : 1 }

    var json: JSON {
        .object([
            ("packet_id", .opt(packetID)), ("event_id", .opt(eventID)), ("level", .string(level)), ("code", .string(code)),
            ("rule", .string(rule)), ("message", .string(message)), ("advice", .opt(advice)),
            ("confidence", .string(confidence)), ("inferred", .opt(inferred)),
        ])
    }
}

extension Diagnosis {
    /// `skbtrail diag`: each packet's path with its findings, a diagnosis per packet, and a summary.
    public func report(_ analysis: Analysis, filter: PacketFilter = PacketFilter(), options: DiagOptions = DiagOptions()) throws -> String {
        let (cond, args) = try filter.sql()
        return try db.read { db in
            // Memory follows what is shown, not the recording: findings are read per shown packet, the
            // summary is counted by SQLite.
            let order = "ORDER BY event_id, severity DESC, id"
            let global = try Row.fetchAll(db, sql: "SELECT * FROM finding WHERE packet_id IS NULL \(order)").map(Finding.init)
            let selected = try Int64.fetchAll(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id",
                                              arguments: StatementArguments(args))
            let selectedSet = Set(selected)
            var children: [Int64: [Int64]] = [:]
            var parentOf: [Int64: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT parent_id, child_id FROM clone_edge ORDER BY child_id") {
                children[row["parent_id"], default: []].append(row["child_id"])
                parentOf[row["child_id"]] = row["parent_id"]
            }
            let roots = selected.filter { id in parentOf[id].map { !selectedSet.contains($0) } ?? true }
            func tree(_ id: Int64) -> [Int64] { [id] + (children[id] ?? []).flatMap(tree) }
            let severe = options.quiet
                ? Set(try Int64.fetchAll(db, sql: "SELECT DISTINCT packet_id FROM diag_finding WHERE level IN ('WARN', 'ERROR') AND packet_id IS NOT NULL"))
                : []
            let shown = roots.filter { !options.quiet || tree($0).contains(where: severe.contains) }
            var byPacket: [Int64: [Finding]] = [:]
            let ofPacket = try db.makeStatement(sql: "SELECT * FROM finding WHERE packet_id = ? \(order)")
            for id in shown {
                for t in tree(id) where byPacket[t] == nil {
                    byPacket[t] = try Row.fetchAll(ofPacket, arguments: [t]).map(Finding.init)
                }
            }

            var fates: [(String, Int)] = []
            for row in try Row.fetchAll(db, sql: "SELECT p.fate, count(*) AS n FROM pkt p WHERE \(cond) GROUP BY p.fate ORDER BY n DESC, p.fate",
                                        arguments: StatementArguments(args)) {
                fates.append((row["fate"], row["n"]))
            }
            // per code: the level of its worst finding and the count, worst and most frequent first
            let scope = "(f.packet_id IS NULL OR f.packet_id IN (SELECT p.id FROM pkt p WHERE \(cond)))"
            var codeList: [(key: String, value: (level: String, count: Int, severity: Int))] = []
            for row in try Row.fetchAll(db, sql: """
                SELECT f.code, max(f.severity) AS severity, count(*) AS n FROM finding f WHERE \(scope)
                GROUP BY f.code ORDER BY severity DESC, n DESC, f.code
                """, arguments: StatementArguments(args)) {
                let severity: Int = row["severity"]
                codeList.append((row["code"], (severity == 3 ? "ERROR" : severity == 2 ? "WARN" : "INFO", row["n"], severity)))
            }
            var levelCounts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT f.level, count(*) AS n FROM finding f WHERE \(scope) GROUP BY f.level",
                                        arguments: StatementArguments(args)) {
                levelCounts[row["level"]] = row["n"]
            }

            if options.json {
                var packets: [JSON] = []
                for id in shown {
                    packets.append(try packetJSON(db, id: id, children: children, findings: byPacket))
                }
                return JSON.object([
                    ("packets", .array(packets)),
                    ("findings", .array(global.map(\.json))),
                    ("summary", .object([
                        ("packets", .int(Int64(selected.count))),
                        ("shown", .int(Int64(shown.count))),
                        ("fates", .object(fates.map { ($0.0, JSON.int(Int64($0.1))) })),
                        ("codes", .array(codeList.map { .object([("code", .string($0.key)), ("level", .string($0.value.level)),
                                                                  ("count", .int(Int64($0.value.count)))]) })),
                    ])),
                    ("rule_errors", .array(errors.map { .string($0.description) })),
                ]).text + "\n"
            }

            var out = ""
            for id in shown {
                try renderPacket(db, analysis, id: id, children: children, parentOf: parentOf, findings: byPacket,
                                 indent: "", options: options, into: &out)
                let treeFindings = tree(id).flatMap { byPacket[$0] ?? [] }
                    .sorted { ($0.severity, $1.packetID ?? 0) > ($1.severity, $0.packetID ?? 0) }
                if !treeFindings.isEmpty {
                    out += "  diagnosis:\n"
                    for f in treeFindings where !options.quiet || f.severity >= 2 {
                        out += Diagnosis.findingLines(f, indent: "    ", showPacket: f.packetID != id)
                    }
                }
                out += "\n"
            }
            if shown.isEmpty {
                out += options.quiet ? "no packet has a WARN or ERROR finding\n\n" : "no packets match\n\n"
            }
            let globalShown = global.filter { !options.quiet || $0.severity >= 2 }
            if !globalShown.isEmpty {
                out += "recording:\n"
                for f in globalShown { out += Diagnosis.findingLines(f, indent: "  ", showPacket: false) }
                out += "\n"
            }
            out += "summary: \(selected.count) packet\(selected.count == 1 ? "" : "s")"
            out += options.quiet ? ", \(shown.count) shown with a WARN or ERROR\n" : "\n"
            out += "  fates: " + (fates.isEmpty ? "none" : fates.map { "\($0.0) \($0.1)" }.joined(separator: ", ")) + "\n"
            out += "  findings: \(levelCounts["ERROR"] ?? 0) ERROR, \(levelCounts["WARN"] ?? 0) WARN, \(levelCounts["INFO"] ?? 0) INFO\n"
            if !codeList.isEmpty {
                out += Analysis.align(codeList.map { [$0.value.level, $0.key, "\($0.value.count)"] }, indent: "    ")
            }
            for e in errors { out += "rule error: \(e.description)\n" }
            return out
        }
    }

    static func findingLines(_ f: Finding, indent: String, showPacket: Bool) -> String {
        var s = "\(indent)\(f.level.padding(toLength: 5, withPad: " ", startingAt: 0)) \(f.code): "
        if showPacket, let p = f.packetID { s += "[packet \(p)] " }
        s += f.message + "\n"
        if f.level == "ERROR" || f.level == "WARN", let advice = f.advice, !advice.isEmpty {
            s += "\(indent)      fix: \(advice)\n"
        }
        if let inferred = f.inferred, f.confidence == "inferred" {
            s += "\(indent)      confidence: inferred — \(inferred)\n"
        }
        return s
    }

    private func renderPacket(_ db: Database, _ analysis: Analysis, id: Int64, children: [Int64: [Int64]], parentOf: [Int64: Int64],
                              findings: [Int64: [Finding]], indent: String, options: DiagOptions, into out: inout String) throws {
        guard let p = try Row.fetchOne(db, sql: "SELECT * FROM packet WHERE id = ?", arguments: [id]) else { return }
        let mine = findings[id] ?? []
        let level = mine.map(\.severity).max().map { $0 == 3 ? "ERROR" : $0 == 2 ? "WARN" : "INFO" }
        var header = "\(indent)packet \(id)  \(p["tuple"] ?? "")  \(Analysis.fateText(p))"
        if let parent = parentOf[id] { header += indent.isEmpty ? "  (clone of packet \(parent))" : "  (clone)" }
        if let level, level != "INFO" { header += "  [\(level)]" }
        out += header + "\n"
        var byEvent: [Int64: [Finding]] = [:]
        for f in mine { if let e = f.eventID { byEvent[e, default: []].append(f) } }
        let boot = analysis.bundle.recording.bootToUnixNs
        let pad = indent.isEmpty ? "  " : String(repeating: " ", count: indent.count + 2)
        var rows: [[String]] = []
        var notes: [Int: [Finding]] = [:]
        for s in try Row.fetchAll(db, sql: "SELECT * FROM path_step WHERE packet_id = ? ORDER BY step", arguments: [id]) {
            let time = options.date ? TextLayout.wallClock(unixNs: (s["ts"] as Int64) + boot) : "+" + TextLayout.seconds(s["rel_ns"])
            let netns: String = s["netns_name"] ?? ((s["netns"] as Int64) == 0 ? "-" : String(s["netns"] as Int64))
            let ifname: String = s["ifname"] ?? ((s["ifindex"] as Int64) == 0 ? "-" : "if\(s["ifindex"] as Int64)")
            var text: String = s["detail"]
            if let nat: String = s["nat"] { text = text.isEmpty ? nat : "\(nat)  \(text)" }
            rows.append([time, s["probe_name"], ifname, netns, text])
            if let f = byEvent[s["event_id"]] { notes[rows.count - 1] = f }
        }
        // align the steps, then put each step's findings under it
        let aligned = Analysis.align(rows, indent: pad).split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in aligned.enumerated() where i < rows.count {
            out += line + "\n"
            for f in notes[i] ?? [] {
                out += "\(pad)  ^ \(f.level) \(f.code): \(f.message)\n"
            }
        }
        for child in children[id] ?? [] {
            try renderPacket(db, analysis, id: child, children: children, parentOf: parentOf, findings: findings,
                             indent: indent + "  └─ ", options: options, into: &out)
        }
    }

    private func packetJSON(_ db: Database, id: Int64, children: [Int64: [Int64]], findings: [Int64: [Finding]]) throws -> JSON {
        guard let p = try Row.fetchOne(db, sql: "SELECT * FROM packet WHERE id = ?", arguments: [id]) else { return .null }
        let steps = try Row.fetchAll(db, sql: "SELECT * FROM path_step WHERE packet_id = ? ORDER BY step", arguments: [id]).map { s -> JSON in
            .object([
                ("step", .int(s["step"])), ("event_id", .int(s["event_id"])), ("rel_ns", .int(s["rel_ns"])),
                ("probe", .string(s["probe_name"])), ("netns", .int(s["netns"])), ("netns_name", .opt(s["netns_name"] as String?)),
                ("ifname", .opt(s["ifname"] as String?)), ("detail", .string(s["detail"])), ("nat", .opt(s["nat"] as String?)),
            ])
        }
        let mine = findings[id] ?? []
        return .object([
            ("id", .int(id)), ("tuple", .opt(p["tuple"] as String?)), ("fate", .string(p["fate"])),
            ("drop_reason", .opt(p["drop_reason"] as String?)), ("nf_family", .opt(p["nf_family"] as String?)),
            ("nf_hook", .opt(p["nf_hook"] as String?)), ("nf_table", .opt(p["nf_table"] as String?)),
            ("netns_name", .opt(p["netns_name"] as String?)), ("parent_id", .opt(p["parent_id"] as Int64?)),
            ("level", .opt(mine.map(\.severity).max().map { $0 == 3 ? "ERROR" : $0 == 2 ? "WARN" : "INFO" })),
            ("findings", .array(mine.map(\.json))),
            ("steps", .array(steps)),
            ("clones", .array(try (children[id] ?? []).map { try packetJSON(db, id: $0, children: children, findings: findings) })),
        ])
    }

    /// `skbtrail rules`: every rule, what it needs, and (with a bundle) whether the bundle has it.
    public static func rulesReport(userDirectory: String?, analysis: Analysis?, json: Bool) throws -> String {
        var (rules, errors) = try DiagnosisRule.all(userDirectory: userDirectory)
        var status: [String: Row] = [:]
        if let analysis {
            let diagnosis = try Diagnosis(analysis, userDirectory: userDirectory)
            errors = diagnosis.errors
            rules = diagnosis.rules
            for row in try diagnosis.db.read({ try Row.fetchAll($0, sql: "SELECT * FROM diag_rule") }) { status[row["source"]] = row }
        } else {
            // without a bundle, compile-check the user's rules on an empty analysis schema
            errors += try Diagnosis.checkWithoutBundle(rules.filter { !$0.isBuiltin })
        }
        if json {
            return JSON.array(rules.map { r in
                var fields: [(String, JSON)] = [("id", .string(r.id)), ("level", .string(r.level)), ("title", .string(r.title)),
                                                ("needs", .array(r.needs.map { .string($0) })), ("source", .string(r.source))]
                if let s = status[r.source] {
                    let missing: String = s["missing"] ?? ""
                    fields += [("available", .bool(missing.isEmpty)), ("missing", .opt(missing.isEmpty ? nil : missing)),
                               ("findings", .int(s["findings"])), ("error", .opt(s["error"] as String?))]
                }
                return .object(fields)
            } + errors.filter { e in !rules.contains { $0.source == e.source } }.map { .object([("error", .string($0.description))]) }).text + "\n"
        }
        var rows: [[String]] = [analysis == nil ? ["ID", "LEVEL", "NEEDS", "TITLE"] : ["ID", "LEVEL", "NEEDS", "BUNDLE", "FOUND", "TITLE"]]
        for r in rules {
            var row = [r.id + (r.isBuiltin ? "" : " *"), r.level, r.needs.isEmpty ? "-" : r.needs.joined(separator: ",")]
            if analysis != nil {
                let s = status[r.source]
                let missing: String = s?["missing"] ?? ""
                let error: String? = s?["error"]
                row += [error != nil ? "broken" : missing.isEmpty ? "ok" : "inferred", "\(s?["findings"] as Int64? ?? 0)"]
            }
            row.append(r.title)
            rows.append(row)
        }
        var out = Analysis.align(rows, indent: "")
        if rules.contains(where: { !$0.isBuiltin }) { out += "* from \(userDirectory ?? "")\n" }
        if analysis != nil {
            for r in rules {
                if let missing: String = status[r.source]?["missing"], !missing.isEmpty {
                    out += "\(r.id): \(missing): its findings say what was inferred\n"
                }
            }
        }
        for e in errors { out += "rule error: \(e.description)\n" }
        return out
    }

    /// Compiles rules against the analysis schema alone (no bundle), to report syntax errors by line.
    static func checkWithoutBundle(_ rules: [DiagnosisRule]) throws -> [RuleError] {
        guard !rules.isEmpty else { return [] }
        let queue = try DatabaseQueue()
        return try queue.write { db in
            for file in BundleFormat.sqlFiles(under: "analysis") where !file.path.hasSuffix("indexes.sql") { try db.execute(sql: file.sql) }
            return rules.compactMap { $0.check(db) }
        }
    }
}
