import Foundation
import SkbtrailBundle
import GRDB

/// What `skbtrail diag` shows.
public struct DiagOptions: Sendable {
    /// Only packets (with their clones) that have a WARN or ERROR finding.
    public var quiet = false
    public var json = false
    /// With `json`: each packet an object on its own line, then the findings and summary on one.
    public var jsonLines = false
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

    init(_ s: RawStatement) {
        packetID = s.optInt(0)
        eventID = s.optInt(1)
        level = s.text(2) ?? "INFO"
        code = s.text(3) ?? ""
        rule = s.text(4) ?? ""
        message = s.text(5) ?? ""
        advice = s.text(6)
        confidence = s.text(7) ?? "certain"
        inferred = s.text(8)
    }

    init(_ row: Row) {
        packetID = row.optInt("packet_id")
        eventID = row.optInt("event_id")
        level = row.optText("level") ?? "INFO"
        code = row.text("code")
        rule = row.text("rule")
        message = row.text("message")
        advice = row.optText("advice")
        confidence = row.optText("confidence") ?? "certain"
        inferred = row.optText("inferred")
    }

    var severity: Int { level == "ERROR" ? 3 : level == "WARN" ? 2 : 1 }

    static func levelName(_ severity: Int) -> String { severity == 3 ? "ERROR" : severity == 2 ? "WARN" : "INFO" }

    var json: JSON {
        .object([
            ("packet_id", .opt(packetID)), ("event_id", .opt(eventID)), ("level", .string(level)), ("code", .string(code)),
            ("rule", .string(rule)), ("message", .string(message)), ("advice", .opt(advice)),
            ("confidence", .string(confidence)), ("inferred", .opt(inferred)),
        ])
    }
}

extension AnalysisDatabase {
    /// `skbtrail diag`: each packet's path with its findings, a diagnosis per packet, and a summary.
    /// `diagnosis` is what `diagnose(userRules:)` returned: its findings are attached to `reader`.
    public func diagReport(_ diagnosis: Diagnosis, filter: PacketFilter = PacketFilter(), options: DiagOptions = DiagOptions(),
                           to sink: TextSink) throws {
        try reader.read { db in
            let (cond, args) = try filter.sql(db)
            // Packets stream out as they are read, with their findings; the summary is counted by SQLite
            // at the end. Memory follows what is shown, not the recording.
            let order = "ORDER BY event_id, severity DESC, id"
            let global = try Row.fetchAll(db, sql: "SELECT * FROM finding WHERE packet_id IS NULL \(order)").map(Finding.init)
            let clones = try CloneTree(db)
            let severe = options.quiet
                ? Set(try Int64.fetchAll(db, sql: "SELECT DISTINCT packet_id FROM findings.diag_finding WHERE level IN ('WARN', 'ERROR') AND packet_id IS NOT NULL"))
                : []
            let ofPacket = try RawStatement(db, """
                SELECT packet_id, event_id, level, code, rule, message, advice, confidence, inferred FROM findings.diag_finding
                WHERE packet_id = ? ORDER BY event_id, CASE level WHEN 'ERROR' THEN 3 WHEN 'WARN' THEN 2 ELSE 1 END DESC, id
                """)
            func findings(_ id: Int64) throws -> [Finding] {
                ofPacket.run(id)
                var out: [Finding] = []
                while try ofPacket.step() { out.append(Finding(ofPacket)) }
                return out
            }
            let renderer = try PathRenderer(db, clones: clones, startedNs: bundle.recording.startedNs,
                                            bootToUnixNs: bundle.recording.bootToUnixNs, date: options.date, detail: false)
            var shown = 0
            var started = Date()
            if options.json && !options.jsonLines { sink.append("{\"packets\":[") }
            let limited = try clones.forEachRoot(db, cond: cond, arguments: args, limit: filter.bound,
                                                 wanted: { id in
                !options.quiet || (clones.children[id] == nil ? severe.contains(id) : clones.tree(id).contains(where: severe.contains))
            }) { id in
                shown += 1
                if options.json {
                    let object = try renderer.json(id) { id in
                        let mine = try findings(id)
                        return [("level", .opt(mine.map(\.severity).max().map(Finding.levelName))),
                                ("findings", .array(mine.map(\.json)))]
                    }
                    let first = shown == 1, lines = options.jsonLines
                    sink.append { out in
                        if !lines { out += first ? "\n" : ",\n" }
                        object.write(into: &out)
                        if lines { out += "\n" }
                    }
                    return true
                }
                var byPacket: [Int64: [Finding]] = [:]
                for t in clones.tree(id) { byPacket[t] = try findings(t) }
                var byEvent: [Int64: [Finding]] = [:]
                for f in byPacket.values.joined() { if let e = f.eventID { byEvent[e, default: []].append(f) } }
                if shown == 1 { sink.append(PathRenderer.header(date: options.date, detail: false)) }
                try sink.appendBytes { out in
                    try renderer.text(id, mark: { packet in
                        let level = byPacket[packet]?.map(\.severity).max().map(Finding.levelName)
                        return level.map { $0 != "INFO" ? "  [\($0)]" : "" } ?? ""
                    }, notes: { event in
                        (byEvent[event] ?? []).map { "^ \($0.level) \($0.code): \($0.message)" }
                    }, into: &out)
                    let treeFindings = clones.tree(id).flatMap { byPacket[$0] ?? [] }
                        .sorted { ($0.severity, $1.packetID ?? 0) > ($1.severity, $0.packetID ?? 0) }
                    if !treeFindings.isEmpty {
                        out += "  diagnosis:\n".utf8
                        for f in treeFindings where !options.quiet || f.severity >= 2 {
                            out += AnalysisDatabase.findingLines(f, indent: "    ", showPacket: f.packetID != id).utf8
                        }
                    }
                    out.append(0x0A)
                }
                return true
            }

            DecodeTiming.phase("report: packets", started)
            started = Date()
            defer { DecodeTiming.phase("report: summary", started) }
            let (selected, fates) = try PacketFilter.fateCounts(db, cond: cond, arguments: args)
            // per code: the level of its worst finding and the count, worst and most frequent first; per
            // level: the count. One pass over the findings, each looked up among the packets in scope.
            let scope = cond == "1" ? "(f.packet_id IS NULL OR EXISTS (SELECT 1 FROM pkt p WHERE p.id = f.packet_id))"
                : "(f.packet_id IS NULL OR EXISTS (SELECT 1 FROM pkt p WHERE p.id = f.packet_id AND \(cond)))"
            // keyed by bytes: GROUP BY compares bytes, a String key would merge canonically equal spellings
            var byCode: [[UInt8]: (severity: Int, count: Int)] = [:]
            var levelCounts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT f.code, f.level, max(f.severity) AS severity, count(*) AS n FROM finding f WHERE \(scope)
                GROUP BY f.code, f.level
                """, arguments: StatementArguments(args)) {
                let n = Int(row.int("n")), severity = Int(row.int("severity"))
                let code = Array(row.text("code").utf8)
                let known = byCode[code] ?? (severity, 0)
                byCode[code] = (max(known.severity, severity), known.count + n)
                levelCounts[row.text("level"), default: 0] += n
            }
            // ORDER BY severity DESC, n DESC, code (SQLite's BINARY collation: bytes)
            let codeList: [(code: String, level: String, count: Int)] = byCode.sorted {
                if $0.value.severity != $1.value.severity { return $0.value.severity > $1.value.severity }
                if $0.value.count != $1.value.count { return $0.value.count > $1.value.count }
                return $0.key.lexicographicallyPrecedes($1.key)
            }.map { (String(decoding: $0.key, as: UTF8.self), Finding.levelName($0.value.severity), $0.value.count) }

            if options.json {
                let rest = JSON.object([
                    ("findings", .array(global.map(\.json))),
                    ("summary", .object([
                        ("packets", .int(Int64(selected))),
                        ("shown", .int(Int64(shown))),
                        ("limited", .bool(limited)),
                        ("fates", .object(fates.map { ($0.0, JSON.int(Int64($0.1))) })),
                        ("codes", .array(codeList.map { .object([("code", .string($0.code)), ("level", .string($0.level)),
                                                                  ("count", .int(Int64($0.count)))]) })),
                    ])),
                    ("rule_errors", .array(diagnosis.errors.map { .string($0.description) })),
                ]).text
                if options.jsonLines {
                    sink.append(rest + "\n")
                } else {
                    sink.append((shown == 0 ? "]," : "\n],") + rest.dropFirst() + "\n")
                }
                return
            }
            var out = ""
            if shown == 0 {
                out += options.quiet ? "no packet has a WARN or ERROR finding\n\n" : "no packets match\n\n"
            }
            let globalShown = global.filter { !options.quiet || $0.severity >= 2 }
            if !globalShown.isEmpty {
                out += "recording:\n"
                for f in globalShown { out += AnalysisDatabase.findingLines(f, indent: "  ", showPacket: false) }
                out += "\n"
            }
            out += "summary: \(selected) packet\(selected == 1 ? "" : "s")"
            if limited {
                out += ", the first \(shown)\(options.quiet ? " with a WARN or ERROR" : "") shown (--limit \(shown))\n"
            } else {
                out += options.quiet ? ", \(shown) shown with a WARN or ERROR\n" : "\n"
            }
            out += "  fates: " + (fates.isEmpty ? "none" : fates.map { "\($0.0) \($0.1)" }.joined(separator: ", ")) + "\n"
            out += "  findings: \(levelCounts["ERROR"] ?? 0) ERROR, \(levelCounts["WARN"] ?? 0) WARN, \(levelCounts["INFO"] ?? 0) INFO\n"
            if !codeList.isEmpty {
                out += TextLayout.align(codeList.map { [$0.level, $0.code, "\($0.count)"] }, indent: "    ")
            }
            for e in diagnosis.errors { out += "rule error: \(e.description)\n" }
            sink.append(out)
        }
    }

    /// `diagReport` as one text.
    public func diagReport(_ diagnosis: Diagnosis, filter: PacketFilter = PacketFilter(), options: DiagOptions = DiagOptions()) throws -> String {
        try TextSink.collect { try diagReport(diagnosis, filter: filter, options: options, to: $0) }
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
}
