import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Damaged bundles are ordinary input: each damage the fuzz harness (scripts/fuzz-bundles.py) found
/// crashing, hanging or muddling the analyzer is one case here. A bundle whose essentials are damaged is
/// refused in one sentence naming the file and the value; one with damaged chunks or metadata rows opens,
/// leaves those out, says so in `damage`, and every report still runs.
@Suite struct DamageTests {
    /// A copy of `fixture` changed by `sql` (run with CHECK constraints off, as a hand edit or a bad
    /// disk could leave it) in a scratch directory the caller removes.
    static func damaged(_ fixture: String, _ sql: String) throws -> (dir: String, path: String) {
        let dir = try scratchDirectory()
        let path = (dir as NSString).appendingPathComponent("\(fixture).skbt")
        try FileManager.default.copyItem(atPath: Fixture(name: fixture).path, toPath: path)
        let db = try DatabaseQueue(path: path)
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA ignore_check_constraints = 1")
            try db.execute(sql: sql)
        }
        try db.close()
        return (dir, path)
    }

    static func refusal(_ path: String) -> String? {
        do {
            _ = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
            return nil
        } catch {
            return AnalysisError.describe(error)
        }
    }

    /// Runs every report over `a`; any of them may not crash, hang or throw.
    static func everyReport(_ a: AnalysisDatabase) throws {
        _ = try a.infoReport(json: false)
        _ = try a.infoReport(json: true)
        _ = try a.dropsReport(json: true)
        for options in [PathsOptions(), PathsOptions(json: true, date: true, detail: true)] {
            _ = try a.pathsReport(filter: PacketFilter(), options: options)
        }
        let diagnosis = try a.diagnose()
        _ = try a.diagReport(diagnosis, options: DiagOptions(quiet: true, json: false, date: true))
        _ = try a.diagReport(diagnosis, options: DiagOptions(json: true))
        _ = try a.latencyReport(filter: PacketFilter(), options: LatencyOptions())
        _ = try a.tcpReport(options: TCPOptions())
        _ = try a.sqlReport("SELECT count(*) FROM ev", format: .csv)
    }

    /// Essential values that cannot be right: the bundle is refused, naming the value.
    @Test(arguments: [
        ("UPDATE recording SET format_version = 0", "recording.format_version is 0"),
        ("UPDATE recording SET format_version = -1", "recording.format_version is -1"),
        ("UPDATE recording SET format_version = 'one'", "recording.format_version is 'one', not an integer"),
        ("UPDATE recording SET byte_order = 'big'", "its records are big-endian"),
        ("UPDATE recording SET event_size = 100", "recording.event_size is 100 bytes"),
        ("UPDATE recording SET boot_to_unix_ns = 9223372036854775807", "is not a clock value"),
        ("UPDATE recording SET started_ns = -5", "is not a clock value"),
        ("UPDATE recording SET uuid = x'00ff'", "recording.uuid is"),
        ("DELETE FROM recording", "it has no recording row"),
    ])
    func essentialValueIsRefused(_ sql: String, _ expected: String) throws {
        let (dir, path) = try Self.damaged("netfilter-drop", sql)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try #require(Self.refusal(path))
        #expect(text.hasPrefix(path), "\(text)")
        #expect(text.contains(expected), "\(text)")
        #expect(!text.contains("\n") && text.count < 400, "\(text)")
    }

    /// Damage the analysis can leave out: the bundle opens, says what it left out, and every report runs.
    @Test(arguments: [
        ("UPDATE chunk SET raw_size = 1099511627776 WHERE id = 1", "chunk 1 says 1099511627776 bytes of records, more than a chunk can hold"),
        ("UPDATE chunk SET records = 9223372036854775807 WHERE id = 1", "chunk 1 says 9223372036854775807 records"),
        ("UPDATE chunk SET codec = 'lz4' WHERE id = 1", "chunk 1 has the unknown codec 'lz4'"),
        ("UPDATE chunk SET data = zeroblob(length(data)) WHERE id = 1", "chunk 1"),
        ("UPDATE chunk SET data = 'text' WHERE id = 1", "chunk 1 has no bytes (data is text)"),
        ("UPDATE chunk SET first_ts = 'x' WHERE id = 1", "chunk.first_ts is 'x', not an integer: the row is left out"),
        ("UPDATE probe SET attached = '' WHERE id = 1", "probe.attached has 1 value that is not an integer"),
        ("UPDATE drop_reason SET name = x'00ff' WHERE value = 6", "drop_reason.name has 1 value that is not text: read as unknown"),
        ("UPDATE interface SET name = x'ff'", "values that are not text: read as unknown"),
    ])
    func damagedPartIsLeftOut(_ sql: String, _ expected: String) throws {
        let (dir, path) = try Self.damaged("netfilter-drop", sql)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(a.damage.contains { $0.contains(expected) }, "\(a.damage)")
        #expect(try a.infoReport(json: false).contains("damaged"))
        try Self.everyReport(a)
        let verified = try AnalysisDatabase.verify(bundlePath: path)
        #expect(verified.damaged)
        #expect(verified.text.contains("DAMAGED"))
        #expect(verified.json.contains("\"damaged\":true"))
    }

    /// A chunk left out takes its events with it, and only its events.
    @Test func skippedChunkKeepsTheOthers() throws {
        let whole = try Fixture(name: "netfilter-drop").open()
        let total = try rows(whole, "SELECT count(*) AS n FROM event")[0]["n"] as Int
        let first = try BundleReader(path: Fixture(name: "netfilter-drop").path).chunks()[0].records
        let (dir, path) = try Self.damaged("netfilter-drop", "UPDATE chunk SET data = zeroblob(length(data)) WHERE id = 1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(try rows(a, "SELECT count(*) AS n FROM event")[0]["n"] as Int == total - first)
        #expect(try a.sqlReport("SELECT count(*) AS n FROM ev", format: .csv) == "n\r\n\(total - first)\r\n")
    }

    /// Counts at the edge of Int64 add up without trapping.
    @Test func hugeLostCountsSaturate() throws {
        let (dir, path) = try Self.damaged("netfilter-drop", "INSERT OR REPLACE INTO lost VALUES (0, 9223372036854775807), (1, 9223372036854775807)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(try a.infoReport(json: false).contains("lost        9223372036854775807 events"))
        try Self.everyReport(a)
    }

    /// A zstd-split chunk whose payload says another record size than the recording's.
    @Test func splitPrefixOfAnotherSize() throws {
        let (dir, path) = try Self.damaged("netfilter-drop", "SELECT 1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try DatabaseQueue(path: path)
        try db.write { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT id, data FROM chunk WHERE codec = 'zstd-split' ORDER BY id LIMIT 1"))
            let data: Data = row["data"]
            var payload: [UInt8] = []
            try Zstd.decompress(data, expected: try #require(Zstd.frameContentSize(data.withUnsafeBytes { $0 })), into: &payload)
            payload[4] = 100; payload[5] = 0; payload[6] = 0; payload[7] = 0
            let changed = try payload.withUnsafeBytes { try ZstdCompressor(level: 1).compress($0) }
            try db.execute(sql: "UPDATE chunk SET data = ? WHERE id = ?", arguments: [changed, row["id"] as Int64])
        }
        try db.close()
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(a.damage.contains { $0.contains("chunk 1") }, "\(a.damage)")
        try Self.everyReport(a)
    }

    /// Records whose times are at the ends of the clock: every report, with wall-clock dates too.
    @Test func recordTimesAtTheEdges() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try rewriteFixture("nat-router", into: dir) { e, i in
            // the bundle's chunk times are SQLite integers: at most Int64.max
            if i == 3 { e.ts = UInt64(Int64.max) }
            if i == 7 { e.ts = 0 }
            if i == 11 { e.ts = 1 << 62 }
            return true
        }
        try Self.everyReport(try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil))
    }

    /// A byte changed inside a compressed chunk is found by zstd's checksum: the chunk is left out and
    /// said, never decoded into other packets.
    @Test func checksumFindsAFlippedByte() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try rewriteFixture("netfilter-drop", into: dir)
        let clean = try AnalysisDatabase.verify(bundlePath: path)
        #expect(!clean.damaged)
        #expect(clean.text.contains("every chunk has a zstd checksum"), "\(clean.text)")
        let db = try DatabaseQueue(path: path)
        var flipped = 0
        try db.write { db in
            for row in try Row.fetchAll(db, sql: "SELECT id, data FROM chunk") {
                var data: Data = row["data"]
                // past the frame header, inside the compressed blocks
                let at = data.count / 2
                data[at] ^= 0x10
                try db.execute(sql: "UPDATE chunk SET data = ? WHERE id = ?", arguments: [data, row["id"] as Int64])
                flipped += 1
            }
        }
        try db.close()
        let damaged = try AnalysisDatabase.verify(bundlePath: path)
        #expect(damaged.damaged)
        #expect(damaged.problems.filter { $0.contains("the chunk is skipped") }.count == flipped, "\(damaged.problems)")
    }

    /// An edited copy with the same recording id and the same size is a different bundle to the cache.
    @Test func editedCopyIsNotItsOriginal() throws {
        let cache = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let original = Fixture(name: "netfilter-drop").path
        let (dir, path) = try Self.damaged("netfilter-drop", "UPDATE drop_reason SET name = 'NETFILTER_DRAP' WHERE name = 'NETFILTER_DROP'")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sizes = try [original, path].map { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int }
        #expect(sizes[0] == sizes[1])
        let a = try AnalysisDatabase(bundlePath: original, cache: .directory(cache), progress: nil)
        let b = try AnalysisDatabase(bundlePath: path, cache: .directory(cache), progress: nil)
        #expect(a.path != b.path)
        #expect(try a.dropsReport(json: false).contains("NETFILTER_DROP"))
        #expect(try b.dropsReport(json: false).contains("NETFILTER_DRAP"))
    }

    /// A user rule that never ends is stopped at the time limit and reported broken; the others run.
    @Test func endlessRuleIsStopped() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            -- id: endless
            -- title: never ends
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
            SELECT NULL AS packet_id, NULL AS event_id, 'WARN' AS level, 'endless' AS code, 'x' AS message, NULL AS advice
            FROM c WHERE x < 0
            """.write(toFile: (dir as NSString).appendingPathComponent("endless.sql"), atomically: true, encoding: .utf8)
        let a = try Fixture(name: "netfilter-drop").open()
        let started = Date()
        let d = try a.diagnose(userRules: dir, limits: QueryLimits(seconds: 1, memory: 256 << 20))
        #expect(Date().timeIntervalSince(started) < 60)
        #expect(d.errors.contains { $0.description.contains("ran longer than 1 s") }, "\(d.errors)")
        #expect(try rows(a, "SELECT count(*) AS n FROM finding WHERE code = 'netfilter-drop'")[0]["n"] as Int > 0)
    }

    /// Files that are not whole bundles, each said for what it is.
    @Test func filesThatAreNotBundles() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func file(_ name: String, _ bytes: Data) throws -> String {
            let path = (dir as NSString).appendingPathComponent(name)
            try bytes.write(to: URL(fileURLWithPath: path))
            return path
        }
        let empty = try file("empty.skbt", Data())
        #expect(Self.refusal(empty) == "\(empty) is not an skbtrail bundle (it is empty). Give a file written by skbtrail-record -o FILE.")
        let text = try file("text.skbt", Data("hello\n".utf8))
        #expect(Self.refusal(text)?.contains("it is not an SQLite file") == true)
        let whole = try Data(contentsOf: URL(fileURLWithPath: Fixture(name: "netfilter-drop").path))
        let cut = try file("cut.skbt", whole.prefix(5000))
        #expect(Self.refusal(cut)?.hasPrefix("\(cut) is cut short (5000 bytes") == true)
        let pages = try file("pages.skbt", whole.prefix(8192))
        #expect(Self.refusal(pages)?.hasPrefix("\(pages) is damaged: SQLite finds its pages damaged") == true, "\(Self.refusal(pages) ?? "")")
        #expect(Self.refusal(dir) == "\(dir) is a directory. Give the path of a bundle file written by skbtrail-record -o FILE.")
        let journaled = try file("journaled.skbt", whole)
        _ = try file("journaled.skbt-journal", Data(repeating: 0xd9, count: 512))
        #expect(Self.refusal(journaled)?.contains("has a rollback journal beside it") == true)
    }

    /// User SQL that would exhaust the machine, hang or change the analysis is stopped with a sentence.
    @Test(arguments: [
        ("PRAGMA hard_heap_limit = 1000", "PRAGMA hard_heap_limit = 1000 is not allowed"),
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("ATTACH '/tmp/x.db' AS x", "ATTACH and DETACH are not allowed"),
        ("SELECT fts3_tokenizer('simple')", "the function fts3_tokenizer is not allowed"),
        ("SELECT length(randomblob(1000000000))", "longer than 100 MiB"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "ran longer than 1 s"),
        ("SELECT count(*) FROM ev a, ev b, ev c, ev d", "ran longer than 1 s"),
        ("SELECT length(zeroblob(500000000))", "longer than 100 MiB"),
        ("DELETE FROM diag_finding", "would change"),
    ])
    func hostileSQLStops(_ query: String, _ expected: String) throws {
        let a = try Fixture(name: "netfilter-drop").open()
        try a.diagnose()
        let started = Date()
        do {
            _ = try a.sqlReport(query, format: .csv, limits: QueryLimits(seconds: 1, memory: 256 << 20))
            Issue.record("\(query) ran")
        } catch {
            let text = AnalysisError.describe(error)
            #expect(text.contains(expected), "\(text)")
            #expect(!text.contains("GRDB") && !text.contains("\n"), "\(text)")
        }
        #expect(Date().timeIntervalSince(started) < 30)
    }

    /// The virtual tables answer user SQL directly, from a fresh analysis and from the cache.
    @Test func userSQLReadsTheVirtualTables() throws {
        let cache = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        for _ in 0..<2 {
            let a = try AnalysisDatabase(bundlePath: Fixture(name: "netfilter-drop").path, cache: .directory(cache), progress: nil)
            let events = try rows(a, "SELECT count(*) AS n FROM event")[0]["n"] as Int
            let packets = try rows(a, "SELECT count(*) AS n FROM packet")[0]["n"] as Int
            #expect(try a.sqlReport("SELECT count(*) AS n FROM ev", format: .csv) == "n\r\n\(events)\r\n")
            #expect(try a.sqlReport("SELECT count(*) AS n FROM pkt", format: .csv) == "n\r\n\(packets)\r\n")
        }
    }

    /// Many readers of one bundle at once, sharing one cache directory that none of them has filled
    /// yet: all of them succeed and all give the same answer.
    @Test func concurrentReadersOfOneBundle() async throws {
        let cache = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let path = Fixture(name: "nat-router").path
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let a = try AnalysisDatabase(bundlePath: path, cache: .directory(cache), progress: nil)
                    let d = try a.diagnose()
                    return try a.diagReport(d, options: DiagOptions(json: true)) + a.pathsReport(filter: PacketFilter(), options: PathsOptions())
                }
            }
            var all: [String] = []
            for try await o in group { all.append(o) }
            return all
        }
        #expect(outputs.count == 8)
        #expect(Set(outputs).count == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache)
        #expect(!files.contains { $0.contains(".partial-") }, "\(files)")
    }
}
