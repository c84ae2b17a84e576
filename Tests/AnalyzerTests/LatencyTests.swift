import Foundation
import GRDB
import Testing
@testable import SkbtrailAnalysis

@Suite struct LatencyTests {
    static let delay = Fixture(name: "tcp/tcp-delay")

    @Test(arguments: [("5ms", Int64(5_000_000)), ("200us", 200_000), ("200µs", 200_000), ("1.5s", 1_500_000_000),
                      ("800ns", 800), ("250", 250_000_000_000), ("0", 0), ("2m", 120_000_000_000),
                      ("1h", 3_600_000_000_000), ("0.5", 500_000_000)])
    func parsesDurations(text: String, ns: Int64) {
        #expect(Duration.parse(text) == ns)
    }

    @Test func rejectsNonDurations() {
        for t in ["", "fast", "-1ms", "5 parsecs", "nan", "1e300s"] { #expect(Duration.parse(t) == nil, "\(t)") }
    }

    @Test(arguments: [(Int64(812), "812 ns"), (1234, "1.23 µs"), (19_840_000, "19.8 ms"), (123_400_000, "123 ms"),
                      (2_050_000_000, "2.05 s")])
    func printsDurationsWithTheirUnit(ns: Int64, text: String) {
        #expect(Duration.text(ns) == text)
    }

    @Test func histogramBucketsInTheMedianUnit() {
        let h = Log2Histogram([500_000, 20_000_000, 21_000_000, 17_000_000])
        #expect(h.unit == "ms")
        #expect(h.buckets.map(\.lo) == [0, 1, 2, 4, 8, 16])
        #expect(h.buckets.first?.count == 1)
        #expect(h.buckets.last?.count == 3)
        #expect(h.text().contains("16 -> 31 : 3"))
        let us = Log2Histogram([3_000, 5_000])
        #expect(us.unit == "µs" && us.unitKey == "us")
        #expect(us.buckets.map(\.lo) == [2, 4])
        let s = DurationStats([1, 2, 3, 4, 100])
        #expect(s.p50 == 3 && s.max == 100 && s.min == 1 && s.p99 == 100)
    }

    @Test func pathStepHasPerHopLatency() throws {
        let a = try Self.delay.open()
        let firsts = try rows(a, "SELECT count(*) AS n FROM path_step WHERE step = 1 AND hop_ns IS NOT NULL")
        #expect(firsts[0]["n"] as Int == 0)
        let wrong = try rows(a, """
            SELECT count(*) AS n FROM path_step b JOIN path_step p ON p.packet_id = b.packet_id AND p.step = b.step - 1
            WHERE b.hop_ns != b.ts - p.ts
            """)
        #expect(wrong[0]["n"] as Int == 0)
    }

    @Test func qdiscHopShowsTheTbfDelay() throws {
        let facts = try Self.delay.expect()
        let a = try Self.delay.open()
        let latency = (Int64(facts["tbf_latency_ms"] ?? "") ?? 0) * 1_000_000
        var o = LatencyOptions()
        o.from = "qdisc_enqueue"; o.to = "qdisc_dequeue"; o.json = true; o.minNs = 10_000_000; o.limit = 0
        let json = try a.latencyReport(filter: PacketFilter(), options: o)
        let obj = try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let stats = try #require(obj["stats"] as? [String: Any])
        let p50 = stats["p50_ns"] as? Int64 ?? Int64(stats["p50_ns"] as? Int ?? 0)
        let max = Int64(stats["max_ns"] as? Int ?? 0)
        // every packet the tbf sent went through enqueue and dequeue; most waited about its latency
        #expect(stats["count"] as? Int == Int(facts["qdisc_sent_packets"] ?? "").map { $0 - 8 } ?? -1 || (stats["count"] as? Int ?? 0) > 100)
        #expect(p50 >= latency / 2 && p50 <= latency + 5_000_000, "p50 \(p50) ns for tbf latency \(latency) ns")
        #expect(max <= latency + 5_000_000)
        let histogram = try #require(obj["histogram"] as? [String: Any])
        #expect(histogram["unit"] as? String == "ms")
        let buckets = try #require(histogram["buckets"] as? [[String: Any]])
        let peak = try #require(buckets.max { ($0["count"] as? Int ?? 0) < ($1["count"] as? Int ?? 0) })
        let lo = Int64(peak["lo_ns"] as? Int ?? 0), hi = Int64(peak["hi_ns"] as? Int ?? 0)
        #expect(lo <= latency && latency <= hi, "the fullest bucket holds the configured latency")
        // --min lists exactly the packets at least that slow
        let listed = try #require(obj["packet_list"] as? [[String: Any]])
        #expect(listed.count == obj["slow"] as? Int)
        #expect(listed.allSatisfy { ($0["span_ns"] as? Int ?? 0) >= 10_000_000 })
        let hops = try #require(obj["hops"] as? [[String: Any]])
        #expect(hops.first?["from"] as? String == "qdisc_enqueue")
        // text: labelled units and the hop table
        o.json = false; o.summaryOnly = true
        let text = try a.latencyReport(filter: PacketFilter(), options: o)
        #expect(text.contains("qdisc_enqueue -> qdisc_dequeue: "))
        #expect(text.contains("ms : count distribution"))
        #expect(text.contains("16 -> 31 : "))
    }

    @Test func stepNamesLikeTheProbeTable() throws {
        let a = try Self.delay.open()
        var o = LatencyOptions()
        o.from = "nf:ipv4:output"; o.to = "nf:ipv4:postrouting"; o.summaryOnly = true
        #expect(try a.latencyReport(filter: PacketFilter(), options: o).contains("nf:ipv4:output -> nf:ipv4:postrouting: "))
        o.from = "no_such_probe"
        #expect(throws: AnalysisError.self) { try a.latencyReport(filter: PacketFilter(), options: o) }
        // without --from/--to: each packet's lifetime, listed step by step
        var life = LatencyOptions()
        life.limit = 1
        let text = try a.latencyReport(filter: PacketFilter(), options: life)
        #expect(text.hasPrefix("packet 1  TCP "))
        #expect(text.contains("lifetime (first to last step): "))
    }
}
