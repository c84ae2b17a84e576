import Foundation
import SkbtrailBundle

/// Durations: parsing what a user types, printing with the right unit, log2 histograms.
public enum Duration {
    /// "5ms", "200us", "200µs", "1.5s", "800ns", "2m", "1h"; a bare number is seconds (as every option
    /// that takes a time: --since, --until, --min, --timeout). Nil when the text is not a duration.
    public static func parse(_ text: String) -> Int64? { TimeText.nanoseconds(text) }

    /// 812 ns, 1.23 µs, 19.8 ms, 2.05 s: three significant digits.
    public static func text(_ ns: Int64) -> String {
        let a = Double(ns).magnitude
        let sign = ns < 0 ? "-" : ""
        func fmt(_ v: Double, _ unit: String) -> String {
            let digits = v >= 100 ? 0 : v >= 10 ? 1 : 2
            return sign + String(format: "%.\(digits)f", v) + " " + unit
        }
        if a < 1e3 { return "\(ns) ns" }
        if a < 1e6 { return fmt(a / 1e3, "µs") }
        if a < 1e9 { return fmt(a / 1e6, "ms") }
        return fmt(a / 1e9, "s")
    }
}

/// Summary figures of a set of durations (nearest-rank percentiles).
public struct DurationStats {
    public var count = 0
    public var min: Int64 = 0
    public var max: Int64 = 0
    public var avg: Int64 = 0
    public var p50: Int64 = 0
    public var p90: Int64 = 0
    public var p99: Int64 = 0

    public init(_ values: [Int64]) {
        guard !values.isEmpty else { return }
        let s = values.sorted()
        func rank(_ p: Double) -> Int64 { s[Swift.max(0, Swift.min(s.count - 1, Int((p * Double(s.count)).rounded(.up)) - 1))] }
        count = s.count
        min = s[0]
        max = s[s.count - 1]
        avg = Int64(s.reduce(0.0) { $0 + Double($1) } / Double(s.count))
        p50 = rank(0.5); p90 = rank(0.9); p99 = rank(0.99)
    }

    public var text: String {
        "\(count) samples  min \(Duration.text(min))  p50 \(Duration.text(p50))  p90 \(Duration.text(p90))  p99 \(Duration.text(p99))  max \(Duration.text(max))  avg \(Duration.text(avg))"
    }

    public var json: JSON {
        .object([("count", .int(Int64(count))), ("min_ns", .int(min)), ("p50_ns", .int(p50)), ("p90_ns", .int(p90)),
                 ("p99_ns", .int(p99)), ("max_ns", .int(max)), ("avg_ns", .int(avg))])
    }
}

/// A log2 histogram of durations, bucketed in one unit (ns, µs or ms, chosen from the median so the
/// typical value reads well), printed as bcc's tools print theirs.
public struct Log2Histogram {
    public let unit: String
    public let unitNs: Int64
    /// (lower bound, upper bound, count) in `unit`, from the first non-empty bucket to the last.
    public private(set) var buckets: [(lo: Int64, hi: Int64, count: Int)] = []

    public init(_ values: [Int64]) {
        let median = values.isEmpty ? 0 : values.sorted()[(values.count - 1) / 2]
        (unit, unitNs) = median < 1_000 ? ("ns", 1) : median < 1_000_000 ? ("µs", 1_000) : ("ms", 1_000_000)
        var counts: [Int: Int] = [:]
        for v in values {
            let u = Swift.max(0, v) / unitNs
            counts[u == 0 ? 0 : 64 - u.leadingZeroBitCount, default: 0] += 1
        }
        guard let first = counts.keys.min(), let last = counts.keys.max() else { return }
        for i in first...last {
            let lo: Int64 = i == 0 ? 0 : 1 << (i - 1)
            let hi: Int64 = i == 0 ? 0 : (1 << i) - 1
            buckets.append((lo, hi, counts[i] ?? 0))
        }
    }

    /// The unit as JSON names it.
    public var unitKey: String { unit == "µs" ? "us" : unit }

    public func text(indent: String = "  ", width: Int = 40) -> String {
        guard !buckets.isEmpty else { return "" }
        let peak = buckets.map(\.count).max() ?? 1
        let ranges = buckets.map { $0.hi == 0 ? "< 1" : "\($0.lo) -> \($0.hi)" }
        let w = Swift.max(unit.count + 2, ranges.map(\.count).max() ?? 0)
        let cw = Swift.max(5, String(peak).count)
        var out = indent + String(repeating: " ", count: Swift.max(0, w - unit.count)) + unit
            + " : " + "count".padding(toLength: cw, withPad: " ", startingAt: 0) + " distribution\n"
        for (i, b) in buckets.enumerated() {
            let stars = peak == 0 ? 0 : (b.count * width + peak - 1) / peak
            let r = ranges[i]
            out += indent + String(repeating: " ", count: w - r.count) + r + " : "
                + String(b.count).padding(toLength: cw, withPad: " ", startingAt: 0)
                + " |" + String(repeating: "*", count: stars) + String(repeating: " ", count: width - stars) + "|\n"
        }
        return out
    }

    public var json: JSON {
        .object([("unit", .string(unitKey)),
                 ("buckets", .array(buckets.map {
                     .object([("lo", .int($0.lo)), ("hi", .int($0.hi)), ("lo_ns", .int($0.lo * unitNs)),
                              ("hi_ns", .int(($0.hi + 1) * unitNs - 1)), ("count", .int(Int64($0.count)))])
                 }))])
    }
}
