import ArgumentParser
import Foundation
import SkbtrailAnalysis

struct TCP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcp",
        abstract: "TCP connections: state changes, RTT (min, median, max, histogram), cwnd, retransmissions, resets and their reasons.",
        discussion: """
            One block per socket, from the tcp tracepoints the recorder attached (tcp_probe, tcp_retransmit_skb, \
            tcp_send_reset, tcp_receive_reset, tcp_bad_csum, inet_sock_set_state, sock_rcvqueue_full). RTT is the \
            kernel's smoothed RTT (srtt) as tcp_probe saw it on each incoming segment. SQL: tcp_connection, tcp_sample.
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup(title: "Filters (a connection has no direction: -s, -d and --addr match either end, ports too; --packet, --dropped, --ifname and --pid keep the connections that carried such a packet)")
    var filters: FilterOptions
    @Option(help: ArgumentHelp("Only this connection id.", valueName: "ID")) var connection: Int?
    @Flag(help: "Also list every sample: tcp_probe, retransmission, reset, state change.") var samples = false
    @Flag(help: "Also show sockets that only listened.") var listeners = false
    @Option(help: ArgumentHelp("Output format: text, json (one array, a connection per line) or jsonl (an object per connection per line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        var o = TCPOptions()
        o.filter = filters.filter; o.connection = connection
        o.samples = samples; o.listeners = listeners; o.json = format.isJSON; o.jsonLines = format == .jsonl
        try reporting(text: format == .text) { try bundle.open().tcpReport(options: o) }
    }
}
