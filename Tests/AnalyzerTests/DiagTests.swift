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
        // the kernel matrix's kernels, without netfilter links: the chains' verdicts (tier 3) instead
        Case(fixture: "kernels/5.10/netfilter-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "kernels/6.1/netfilter-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "kernels/6.12/netfilter-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "kernels/6.1/nat-router", code: "nat", level: "INFO", count: nil),
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
        // each SYN the full accept queue refused, as many as the kernel's TcpExtListenOverflows counted
        Case(fixture: "faults/listen-overflow", code: "listen-overflow", level: "ERROR", countKey: "listen_overflows"),
        Case(fixture: "faults/bridge-nft-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "faults/partial-netns", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "faults/bridge-iptables-drop", code: "netfilter-drop", level: "ERROR", countKey: "drop_rule_packets"),
        Case(fixture: "faults/nat-closed-port", code: "port-not-listening", level: "ERROR", countKey: "server_out_rsts"),
        // every ping refused (the ICMP errors, fewer by the kernel's rate limit, are counted below)
        Case(fixture: "faults/policy-prohibit", code: "route-refused", level: "ERROR", countKey: "pings"),
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
        ("faults/listen-overflow", "listen-overflow"), ("faults/bridge-nft-drop", "netfilter-drop"), ("faults/partial-netns", "netfilter-drop"),
        ("faults/nat-closed-port", "port-not-listening"), ("faults/policy-prohibit", "route-refused"),
        ("faults/bridge-iptables-drop", "netfilter-drop"),
    ])
    func onlyErrorIsTheCause(_ fixture: String, _ code: String) throws {
        let (a, _, _) = try Self.open(fixture)
        let codes = try a.reader.read { try String.fetchAll($0, sql: "SELECT DISTINCT code FROM finding WHERE level = 'ERROR'") }
        #expect(codes == [code])
    }

    @Test(arguments: ["faults/healthy", "afpacket", "nat-router", "faults/noisy-host", "faults/ipv6-forwarding-noise"])
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
        // the rule whose counter rose, with the kernel's own count (iptables -L -v) from the .expect
        let expect = try Fixture(name: "faults/iptables-forward-drop").expect()
        let n = try #require(expect["drop_rule_packets"])
        #expect((r["message"] as String).contains("ipv4 family, filter table, FORWARD chain of netns sf-r"))
        #expect((r["message"] as String).contains("the rule \"-A FORWARD -p icmp -j DROP\" matched \(n) packets during the recording"))
        #expect((r["advice"] as String).contains("ip netns exec sf-r iptables -t filter -D FORWARD -p icmp -j DROP"))
        #expect(r["confidence"] as String == "certain")
        let nft = try Self.open("faults/nft-drop").0
        let found = try #require(try nft.reader.read { try Row.fetchOne($0, sql: "SELECT message, advice FROM finding WHERE code = 'netfilter-drop'") })
        #expect((found["message"] as String).contains("nft table inet sffilter, input chain"))
        #expect((found["message"] as String).contains("udp dport 6003"))
        #expect((found["advice"] as String).contains("nft -a list chain inet sffilter input"))
    }

    /// An nft rule of a bridge table drops frames between two bridge ports: named as the bridge family,
    /// its table and chain, not as the IPv4 hook br_netfilter's brackets saw last.
    @Test func bridgeFamilyDropIsNamedAsSuch() throws {
        let (a, _, _) = try Self.open("faults/bridge-nft-drop")
        let rows = try a.reader.read { try Row.fetchAll($0, sql: "SELECT message, advice FROM finding WHERE code = 'netfilter-drop'") }
        #expect(!rows.isEmpty)
        for r in rows {
            let message: String = r["message"], advice: String = r["advice"]
            #expect(message.contains("bridge family, nft table bridge sfbridge, forward chain (forward hook) of netns sf-h"))
            #expect(!message.contains("PREROUTING") && !message.contains("after priority"))
            #expect(advice.contains("ip netns exec sf-h nft -a list chain bridge sfbridge forward"))
            #expect(!advice.contains("iptables -t after"))
        }
    }

    /// br_netfilter hands bridged IPv4 to iptables: the FORWARD rule is named, and the drop as bridged.
    @Test func brNetfilterDropIsNamedAsBridged() throws {
        let (a, _, _) = try Self.open("faults/bridge-iptables-drop")
        let rows = try a.reader.read { try String.fetchAll($0, sql: "SELECT message FROM finding WHERE code = 'netfilter-drop'") }
        #expect(!rows.isEmpty)
        for m in rows {
            #expect(m.contains("ipv4 family, filter table, FORWARD chain of netns sf-h"))
            #expect(m.contains("bridged traffic that br_netfilter handed to the ipv4 hooks: net.bridge.bridge-nf-call-iptables=1"))
        }
    }

    /// Recorded with --netns sf-a while sf-b's INPUT drops: sf-b's hooks had no brackets, so no hook of
    /// sf-a (where the skb's last bracket was) is blamed, and the advice holds no placeholder.
    @Test func dropInUnrecordedNamespaceNamesNoHook() throws {
        let (a, _, _) = try Self.open("faults/partial-netns")
        let rows = try a.reader.read { try Row.fetchAll($0, sql: "SELECT message, advice, confidence FROM finding WHERE code = 'netfilter-drop'") }
        #expect(!rows.isEmpty)
        for r in rows {
            let message: String = r["message"], advice: String = r["advice"]
            #expect(message.contains("which was not recorded"))
            #expect(!message.contains("POSTROUTING") && !message.contains("sf-a"))
            #expect(!advice.contains("exec NS ") && !advice.contains("-t after"))
            #expect(r["confidence"] as String == "inferred")
        }
        let nfHooks = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM packet WHERE drop_reason = 'NETFILTER_DROP' AND nf_hook IS NOT NULL") }
        #expect(nfHooks == 0)
        // nor does the drop's step in paths
        let text = try a.pathsReport(filter: PacketFilter(), options: PathsOptions())
        let drops = text.split(separator: "\n").filter { $0.contains("kfree_skb") && $0.contains("NETFILTER_DROP") }
        #expect(!drops.isEmpty)
        #expect(drops.allSatisfy { !$0.contains("POSTROUTING") }, "\(drops)")
    }

    /// A SYN DNATed to a closed port is named with the address and port it had where it was refused, and
    /// the rewrite that brought it there.
    @Test func natAwarePortNotListening() throws {
        let (a, _, _) = try Self.open("faults/nat-closed-port")
        let r = try #require(try a.reader.read { try Row.fetchOne($0, sql: "SELECT message, advice FROM finding WHERE code = 'port-not-listening'") })
        let message: String = r["message"]
        #expect(message.contains("nothing listens on TCP port 80 at 10.210.35.2 in netns sf-b"))
        #expect(message.contains("it was sent to 10.210.34.2:8080 and rewritten on the way (DNAT 10.210.34.2:8080 -> 10.210.35.2:80 in netns sf-r at PREROUTING)"))
        #expect((r["advice"] as String).contains("--dport 8080 -j DNAT --to-destination 10.210.35.2:80"))
    }

    /// A policy routing rule prohibits the pings: named, with the rule from the ip-rule snapshot.
    @Test func routeRefusedNamesTheRule() throws {
        let (a, _, expect) = try Self.open("faults/policy-prohibit")
        let rows = try a.reader.read { try Row.fetchAll($0, sql: "SELECT message, advice FROM finding WHERE code = 'route-refused'") }
        #expect(!rows.isEmpty)
        for r in rows {
            #expect((r["message"] as String).contains("refused by routing in netns sf-r on sf-r0: a prohibit rule or route"))
            #expect((r["advice"] as String).contains("from 10.210.36.1 to 10.210.37.2 prohibit"))
            #expect((r["advice"] as String).contains("ip -n sf-r rule del priority "))
        }
        // the findings that saw the kernel's ICMP error are as many as the router's IcmpOutDestUnreachs
        let answered = rows.filter { ($0["message"] as String).contains("the kernel answered ICMP administratively prohibited") }.count
        #expect(answered == Int(try #require(expect["router_out_dest_unreachs"])))
    }

    /// A copy of fixture `name` whose snapshot rows `edits` (SQL on the bundle) changed: an edited copy
    /// gets its own analysis (the cache key covers the metadata).
    static func edited(_ name: String, in dir: String, _ edits: String) throws -> AnalysisDatabase {
        let path = (dir as NSString).appendingPathComponent("\(name.replacingOccurrences(of: "/", with: "-"))-edited.skbt")
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: Fixture(name: name).path, toPath: path)
        let q = try DatabaseQueue(path: path)
        try q.write { try $0.execute(sql: edits) }
        try q.close()
        return try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
    }

    /// An unrelated rule whose counter rose (ssh traffic dropped in the same chain) is not named as the
    /// cause: only a rule that could match the packet is, and the brackets' hook stays.
    @Test func anUnrelatedCountingRuleIsNotTheCause() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.edited("faults/nft-drop", in: dir, """
            UPDATE snapshot SET content = replace(content, 'udp dport 6003 counter packets 0 bytes 0 drop',
                'udp dport 6003 counter packets 0 bytes 0 drop' || char(10) || 'tcp dport 22 counter packets 0 bytes 0 drop')
            WHERE source = 'nft' AND phase = 'start';
            UPDATE snapshot SET content = replace(content, 'udp dport 6003 counter packets 3 bytes 93 drop',
                'udp dport 6003 counter packets 3 bytes 93 drop' || char(10) || 'tcp dport 22 counter packets 50 bytes 3000 drop')
            WHERE source = 'nft' AND phase = 'end';
            """)
        _ = try a.diagnose()
        let hits = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM counter_delta WHERE name = 'tcp dport 22 counter drop' AND delta = 50") }
        #expect(hits == 1, "the edit did not take")
        let rows = try a.reader.read { try Row.fetchAll($0, sql: "SELECT message, advice, confidence FROM finding WHERE code = 'netfilter-drop'") }
        #expect(rows.count == 3)
        for r in rows {
            #expect((r["message"] as String).contains("the rule \"udp dport 6003 counter drop\" matched 3 packets"))
            #expect(!(r["message"] as String).contains("dport 22") && !(r["advice"] as String).contains("dport 22"))
            #expect(r["confidence"] as String == "certain")
        }
    }

    /// A DNATed connection that was accepted is no listen overflow, even where TcpExtListenOverflows rose
    /// in its namespace: its SYN-ACK is found by the addresses the SYN had after NAT.
    @Test func aDNATedConnectionIsNoListenOverflow() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.edited("nat-router", in: dir, """
            INSERT INTO snapshot (netns, phase, source, content) VALUES
              ((SELECT inode FROM netns WHERE name = 'st-ns'), 'start', 'proc-net-snmp', 'TcpExt: ListenOverflows' || char(10) || 'TcpExt: 0'),
              ((SELECT inode FROM netns WHERE name = 'st-ns'), 'end', 'proc-net-snmp', 'TcpExt: ListenOverflows' || char(10) || 'TcpExt: 1');
            """)
        _ = try a.diagnose()
        let overflows = try a.reader.read { try Int.fetchOne($0, sql: "SELECT delta FROM counter_delta WHERE name = 'TcpExtListenOverflows'") }
        #expect(overflows == 1, "the edit did not take")
        let found = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE code = 'listen-overflow'") }
        #expect(found == 0)
    }

    /// The listen-overflow findings cite the kernel's counter, whose delta equals what the scenario read.
    @Test func listenOverflowCitesTheCounter() throws {
        let (a, _, expect) = try Self.open("faults/listen-overflow")
        let n = try #require(expect["listen_overflows"])
        let message = try #require(try a.reader.read { try String.fetchOne($0, sql: "SELECT message FROM finding WHERE code = 'listen-overflow'") })
        #expect(message.contains("TcpExtListenOverflows +\(n) in this namespace during the recording"))
        #expect(message.contains("listener 10.210.18.2:6018 backlog 0"))
    }

    /// IPv6 routers whose link comes up: their MLD reports to ff02::16 find no route on the receiving
    /// side, as many as the kernel's Ip6InNoRoutes counted; link-local multicast is never routed, so
    /// they are normal, not an ERROR with advice to add a route.
    @Test func linkLocalMulticastWithoutRouteIsNormal() throws {
        let (a, _, expect) = try Self.open("faults/ipv6-forwarding-noise")
        let n = try a.reader.read {
            try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE code = 'normal-free' AND level = 'INFO' AND message LIKE 'link-local multicast to ff02::%found no route%'")
        }
        let want = try #require(expect["in_no_routes6"])
        #expect(n == Int(want))
        #expect((n ?? 0) > 0, "the recording has no such drop")
        let noRoute = try a.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM finding WHERE code = 'no-route'") }
        #expect(noRoute == 0)
    }

    /// A recording of a host's normal noise (bridge ports and veths coming up with IPv6, MLD, neighbour
    /// and router solicitations, IGMP, netlink, then healthy ping, ping6, TCP and UDP) has none of it
    /// reported as a fault, and its netlink skbs are not taken for IPv4.
    @Test func normalNoiseIsInfo() throws {
        let (a, _, _) = try Self.open("faults/noisy-host")
        let counts = try a.reader.read { db in
            try Row.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM finding WHERE level IN ('WARN', 'ERROR')) AS faults,
                       (SELECT count(*) FROM finding WHERE code = 'normal-free' AND message LIKE '%multicast to ff02::%') AS mld,
                       (SELECT count(*) FROM packet WHERE proto LIKE 'IPv4 proto %') AS bogus,
                       (SELECT count(*) FROM packet WHERE tuple LIKE 'no protocol%') AS local
                """)
        }
        let row = try #require(counts)
        #expect(row["faults"] as Int == 0)
        #expect(row["mld"] as Int > 0, "the recording has no IPv6 multicast noise to classify")
        #expect(row["bogus"] as Int == 0)
        #expect(row["local"] as Int > 0)
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
