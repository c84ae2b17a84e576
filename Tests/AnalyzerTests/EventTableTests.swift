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
}
