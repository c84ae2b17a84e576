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
    @OptionGroup(title: "Filters (--limit: packets listed, 50 unless given)") var filters: FilterOptions
    @Option(help: ArgumentHelp("Measure from the first step at this probe.", valueName: "PROBE")) var from: String?
    @Option(help: ArgumentHelp("...to the next step at this probe.", valueName: "PROBE")) var to: String?
    @Option(help: ArgumentHelp("List only packets that took at least this long: 5ms, 200us, 1.5s, 800ns (a bare number is seconds).", valueName: "TIME"))
    var min: String?
    @Flag(help: "Only the statistics, the histogram and the slowest hops; no packet list.") var summary = false
    @Option(help: ArgumentHelp("Output format: text, json (one document) or jsonl (the same, on one line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws {
        try format.require([.text, .json, .jsonl])
        if (from == nil) != (to == nil) {
            throw ValidationError("give both --from and --to (the two steps to measure between), or neither to measure each packet's lifetime.")
        }
        if let min, Duration.parse(min) == nil {
            throw ValidationError("--min \(min) is not a duration: write it as 5ms, 200us, 1.5s or 800ns (a bare number is seconds).")
        }
    }

    func run() throws {
        TerminalOutput.options = terminal
        var o = LatencyOptions()
        o.from = from; o.to = to; o.minNs = min.flatMap(Duration.parse); o.limit = filters.limit ?? 50
        o.summaryOnly = summary; o.json = format.isJSON
        var f = filters.filter
        f.limit = nil  // the list's length, not a selection
        try reporting(text: format == .text) { try bundle.open().latencyReport(filter: f, options: o) }
    }
}
