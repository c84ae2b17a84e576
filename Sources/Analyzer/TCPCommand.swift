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
    @Option(help: "Either end's address.") var addr: String?
    @Option(name: [.customShort("P"), .long], help: "Either end's port.") var port: Int?
    @Option(help: "Network namespace, by name or inode.") var netns: String?
    @Option(help: "Only this connection id.") var connection: Int?
    @Flag(help: "Also list every sample: tcp_probe, retransmission, reset, state change.") var samples = false
    @Flag(help: "Also show sockets that only listened.") var listeners = false
    @Option(help: "Output format: text, or json (one object per connection, one per line).") var format: OutputFormat = .text

    func validate() throws {
        try format.require([.text, .json])
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port \(port) is not a port: give a number from 0 to 65535.")
        }
    }

    func run() throws {
        var o = TCPOptions()
        o.addr = addr; o.port = port; o.netns = netns; o.connection = connection
        o.samples = samples; o.listeners = listeners; o.json = format == .json
        try reporting { try bundle.open().tcpReport(options: o) }
    }
}
