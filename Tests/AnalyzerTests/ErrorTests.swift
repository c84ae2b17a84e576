import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Damaged, truncated, too-new and lossy bundles each give one clear answer.
@Suite struct ErrorTests {
    /// Copies a fixture into a scratch directory and lets `change` damage it.
    func copy(_ name: String, _ change: (String) throws -> Void) throws -> (dir: String, path: String) {
        let dir = try scratchDirectory()
        let path = (dir as NSString).appendingPathComponent("\(name).skbt")
        try FileManager.default.copyItem(atPath: Fixture(name: name).path, toPath: path)
        try change(path)
        return (dir, path)
    }

    func message(_ path: String) -> String? {
        do {
            _ = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
            return nil
        } catch {
            return AnalysisError.describe(error)
        }
    }

    @Test func truncatedFile() throws {
        let (dir, path) = try copy("netfilter-drop") { path in
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try #require(message(path))
        #expect(text.hasPrefix(path))
        #expect(text.contains("damaged") || text.contains("is not an skbtrail bundle"))
    }

    @Test func newerFormatVersion() throws {
        let (dir, path) = try copy("netfilter-drop") { path in
            let db = try DatabaseQueue(path: path)
            try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA user_version = \(BundleFormat.version + 1)") }
            try db.close()
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(message(path) == "\(path) has bundle format version \(BundleFormat.version + 1); this skbtrail reads versions up to \(BundleFormat.version). Upgrade skbtrail to read it.")
    }

    @Test func notFound() {
        #expect(message("/nonexistent/x.skbt")?.hasPrefix("/nonexistent/x.skbt: no such file.") == true)
    }

    /// The drop fixture re-written without its kfree_skb records, as if the ring buffer had lost them.
    @Test func lostEventsMarkPacketsIncomplete() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var removed = 0
        let path = try rewriteFixture("netfilter-drop", into: dir) { ev, _ in
            if Int(ev.probe) == Int(ST_P_KFREE_SKB.rawValue) { removed += 1; return false }
            return true
        }
        // as the recorder counts them: per CPU, what the ring buffer could not take
        let db = try DatabaseQueue(path: path)
        try db.write { try $0.execute(sql: "INSERT OR REPLACE INTO lost (cpu, events) VALUES (0, ?), (1, 0)", arguments: [removed]) }
        try db.close()

        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(try rows(a, "SELECT count(*) AS n FROM packet WHERE fate = 'dropped'")[0]["n"] as Int == 0)
        let icmp = try rows(a, "SELECT fate, incomplete FROM packet WHERE proto = 'ICMP' AND parent_id IS NULL")
        #expect(icmp.count == Int(try Fixture(name: "netfilter-drop").expect()["pings"] ?? ""))
        for p in icmp {
            #expect(p["fate"] as String == "incomplete")
            #expect((p["incomplete"] as String?)?.contains("\(removed) events were lost during the recording (CPU 0)") == true)
        }
        #expect(try rows(a, "SELECT lost_events FROM recording")[0]["lost_events"] as Int == removed)
        let info = try a.infoReport(json: false)
        #expect(info.contains("lost        \(removed) events (cpu 0: \(removed)): packets may miss steps"))
        // The diagnosis says the recording has a gap, and which packets it leaves unexplained.
        try a.diagnose()
        let gap = try a.reader.read { try Row.fetchAll($0, sql: "SELECT level, message FROM finding WHERE code = 'recording-gap'") }
        #expect(gap.count == 1)
        #expect(gap.first.map { ($0["level"] as String) == "WARN" && ($0["message"] as String).contains("\(removed)") } == true)
        // They reached the INPUT hook: their end was there (a drop or a delivery), not lost on the way.
        let inFlight = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE code = 'lost-in-flight'") }
        #expect(inFlight == 0)
    }

    @Test func sqlCannotModify() throws {
        let a = try Fixture(name: "netfilter-drop").open()
        for statement in ["DELETE FROM ev", "DROP VIEW packet", "CREATE TABLE x (y)", "UPDATE pkt SET fate = 'x'"] {
            #expect(throws: AnalysisError.self) { _ = try a.sqlReport(statement, format: .table) }
        }
        #expect(try a.sqlReport("SELECT count(*) AS n FROM packet", format: .csv).hasPrefix("n\r\n"))
    }

    @Test func sqlStreamsLongResults() throws {
        let a = try Fixture(name: "netfilter-drop").open()
        let rows = AnalysisDatabase.tableLayoutRows + 5
        // the rows after the first tableLayoutRows are wider: they keep the layout and push right
        let query = """
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT \(rows))
            SELECT x, CASE WHEN x > \(AnalysisDatabase.tableLayoutRows) THEN 'a-much-wider-cell' ELSE 'b' END AS y, x AS z FROM c
            """
        for format in [OutputFormat.csv, .json, .jsonl, .table] {
            var pieces: [String] = []
            let sink = TextSink { pieces.append($0) }
            try a.sqlReport(query, format: format, to: sink)
            sink.flush()
            #expect(pieces.count > 1, "\(format): the output came in one piece")
            let text = pieces.joined()
            #expect(text == (try a.sqlReport(query, format: format)))
            switch format {
            case .csv:
                #expect(text.components(separatedBy: "\r\n").count == rows + 2)
            case .json:
                #expect(text.hasPrefix("[\n{\"x\":1,\"y\":\"b\",\"z\":1},\n") && text.hasSuffix("}\n]\n"))
                #expect((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any])?.count == rows)
            case .jsonl:
                let lines = text.split(separator: "\n")
                #expect(lines.count == rows && lines[0] == "{\"x\":1,\"y\":\"b\",\"z\":1}")
            default:
                let lines = text.split(separator: "\n")
                #expect(lines.count == rows + 1)
                #expect(lines[1] == "1      b  1", "\(lines[1])")
                #expect(lines.last == "\(rows)  a-much-wider-cell  \(rows)")
            }
        }
    }
}
