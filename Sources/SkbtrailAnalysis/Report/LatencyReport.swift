import Foundation
import GRDB

/// What `skbtrail latency` measures and shows.
public struct LatencyOptions: Sendable {
    /// Measure from the first step at this probe (a name from the probe table; a netfilter name without
    /// its priority, such as nf:ipv4:prerouting, matches any bracket of that hook)...
    public var from: String?
    /// ...to the first step at this probe after it. Without from/to, a packet's lifetime is measured.
    public var to: String?
    /// List only packets whose measured time is at least this.
    public var minNs: Int64?
    /// At most this many packets listed (0: all).
    public var limit = 50
    /// Statistics and histograms only, no packet list.
    public var summaryOnly = false
    public var json = false
    public init() {}
}

extension AnalysisDatabase {
    struct LatencyStep {
        var step: Int64
        var ts: Int64
        var probe: String
        /// Where the step was (names looked up for the packets listed).
        var netns: Int64
        var ifindex: Int64
        var ifname: String? = nil
        var netnsName: String? = nil
    }

    struct LatencyPacket {
        var id: Int64
        var tuple = ""
        var fate = ""
        var steps: [LatencyStep] = []
        var span: Int64 = 0
        var spanFrom = 0
        var spanTo = 0
        var lifetime: Int64 { (steps.last?.ts ?? 0) &- (steps.first?.ts ?? 0) }
    }

    /// Whether a step's probe name is what the user named.
    static func probeMatches(_ name: String, _ wanted: String) -> Bool {
        name == wanted || name.hasPrefix(wanted + ":")
    }

    /// `skbtrail latency`: per packet, the time of each step since the previous and the lifetime; the
    /// time between two named steps over all packets as statistics and a log2 histogram; the hops
    /// (pairs of consecutive probes) where packets spent the most time.
    public func latencyReport(filter: PacketFilter, options: LatencyOptions) throws -> String {
        if (options.from == nil) != (options.to == nil) {
            throw AnalysisError.message("give both --from and --to (the two steps to measure between), or neither to measure each packet's lifetime.")
        }
        let (cond, args) = try reader.read { db in try filter.sql(db) }
        let known = try reader.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT name FROM probe_events") }
        for name in [options.from, options.to].compactMap({ $0 }) where !known.contains(where: { AnalysisDatabase.probeMatches($0, name) }) {
            throw AnalysisError.message(known.isEmpty
                ? "no step at probe '\(name)': this recording has no events at all."
                : "no step at probe '\(name)' in this recording. Probes with events: \(known.sorted().joined(separator: ", ")).")
        }
        // Packets stream through: each is measured when its last step has been read, and kept only
        // while it is to be listed. What stays is a span per packet and a duration per hop.
        var packetCount = 0
        var spans: [Int64] = []
        var without = 0
        var slowCount = 0
        var listed: [LatencyPacket] = []
        // per hop (the probe keys of its two steps, EventSource.probeKey): its names and durations
        var hopTimes: [Int: (from: String, to: String, values: [Int64])] = [:]
        // whether a probe (by key) is what --from and --to name
        var isFrom: [Int: Bool] = [:], isTo: [Int: Bool] = [:]
        var steps: [LatencyStep] = [], keys: [Int] = []
        /// Measures the packet whose steps (and their probes' keys) are in `steps` and `keys`.
        func take(_ id: Int64) {
            packetCount += 1
            var from = 0, to = steps.count - 1
            if let fromName = options.from, let toName = options.to {
                func matches(_ k: Int, _ name: String, _ memo: inout [Int: Bool], _ probe: String) -> Bool {
                    if let m = memo[k] { return m }
                    let m = AnalysisDatabase.probeMatches(probe, name)
                    memo[k] = m
                    return m
                }
                guard let f = steps.indices.first(where: { matches(keys[$0], fromName, &isFrom, steps[$0].probe) }),
                      let t = steps.indices[(f + 1)...].first(where: { matches(keys[$0], toName, &isTo, steps[$0].probe) }) else {
                    without += 1
                    return
                }
                from = f; to = t
            }
            let span = steps[to].ts &- steps[from].ts
            spans.append(span)
            if to > from {
                for i in (from + 1)...to {
                    let key = keys[i - 1] << 32 | keys[i]
                    let d = steps[i].ts &- steps[i - 1].ts
                    if hopTimes[key]?.values.append(d) == nil { hopTimes[key] = (steps[i - 1].probe, steps[i].probe, [d]) }
                }
            }
            guard options.minNs.map({ span >= $0 }) ?? true else { return }
            slowCount += 1
            if !options.summaryOnly && (options.limit == 0 || listed.count < options.limit) {
                listed.append(LatencyPacket(id: id, steps: steps, span: span, spanFrom: from, spanTo: to))
            }
        }
        try reader.read { db in
            // each packet's steps straight from the chunks (as `paths` reads them); names for the listed
            let packets = try PacketReader(db, startedNs: bundle.recording.startedNs, bootToUnixNs: bundle.recording.bootToUnixNs)
            let cursor = try Int64.fetchCursor(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id",
                                               arguments: StatementArguments(args))
            while let id = try cursor.next() {
                try Sandbox.checkInterrupt("the report")
                steps.removeAll(keepingCapacity: true)
                keys.removeAll(keepingCapacity: true)
                try packets.forEachStep(id) { s in
                    steps.append(LatencyStep(step: s.step, ts: s.ts, probe: s.probe, netns: s.netns, ifindex: s.ifindex))
                    keys.append(s.probeKey)
                }
                if !steps.isEmpty { take(id) }
            }
            for i in listed.indices {
                if let p = try packets.packet(listed[i].id) {
                    listed[i].tuple = p.tuple ?? ""
                    listed[i].fate = p.fate
                }
                for j in listed[i].steps.indices {
                    let s = listed[i].steps[j]
                    listed[i].steps[j].ifname = packets.ifname(netns: s.netns, ifindex: s.ifindex)
                    listed[i].steps[j].netnsName = packets.netnsName(s.netns)
                }
            }
        }
        let stats = DurationStats(spans)
        let histogram = Log2Histogram(spans)
        // by name (probes of one name, if any, are one hop)
        var byName: [String: (from: String, to: String, values: [Int64])] = [:]
        for h in hopTimes.values { byName[h.from + "\u{0}" + h.to, default: (h.from, h.to, [])].values += h.values }
        var hops: [Hop] = byName.values.map { h -> Hop in
            Hop(from: h.from, to: h.to, stats: DurationStats(h.values), total: h.values.reduce(0, &+))
        }
        hops.sort { a, b in a.total != b.total ? a.total > b.total : a.from + a.to < b.from + b.to }
        hopTimes = [:]
        let what = options.from.map { "\($0) -> \(options.to ?? "")" } ?? "lifetime (first to last step)"

        if options.json {
            var pairs: [(String, JSON)] = [
                ("from", .opt(options.from)), ("to", .opt(options.to)), ("measure", .string(what)),
                ("packets", .int(Int64(packetCount))), ("measured", .int(Int64(spans.count))),
                ("without_steps", .int(Int64(without))), ("min_ns", .opt(options.minNs)),
                ("slow", .int(Int64(slowCount))),
                ("stats", stats.json), ("histogram", histogram.json),
                ("hops", .array(hops.map { h in
                    .object([("from", .string(h.from)), ("to", .string(h.to)), ("stats", h.stats.json)])
                })),
            ]
            pairs.append(("packet_list", .array(listed.map { p in
                var last = p.steps.first?.ts ?? 0
                return .object([
                    ("packet", .int(p.id)), ("tuple", .string(p.tuple)), ("fate", .string(p.fate)),
                    ("span_ns", .int(p.span)), ("lifetime_ns", .int(p.lifetime)),
                    ("steps", .array(p.steps.enumerated().map { i, s in
                        defer { last = s.ts }
                        return .object([("step", .int(s.step)), ("probe", .string(s.probe)), ("ifname", .opt(s.ifname)),
                                        ("netns", .opt(s.netnsName)), ("rel_ns", .int(s.ts &- (p.steps.first?.ts ?? 0))),
                                        ("hop_ns", i == 0 ? .null : .int(s.ts &- last)),
                                        ("in_span", .bool(i >= p.spanFrom && i <= p.spanTo))])
                    })),
                ])
            })))
            return JSON.object(pairs).text + "\n"
        }

        var out = ""
        for p in listed {
            out += "packet \(p.id)  \(p.tuple)  \(p.fate)  lifetime \(Duration.text(p.lifetime))"
            if options.from != nil { out += "  \(what) \(Duration.text(p.span))" }
            out += "\n"
            var rows: [[String]] = []
            for (i, s) in p.steps.enumerated() {
                let hop = i == 0 ? "" : "+" + Duration.text(s.ts &- p.steps[i - 1].ts)
                let mark = options.from != nil && (i == p.spanFrom || i == p.spanTo) ? "*" : ""
                let place = [s.ifname, s.netnsName].compactMap { $0 }.joined(separator: " @")
                rows.append(["  " + Duration.text(s.ts &- p.steps[0].ts), hop, mark + s.probe, place])
            }
            out += TextLayout.table(["  at", "hop", "step", "where"], rows, right: [0, 1])
            out += "\n"
        }
        if slowCount > listed.count && !options.summaryOnly {
            out += "(\(slowCount - listed.count) more packets: --limit 0 lists them all)\n\n"
        }
        out += "\(what): \(spans.count) of \(packetCount) packets"
        if without > 0 { out += " (\(without) lack the steps)" }
        if let min = options.minNs { out += ", \(slowCount) at least \(Duration.text(min))" }
        out += "\n"
        if stats.count > 0 {
            out += "  " + stats.text + "\n"
            out += histogram.text()
        }
        if !hops.isEmpty {
            out += "\nhops where the time went (consecutive steps, by total time):\n"
            let rows = hops.prefix(10).map { h in
                ["  \(h.from) -> \(h.to)", String(h.stats.count), Duration.text(h.stats.p50), Duration.text(h.stats.max),
                 Duration.text(h.total)]
            }
            out += TextLayout.table(["  hop", "count", "p50", "max", "total"], rows, right: [1, 2, 3, 4])
        }
        return out
    }

    struct Hop {
        var from: String
        var to: String
        var stats: DurationStats
        var total: Int64
    }
}
