import Foundation
import GRDB
import Testing
@testable import SkbtrailAnalysis

/// Diagnosis on fixture bundles recorded by scripts/fault-scenarios.sh (fixtures/faults/) and
/// scripts/scenarios.sh (fixtures/): each fault yields its code, at its level, once per faulty packet.
struct DiagTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var fixture: String          // path under fixtures/ without .skbt
        var code: String
        var level: String
        var countKey: String?        // a key of the .expect file holding the expected count
        var count: Int?              // or a literal count
        var testDescription: String { "\(fixture): \(code)" }
    }

    static let cases: [Case] = [
        Case(fixture: "netfilter-drop", code: "netfilter-drop", level: "ERROR", countKey: "pings"),
        Case(fixture: "closed-port", code: "port-not-listening", level: "ERROR", count: 2),
        Case(fixture: "afpacket", code: "normal-free", level: "INFO", countKey: "pings"),
        Case(fixture: "nat-router", code: "nat", level: "INFO", count: nil),
        Case(fixture: "faults/iptables-forward-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "faults/nft-drop", code: "netfilter-drop", level: "ERROR", countKey: "datagrams"),
        Case(fixture: "faults/rp-filter", code: "rp-filter", level: "ERROR", countKey: "in_rpfilter_drops"),
        Case(fixture: "faults/no-route", code: "no-route", level: "ERROR", countKey: "router_in_noroutes"),
        Case(fixture: "faults/forwarding-disabled", code: "forwarding-disabled", level: "ERROR", countKey: "router_in_addr_errors"),
        Case(fixture: "faults/ttl-expired", code: "ttl-expired", level: "ERROR", countKey: "router_time_exceeded"),
        Case(fixture: "faults/mtu-too-big", code: "mtu-too-big", level: "ERROR", countKey: "router_frag_needed"),
        Case(fixture: "faults/neighbour-failure", code: "neighbour-failure", level: "ERROR", countKey: "pings"),
        Case(fixture: "faults/tc-ingress-drop", code: "tc-drop", level: "ERROR", countKey: "pings"),
        Case(fixture: "faults/xdp-drop", code: "xdp-drop", level: "ERROR", countKey: "pings"),
        Case(fixture: "faults/bad-checksum", code: "bad-checksum", level: "ERROR", countKey: "in_csum_errors"),
        Case(fixture: "faults/qdisc-loss", code: "tc-drop", level: "ERROR", count: 3),
        Case(fixture: "faults/qdisc-loss", code: "tcp-retransmit", level: "WARN", countKey: "syn_retrans"),
        Case(fixture: "faults/conntrack-invalid", code: "conntrack-invalid", level: "ERROR", countKey: "invalid_rule_packets"),
        Case(fixture: "faults/rcvbuf-full", code: "socket-rcvbuf-full", level: "ERROR", countKey: "rcvbuf_errors"),
        Case(fixture: "faults/tcp-reset", code: "tcp-reset-sent", level: "WARN", countKey: "server_out_rsts"),
        Case(fixture: "faults/tcp-reset", code: "tcp-reset-received", level: "WARN", count: 1),
        Case(fixture: "faults/listen-overflow", code: "tcp-retransmit", level: "WARN", count: nil),
    ]

    static func open(_ fixture: String) throws -> (AnalysisDatabase, Diagnosis, [String: String]) {
        let f = Fixture(name: fixture)
        let a = try f.open()
        return (a, try a.diagnose(), try f.expect())
    }

    @Test(arguments: cases)
    func faultFound(_ c: Case) throws {
        let (a, _, expect) = try Self.open(c.fixture)
        let rows = try a.reader.read { try Row.fetchAll($0, sql: "SELECT level, packet_id, message, advice FROM finding WHERE code = ?", arguments: [c.code]) }
        #expect(!rows.isEmpty, "no \(c.code) finding")
        for r in rows {
            #expect(r["level"] as String == c.level)
            let message: String = r["message"]
            #expect(!message.isEmpty)
            if c.level == "ERROR" { #expect(!((r["advice"] as String?) ?? "").isEmpty, "an ERROR without advice") }
        }
        var want = c.count
        if let key = c.countKey { want = Int(try #require(expect[key], "no \(key) in the .expect")) }
        if let want { #expect(rows.count == want) }
    }

    /// The cause of each fault scenario is the only ERROR code it yields.
    @Test(arguments: [
        ("faults/iptables-forward-drop", "netfilter-drop"), ("faults/nft-drop", "netfilter-drop"), ("faults/rp-filter", "rp-filter"),
        ("faults/no-route", "no-route"), ("faults/forwarding-disabled", "forwarding-disabled"), ("faults/ttl-expired", "ttl-expired"),
        ("faults/mtu-too-big", "mtu-too-big"), ("faults/neighbour-failure", "neighbour-failure"), ("faults/tc-ingress-drop", "tc-drop"),
        ("faults/qdisc-loss", "tc-drop"), ("faults/conntrack-invalid", "conntrack-invalid"), ("faults/rcvbuf-full", "socket-rcvbuf-full"),
        ("netfilter-drop", "netfilter-drop"), ("closed-port", "port-not-listening"), ("faults/xdp-drop", "xdp-drop"), ("faults/bad-checksum", "bad-checksum"),
    ])
    func onlyErrorIsTheCause(_ fixture: String, _ code: String) throws {
        let (a, _, _) = try Self.open(fixture)
        let codes = try a.reader.read { try String.fetchAll($0, sql: "SELECT DISTINCT code FROM finding WHERE level = 'ERROR'") }
        #expect(codes == [code])
    }

    @Test(arguments: ["faults/healthy", "afpacket", "nat-router"])
    func healthyHasNoError(_ fixture: String) throws {
        let (a, d, _) = try Self.open(fixture)
        let errors = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE level = 'ERROR'") }
        #expect(errors == 0)
        let text = try a.diagReport(d)
        #expect(!text.contains("ERROR ") && !text.contains("[ERROR]"), "an ERROR in the report")
        #expect(text.contains("summary: "))
        let quiet = try a.diagReport(d, options: DiagOptions(quiet: true))
        #expect(quiet.hasPrefix("no packet has a WARN or ERROR finding"))
    }

    @Test func netfilterDropNamesTheRuleAndTable() throws {
        let (a, _, _) = try Self.open("faults/iptables-forward-drop")
        let r = try #require(try a.reader.read { try Row.fetchOne($0, sql: "SELECT message, advice, confidence FROM finding WHERE code = 'netfilter-drop'") })
        #expect((r["message"] as String).contains("filter table, ipv4 FORWARD hook of netns sf-r"))
        #expect((r["advice"] as String).contains("-A FORWARD -p icmp -j DROP"))
        #expect(r["confidence"] as String == "certain")
        let nft = try Self.open("faults/nft-drop").0
        let advice = try nft.reader.read { try String.fetchOne($0, sql: "SELECT advice FROM finding WHERE code = 'netfilter-drop'") }
        #expect(advice?.contains("udp dport 6003") == true)
    }

    @Test func quietReportNamesCauseAndFix() throws {
        let (a, d, _) = try Self.open("faults/rp-filter")
        let text = try a.diagReport(d, options: DiagOptions(quiet: true))
        #expect(text.contains("ERROR rp-filter: dropped by reverse path filtering (rp_filter) on sf-b0 in netns sf-b"))
        #expect(text.contains("fix: add a route to 10.210.99.1 via sf-b0"))
        #expect(text.contains("ERROR  rp-filter       3"))
        let json = try a.diagReport(d, options: DiagOptions(quiet: true, json: true))
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect((object?["packets"] as? [Any])?.count == 3)
    }

    @Test func everyKernelDropReasonIsExplained() throws {
        for fixture in ["netfilter-drop", "faults/healthy"] {
            let (a, _, _) = try Self.open(fixture)
            let missing = try a.reader.read {
                try String.fetchAll($0, sql: """
                    SELECT name FROM bundle_drop_reason WHERE name NOT IN ('MAX', 'SUBSYS_MASK')
                    AND name NOT IN (SELECT name FROM drop_reason_kb)
                    """)
            }
            #expect(missing.isEmpty, "no explanation for \(missing)")
            let names = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM bundle_drop_reason") }
            #expect((names ?? 0) > 100)
        }
    }

    @Test func inferredWhenProbeMissing() throws {
        // ttl-expired was recorded with one probe not attached; rules needing it say so
        let (a, _, _) = try Self.open("faults/ttl-expired")
        let missing = try a.reader.read { try Row.fetchAll($0, sql: "SELECT id, missing FROM rule WHERE missing != ''") }
        let inferred = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE confidence = 'inferred' AND inferred LIKE 'not proven: %'") }
        for r in missing { #expect((r["missing"] as String).contains("not attached") || (r["missing"] as String).contains("not in this recording")) }
        if missing.contains(where: { ($0["id"] as String) == "ttl-expired" }) { #expect((inferred ?? 0) > 0) }
    }

    @Test func brokenUserRuleIsReportedByLineAndOthersRun() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            -- id: my-broken
            -- title: broken on purpose
            -- level: WARN
            SELECT id AS packet_id, NULL AS event_id, 'WARN' AS level, 'x' AS code,
                   'm' AS message, NULL AS advice
            FROM packet WHERE fate = = 'dropped'
            """.write(toFile: dir + "/broken.sql", atomically: true, encoding: .utf8)
        try """
            -- id: my-drops
            -- title: every drop
            -- level: WARN
            -- needs: kfree_skb, no_such_probe
            SELECT id AS packet_id, last_event AS event_id, 'WARN' AS level, 'my-drop' AS code,
                   'dropped: ' || drop_reason AS message, 'look' AS advice
            FROM packet WHERE fate = 'dropped'
            """.write(toFile: dir + "/drops.sql", atomically: true, encoding: .utf8)
        let a = try Fixture(name: "netfilter-drop").open()
        let d = try a.diagnose(userRules: dir)
        #expect(d.errors.count == 1)
        #expect(d.errors.first?.description.hasPrefix(dir + "/broken.sql:6: ") == true)
        let mine = try a.reader.read { try Row.fetchAll($0, sql: "SELECT confidence, inferred FROM finding WHERE code = 'my-drop'") }
        let dropped = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM packet WHERE fate = 'dropped'") }
        #expect(mine.count == dropped && mine.count >= 5, "one finding per dropped packet, the 5 pings at least")
        #expect(mine.allSatisfy { ($0["inferred"] as String?)?.contains("no_such_probe is not in this recording") == true })
        #expect(try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE code = 'netfilter-drop'") } == 5)
        let listing = try Diagnosis.rulesReport(userDirectory: dir, analysis: nil, json: false)
        #expect(listing.contains("my-drops *"))
        #expect(listing.contains("rule error: \(dir)/broken.sql:6: "))
    }

    @Test func builtinRulesParseAndCompile() throws {
        let rules = DiagnosisRule.builtin()
        #expect(rules.count == EmbeddedRules.files.count)
        #expect(Set(rules.map(\.id)).count == rules.count)
        #expect(try Diagnosis.checkWithoutBundle(rules).isEmpty)
    }
}
