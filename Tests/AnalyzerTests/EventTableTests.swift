import Foundation
import GRDB
import Testing
@testable import SkbtrailAnalysis

/// The `ev` virtual table's ways in give the rows SQLite itself would give.
@Suite struct EventTableTests {
    /// (pattern, text): LIKE cases where a matcher could go wrong; SQLite's own like() is the oracle.
    static let likeCases: [(String, String)] = [
        ("nf:%", "nf:ipv4:input:-1000"), ("NF:%", "nf:ipv4:input:-1000"), ("nf:%", "net_dev_queue"),
        ("nf:%:input:%", "nf:ipv4:input:-1000"), ("nf:%:input:%", "nf:ipv4:output:-1000"),
        ("net_dev%", "net_dev_queue"), ("net_dev%", "netXdev_xmit"), ("net_dev%", "net_de"),
        ("N_T%", "net_dev_queue"), ("%skb", "kfree_skb"), ("%skb", "kfree_skb_reason"), ("%_skb", "_skb"),
        ("%", ""), ("", ""), ("", "x"), ("_", ""), ("_", "é"), ("__", "é"), ("%a%b%", "xaybz"), ("%a%b", "ab_b_a"),
        ("é%", "É"), ("é%", "éa"), ("[a]%", "[a]x"), ("a*", "a*"), ("a*", "ab"), ("%%%x", "yyx"),
    ]

    @Test func likePatternMatchesAsSQLite() throws {
        let db = try DatabaseQueue()
        for (pattern, text) in EventTableTests.likeCases {
            let sqlite = try db.read { try Bool.fetchOne($0, sql: "SELECT ? LIKE ?", arguments: [text, pattern]) }
            #expect(LikePattern(pattern).matches(text) == sqlite, "\(text) LIKE \(pattern)")
        }
    }

    /// `probe_name LIKE` is served from the probe names (plan 4, without decoding every record): the
    /// same rows in the same order as a scan on which SQLite checks LIKE itself (`+probe_name` is an
    /// expression, which no plan serves), ignoring ASCII case and taking `_` as one character.
    @Test func probeNameLikeGivesTheRowsOfAScan() throws {
        let a = try Fixture(name: "nat-router").open()
        func ids(_ condition: String) throws -> [Int] {
            try rows(a, "SELECT id FROM event WHERE \(condition)").map { $0["id"] as Int }
        }
        func plan(_ condition: String) throws -> String {
            try rows(a, "EXPLAIN QUERY PLAN SELECT id FROM ev WHERE \(condition)").map { $0["detail"] as String }.joined(separator: "; ")
        }
        for pattern in ["nf:%", "NF:%", "Nf:IPv4:%:INPUT:%", "net_dev%", "NET_DEV_QUEUE", "n_t%", "%_skb", "%", "", "nf:_"] {
            let pushed = try ids("probe_name LIKE '\(pattern)'")
            #expect(pushed == (try ids("+probe_name LIKE '\(pattern)'")), "\(pattern)")
            #expect(try plan("probe_name LIKE '\(pattern)'").contains("VIRTUAL TABLE INDEX 4:"), "\(pattern)")
        }
        let netfilter = try ids("probe_name LIKE 'NF:%'")
        #expect(!netfilter.isEmpty)
        #expect(netfilter == (try ids("lower(probe_name) GLOB 'nf:*' ORDER BY id")))
        #expect(try ids("probe_name LIKE 'n_t_dev_queue'") == (try ids("probe_name = 'net_dev_queue'")))
        #expect(try ids("probe_name LIKE 'nf:_'").isEmpty)
        // not pushed (ESCAPE), or pushed with a value known only when the statement runs: the same rows
        #expect(try ids("probe_name LIKE 'nf:%' ESCAPE '\\'") == netfilter)
        #expect(!(try plan("probe_name LIKE 'nf:%' ESCAPE '\\'").contains("INDEX 4:")))
        #expect(try ids("probe_name LIKE (SELECT 'NF' || ':%')") == netfilter)
        #expect(try ids("probe_name LIKE NULL").isEmpty)
        #expect(try ids("probe_name LIKE 5").isEmpty)
        // the other ways in are preferred where a query offers them
        #expect(try plan("probe_name = 'kfree_skb' AND probe_name LIKE 'k%'").contains("INDEX 3:"))
    }

    /// `pkt` serves `fate`, `drop_reason_name` and `proto` by `=` or `IN` from the packet lists of the
    /// decode (plans 2-4): the rows, in the order, a scan gives (`+fate` is an expression, which no plan
    /// serves); another collation than BINARY, and a value of another type, still get SQLite's answer.
    @Test func packetValueListsGiveTheRowsOfAScan() throws {
        for fixture in ["netfilter-drop", "faults/noisy-host"] {
            let a = try Fixture(name: fixture).open()
            func ids(_ condition: String) throws -> [Int] {
                try rows(a, "SELECT id FROM pkt WHERE \(condition) ORDER BY id").map { $0["id"] as Int }
            }
            func plan(_ condition: String) throws -> String {
                try rows(a, "EXPLAIN QUERY PLAN SELECT id FROM pkt WHERE \(condition)").map { $0["detail"] as String }.joined(separator: "; ")
            }
            var served = 0
            for (column, index) in [("fate", 2), ("drop_reason_name", 3), ("proto", 4)] {
                let values = try rows(a, "SELECT DISTINCT \(column) AS v FROM pkt WHERE \(column) IS NOT NULL").map { $0["v"] as String }
                for v in values + ["no-such-value"] {
                    let listed = try ids("\(column) = '\(v)'")
                    #expect(listed == (try ids("+\(column) = '\(v)'")), "\(fixture): \(column) = \(v)")
                    #expect(try plan("\(column) = '\(v)'").contains("INDEX \(index):"), "\(fixture): \(column) = \(v)")
                    served += listed.count
                }
                let some = values.prefix(2).map { "'\($0)'" }.joined(separator: ", ")
                if !some.isEmpty {
                    #expect(try ids("\(column) IN (\(some))") == (try ids("+\(column) IN (\(some))")), "\(fixture): \(column) IN")
                }
                if let v = values.first {
                    #expect(try ids("\(column) = upper('\(v)') COLLATE NOCASE") == (try ids("+\(column) = upper('\(v)') COLLATE NOCASE")))
                    #expect(try ids("\(column) = (SELECT '\(v)')") == (try ids("+\(column) = '\(v)'")))
                }
                #expect(try ids("\(column) = 5").isEmpty)
            }
            #expect(served > 0)
            // the most selective list is the one read, with the other constraint checked by SQLite
            #expect(try ids("fate = 'dropped' AND proto = 'TCP'") == (try ids("+fate = 'dropped' AND +proto = 'TCP'")))
        }
    }

    /// Output passes on in pieces of whole lines (whole characters where a line is longer than a piece):
    /// a character split between two pieces would turn into two replacement characters.
    @Test func textSinkNeverSplitsACharacter() throws {
        var pieces: [String] = []
        let sink = TextSink { pieces.append($0) }
        let line = String(repeating: "é→", count: 50) + "\n", long = String(repeating: "€", count: 40_000)
        var expected = ""
        for _ in 0..<2000 { sink.append(line); expected += line }
        sink.appendBytes { $0 += long.utf8 }
        sink.appendBytes { $0 += ("x" + long).utf8 }  // no line end in the buffer now: cut between characters
        expected += long + "x" + long
        sink.flush()
        #expect(pieces.count > 2)
        #expect(pieces.joined() == expected)
        #expect(!pieces.joined().contains("\u{FFFD}"))
    }
}
