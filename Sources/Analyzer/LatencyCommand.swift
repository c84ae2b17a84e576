import ArgumentParser
import Foundation
import SkbtrailAnalysis

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time between steps: per packet (each step since the previous, lifetime), and a log2 histogram of the time between two named steps.",
        discussion: """
            Without --from/--to each packet's lifetime (first to last step) is measured. With them, the time from the \
            first step at --from to the next step at --to, for every packet that has both: e.g. --from qdisc_enqueue \
            --to qdisc_dequeue (time in a qdisc), --from netif_receive_skb --to skb_copy_datagram_iovec (receive to the \
            socket), --from net_dev_queue --to net_dev_xmit. Probe names are those of `skbtrail info`; a netfilter name \
            without its priority (nf:ipv4:prerouting) matches any of that hook's brackets. path_step.hop_ns has the \
            same per-step times in SQL.
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var filters: FilterOptions
    @Option(help: "Measure from the first step at this probe.") var from: String?
    @Option(help: "...to the next step at this probe.") var to: String?
    @Option(help: "List only packets that took at least this long: 5ms, 200us, 1.5s, 800ns (a bare number is µs).")
    var min: String?
    @Option(help: "At most this many packets listed (0: all).") var limit = 50
    @Flag(help: "Only the statistics, the histogram and the slowest hops; no packet list.") var summary = false
    @Option(help: "Output format: text, or json (one object).") var format: OutputFormat = .text

    func validate() throws {
        try format.require([.text, .json])
        if (from == nil) != (to == nil) {
            throw ValidationError("give both --from and --to (the two steps to measure between), or neither to measure each packet's lifetime.")
        }
        if let min, Duration.parse(min) == nil {
            throw ValidationError("--min \(min) is not a duration: write it as 5ms, 200us, 1.5s or 800ns.")
        }
        if limit < 0 { throw ValidationError("--limit \(limit): give 0 (all) or a positive number.") }
    }

    func run() throws {
        var o = LatencyOptions()
        o.from = from; o.to = to; o.minNs = min.flatMap(Duration.parse); o.limit = limit
        o.summaryOnly = summary; o.json = format == .json
        try reporting { try bundle.open().latencyReport(filter: filters.filter, options: o) }
    }
}
