import Foundation
import GRDB
import Testing
@testable import SkbtrailAnalysis

/// The TCP views, report and rules on the TCP fixtures (fixtures/record-tcp.sh), against each scenario's
/// own figures: the tbf's configured latency and drop counter, the DROP rule's counter, RetransSegs.
@Suite struct TCPTests {
    static let delay = Fixture(name: "tcp/tcp-delay")
    static let loss = Fixture(name: "tcp/tcp-loss")

    /// The client's connection (the sender of the transfer).
    func client(_ a: AnalysisDatabase, _ facts: [String: String]) throws -> Row {
        let conns = try rows(a, "SELECT * FROM tcp_connection WHERE laddr = '\(facts["client_addr"] ?? "")' AND rport = \(facts["tcp_port"] ?? "0")")
        #expect(conns.count == 1)
        return try #require(conns.first)
    }

    func ruleRows(_ a: AnalysisDatabase, _ name: String) throws -> [Row] {
        let sql = try String(contentsOf: packageRoot.appendingPathComponent("rules/\(name).sql"), encoding: .utf8)
        return try rows(a, sql)
    }

    @Test func delayFixtureHasTheConfiguredRTT() throws {
        let facts = try Self.delay.expect()
        let a = try Self.delay.open()
        let latency = Int64(facts["tbf_latency_ms"] ?? "") ?? 0
        #expect(latency > 0)
        let c = try client(a, facts)
        // the tbf queue stays full: the RTT is the queueing delay, at most tbf's latency plus a few ms
        let median: Int64 = c["srtt_median_us"]
        #expect(median >= latency * 1000 / 2 && median <= latency * 1000 + 5000, "median srtt \(median) µs for tbf latency \(latency) ms")
        #expect((c["srtt_max_us"] as Int64) <= latency * 1000 + 10000)
        #expect((c["rtt_samples"] as Int64) >= 20)
        #expect(c["netns_name"] as String? == facts["client_ns"])
        #expect(c["states"] as String? == "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>CLOSE")
        // tbf drops what would wait longer than its latency; TCP sends it again as new data, not a retransmission
        #expect(c["segments_out_dropped"] as Int64 == Int64(facts["qdisc_dropped"] ?? ""))
        #expect(c["retransmits"] as Int64 == Int64(facts["client_tcp_retranssegs"] ?? ""))
        let acked: Int64 = c["bytes_acked"], bytes = Int64(facts["bytes"] ?? "") ?? 0
        // tcp_probe fires only in ESTABLISHED: ACKs of the last flight, which arrive after the FIN went
        // out (FIN_WAIT1), are not sampled. So acked is the bytes sent less at most that flight.
        #expect(acked <= bytes + 1 && acked >= bytes - 16 * 1448, "acked \(acked) of \(bytes)")
        // the server side: its RTT is the handshake's, not delayed (no qdisc on its side)
        let server = try rows(a, "SELECT * FROM tcp_connection WHERE laddr = '\(facts["server_addr"] ?? "")' AND lport = \(facts["tcp_port"] ?? "0")")
        #expect(server.count == 1)
        #expect((server.first?["srtt_max_us"] as Int64? ?? 0) < latency * 1000 / 2)
        // tcp_sample rows carry the decoded socket fields
        let samples = try rows(a, "SELECT count(*) AS n, min(cwnd) AS cwnd FROM tcp_sample WHERE connection_id = \(c["id"] as Int64) AND kind = 'probe'")
        #expect(samples[0]["n"] as Int64 == c["samples"] as Int64)
        #expect((samples[0]["cwnd"] as Int64? ?? 0) > 0)
    }

    @Test func lossFixtureRetransmitsWhatTheRuleDropped() throws {
        let facts = try Self.loss.expect()
        let a = try Self.loss.open()
        let dropped = try #require(Int64(facts["drop_rule_packets"] ?? ""))
        let retrans = try #require(Int64(facts["client_tcp_retranssegs"] ?? ""))
        #expect(dropped > 0)
        let c = try client(a, facts)
        #expect(c["retransmits"] as Int64 == retrans)
        #expect(c["retransmits"] as Int64 >= dropped)   // every dropped segment is sent again
        #expect(c["total_retrans"] as Int64 == retrans)
        #expect(c["segments_out_dropped"] as Int64 == dropped)
        let drops = try rows(a, "SELECT nf_table, nf_hook, drop_reason FROM packet WHERE fate = 'dropped' AND dport = \(facts["tcp_port"] ?? "0")")
        #expect(drops.count == Int(dropped))
        for d in drops {
            #expect(d["drop_reason"] as String? == "NETFILTER_DROP")
            #expect(d["nf_hook"] as String? == "INPUT")
            #expect(d["nf_table"] as String? == "filter")
        }
        let samples = try rows(a, "SELECT t_ns, netns_name, laddr, rport FROM tcp_sample WHERE kind = 'retransmit'")
        #expect(samples.count == Int(retrans))
        #expect(samples.allSatisfy { $0["laddr"] as String? == facts["client_addr"] && $0["netns_name"] as String? == facts["client_ns"] })
    }

    @Test func tcpReportTextAndJSON() throws {
        let facts = try Self.loss.expect()
        let a = try Self.loss.open()
        let text = try a.tcpReport(options: TCPOptions())
        #expect(text.contains("connection 1  \(facts["client_addr"] ?? ""):"))
        #expect(text.contains("retrans  \(facts["client_tcp_retranssegs"] ?? "")"))
        #expect(text.contains("\(facts["drop_rule_packets"] ?? "") sent were dropped"))
        #expect(text.contains("CLOSE -> SYN_SENT"))
        #expect(text.contains("srtt histogram:"))
        var o = TCPOptions()
        o.json = true
        o.jsonLines = true
        o.filter.port = Int(facts["tcp_port"] ?? "")
        let lines = try a.tcpReport(options: o).split(separator: "\n")
        #expect(lines.count == 2)   // client and server sockets
        let first = try #require(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let retrans = try #require(first["retransmits"] as? [String: Any])
        #expect(retrans["count"] as? Int == Int(facts["client_tcp_retranssegs"] ?? ""))
        #expect((retrans["t_ns"] as? [Int])?.count == Int(facts["client_tcp_retranssegs"] ?? ""))
        let srtt = try #require(first["srtt"] as? [String: Any])
        #expect((srtt["median_ns"] as? Int ?? 0) > 0)
        #expect(((srtt["histogram"] as? [String: Any])?["buckets"] as? [Any])?.isEmpty == false)
        o.filter.addr = "192.0.2.1"
        #expect(try a.tcpReport(options: o) == "")
    }

    @Test func rulesFindTheSetUpProblems() throws {
        let d = try Self.delay.open(), l = try Self.loss.open()
        let dFacts = try Self.delay.expect()
        // the delay: high RTT to a local peer, and the queue in the tbf
        let rtt = try ruleRows(d, "tcp-high-rtt")
        #expect(rtt.count == 1)
        #expect((rtt.first?["message"] as String?)?.contains("to a peer on this host") == true)
        let queue = try ruleRows(d, "latency-qdisc-queue")
        #expect(queue.count == 1)
        #expect((queue.first?["message"] as String?)?.contains("tbf qdisc of \(dFacts["client_if"] ?? "")") == true)
        #expect(try ruleRows(d, "tcp-retrans-storm").isEmpty)
        // the loss: a retransmission storm pointing at the DROP rule
        let storm = try ruleRows(l, "tcp-retrans-storm")
        #expect(storm.count == 1)
        #expect((storm.first?["message"] as String?)?.contains("NETFILTER_DROP in filter INPUT") == true)
        #expect(storm.first?["packet_id"] as Int64? != nil)
        #expect(try ruleRows(l, "tcp-high-rtt").isEmpty)
        #expect(try ruleRows(l, "latency-qdisc-queue").isEmpty)
        for rule in ["tcp-zero-window", "latency-backlog", "latency-socket-queue"] {
            #expect(try ruleRows(d, rule).isEmpty, "\(rule) on tcp-delay")
            #expect(try ruleRows(l, rule).isEmpty, "\(rule) on tcp-loss")
        }
    }
}
