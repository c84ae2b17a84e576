import Foundation
import GRDB
import SkbtrailBundle
import Testing
@testable import SkbtrailAnalysis

/// Analysis of the committed fixture bundles, checked against each scenario's own facts.
@Suite struct FixtureTests {
    @Test(arguments: Fixture.all)
    func decodesEveryRecord(name: String) throws {
        let a = try Fixture(name: name).open()
        let stats = try #require(a.decodeStats)
        let records = try a.bundle.chunks().reduce(0) { $0 + $1.records }
        #expect(stats.events + stats.unknownRecords == records)
        #expect(stats.unknownRecords == 0)
        #expect(stats.packets > 0)
        let fates = Set(try rows(a, "SELECT DISTINCT fate FROM packet").map { $0["fate"] as String })
        #expect(fates.isSubset(of: ["dropped", "delivered", "transmitted", "forwarded", "consumed", "incomplete"]))
        // events are in time order and every packet step is numbered from 1
        let unordered = try rows(a, "SELECT count(*) AS n FROM ev a JOIN ev b ON b.id = a.id + 1 WHERE b.ts < a.ts")
        #expect(unordered[0]["n"] as Int == 0)
        let badSteps = try rows(a, "SELECT count(*) AS n FROM packet p WHERE (SELECT min(step) FROM path_step s WHERE s.packet_id = p.id) != 1")
        #expect(badSteps[0]["n"] as Int == 0)
    }

    @Test func netfilterDropFixtureYieldsTheDrops() throws {
        let fixture = Fixture(name: "netfilter-drop")
        let facts = try fixture.expect()
        let a = try fixture.open()
        let drops = try rows(a, "SELECT * FROM packet WHERE fate = 'dropped' AND drop_reason = 'NETFILTER_DROP'")
        #expect(drops.count == Int(facts["drop_rule_packets"] ?? ""))
        for d in drops {
            #expect(d["proto"] as String? == "ICMP")
            #expect(d["saddr"] as String? == facts["client_addr"])
            #expect(d["daddr"] as String? == facts["server_addr"])
            #expect(d["nf_family"] as String? == "ipv4")
            #expect(d["nf_hook"] as String? == "INPUT")   // drop_rule=filter INPUT -p icmp -j DROP
            #expect(d["nf_table"] as String? == "filter")
            #expect(d["netns_name"] as String? == facts["server_ns"])
            #expect(d["ifname"] as String? == facts["server_if"])
        }
        // the drop monitor groups them into one line
        let report = try a.dropsReport(json: true)
        let group = try #require(report.split(separator: "\n").first { $0.contains("NETFILTER_DROP") })
        #expect(group.contains("\"count\":\(facts["drop_rule_packets"] ?? "")"))
        #expect(group.contains("\"netfilter\":\"ipv4 INPUT filter\""))
        // the UDP datagram and the TCP connection were let through
        let udp = try rows(a, "SELECT fate FROM packet WHERE proto = 'UDP' AND dport = \(facts["udp_port"] ?? "0")")
        #expect(udp.map { $0["fate"] as String } == ["delivered"])
    }

    @Test func closedPortFixtureYieldsNoSocketDrops() throws {
        let fixture = Fixture(name: "closed-port")
        let facts = try fixture.expect()
        let a = try fixture.open()
        let tcp = try rows(a, "SELECT * FROM packet WHERE fate = 'dropped' AND proto = 'TCP' AND dport = \(facts["tcp_port"] ?? "0")")
        #expect(tcp.count == 1)
        #expect(tcp.first?["drop_reason"] as String? == "NO_SOCKET")
        #expect(tcp.first?["tuple"] as String? == "TCP \(facts["client_addr"] ?? ""):\(tcp.first?["sport"] as Int? ?? 0) > \(facts["server_addr"] ?? ""):\(facts["tcp_port"] ?? "") [S]")
        let udp = try rows(a, "SELECT * FROM packet WHERE fate = 'dropped' AND proto = 'UDP' AND dport = \(facts["udp_port"] ?? "0")")
        #expect(udp.count == Int(facts["server_udp_noports"] ?? ""))
        #expect(udp.first?["drop_reason"] as String? == "NO_SOCKET")
        #expect(udp.first?["netns_name"] as String? == facts["server_ns"])
        // one SYN sent (its clone, held by the neighbour queue, is not another segment), refused with
        // the one RST the server's TcpOutRsts counted
        let conn = try rows(a, "SELECT segments_out, segments_out_dropped, segments_in FROM tcp_connection WHERE netns_name = '\(facts["client_ns"] ?? "")' AND rport = \(facts["tcp_port"] ?? "0")")
        #expect(conn.count == Int(facts["client_tcp_attemptfails"] ?? ""))
        #expect(conn.first?["segments_out"] as Int? == 1)
        #expect(conn.first?["segments_out_dropped"] as Int? == 1)
        #expect(conn.first?["segments_in"] as Int? == Int(facts["server_tcp_outrsts"] ?? ""))
    }

    @Test func natRouterFixtureYieldsDNATAndMasquerade() throws {
        let fixture = Fixture(name: "nat-router")
        let f = try fixture.expect()
        let a = try fixture.open()
        let router = f["router_ns"]
        // DNAT: orig_daddr:orig_dport -> dnat_daddr:dnat_dport, in the router's PREROUTING nat table
        let tcpDNAT = try rows(a, """
            SELECT * FROM nat_rewrite WHERE kind = 'DNAT' AND proto = 'TCP' AND before_daddr = '\(f["orig_daddr"] ?? "")'
            """)
        #expect(!tcpDNAT.isEmpty)
        for r in tcpDNAT {
            #expect(r["before_dport"] as Int? == Int(f["orig_dport"] ?? ""))
            #expect(r["after_daddr"] as String? == f["dnat_daddr"])
            #expect(r["after_dport"] as Int? == Int(f["dnat_dport"] ?? ""))
            #expect(r["nf_hook"] as String? == "PREROUTING")
            #expect(r["nf_table"] as String? == "nat")
            #expect(r["netns_name"] as String? == router)
            #expect(r["ct_orig"] as String? == "TCP \(f["client_addr"] ?? ""):\(r["before_sport"] as Int? ?? 0) > \(f["orig_daddr"] ?? ""):\(f["orig_dport"] ?? "")")
        }
        let icmpDNAT = try rows(a, "SELECT * FROM nat_rewrite WHERE kind = 'DNAT' AND proto = 'ICMP' AND before_daddr = '\(f["orig_daddr"] ?? "")'")
        #expect(icmpDNAT.count == Int(f["pings"] ?? ""))
        #expect(icmpDNAT.allSatisfy { $0["after_daddr"] as String? == f["dnat_daddr"] })
        // MASQUERADE: client_addr -> snat_saddr in POSTROUTING, port kept
        let masq = try rows(a, "SELECT * FROM nat_rewrite WHERE kind = 'SNAT' AND before_saddr = '\(f["client_addr"] ?? "")'")
        #expect(!masq.isEmpty)
        for r in masq {
            #expect(r["after_saddr"] as String? == f["snat_saddr"])
            #expect(r["before_sport"] as Int? == r["after_sport"] as Int?)
            #expect(r["nf_hook"] as String? == "POSTROUTING")
            #expect(r["nf_table"] as String? == "nat")
        }
        // the conntrack reply tuple shows both NATs: dnat_daddr:dnat_dport > snat_saddr
        let replies = Set(tcpDNAT.compactMap { $0["ct_reply"] as String? })
        #expect(replies.contains { $0.hasPrefix("TCP \(f["dnat_daddr"] ?? ""):\(f["dnat_dport"] ?? "") > \(f["snat_saddr"] ?? ""):") })
        // paths shows the rewrite on the step where it happened
        let first = try #require(tcpDNAT.first)
        let text = try a.pathsReport(filter: { var p = PacketFilter(); p.packet = first["packet_id"]; return p }(), options: PathsOptions())
        #expect(text.contains("nf:ipv4:prerouting:-50"))
        #expect(text.contains("DNAT \(f["orig_daddr"] ?? ""):\(f["orig_dport"] ?? "") -> \(f["dnat_daddr"] ?? ""):\(f["dnat_dport"] ?? "")"))
        // the forwarded leg crosses three namespaces on one skb
        let crossings = try rows(a, "SELECT max(netns_count) AS n FROM packet")
        #expect(crossings[0]["n"] as Int == 3)
        // as many forwarded packets as the router's IpForwDatagrams counted: no two skb lives joined
        let forwarded = try rows(a, "SELECT sum(forwarded) AS n FROM packet")
        #expect(forwarded[0]["n"] as Int == Int(f["router_forwarded"] ?? ""))
    }

    @Test func afPacketFixtureYieldsCloneTrees() throws {
        let fixture = Fixture(name: "afpacket")
        let f = try fixture.expect()
        let a = try fixture.open()
        let clones = try rows(a, """
            SELECT c.*, p.head AS parent_head, k.head AS child_head, p.first_ts AS parent_start, k.first_ts AS child_start
            FROM clone c JOIN packet p ON p.id = c.parent_id JOIN packet k ON k.id = c.child_id
            """)
        #expect(clones.count >= Int(f["pings"] ?? "") ?? 1)
        for c in clones {
            #expect(c["inferred"] as Int == 1)
            #expect(c["parent_head"] as String == c["child_head"] as String)
            #expect((c["parent_start"] as Int64) <= (c["child_start"] as Int64))
        }
        // every echo reply to the client is a tree: its original and the clones read by sockets
        let trees = try rows(a, "SELECT parent_id, count(*) AS n FROM clone GROUP BY parent_id")
        #expect(trees.contains { ($0["n"] as Int) >= 2 })
        let text = try a.pathsReport(filter: PacketFilter(), options: PathsOptions())
        #expect(text.contains("  └─ packet "))
    }
}
