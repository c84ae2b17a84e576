import ArgumentParser
import Foundation
import SkbtrailAnalysis
import SkbtrailBundle

/// `skbtrail`: reads a bundle written by skbtrail-record, on any machine, without BPF or root.
@main
struct Skbtrail: ParsableCommand {
    /// Parses the command line after `sqlQueryArguments`.
    static func main() {
        main(sqlQueryArguments(Array(CommandLine.arguments.dropFirst())))
    }

    /// A query that begins with a comment ("-- why\nSELECT ...") looks like an option to the parser: after
    /// `sql`, an argument that starts with "--" and then a space, or holds a line break, is the query.
    static func sqlQueryArguments(_ args: [String]) -> [String] {
        guard let i = args.firstIndex(of: "sql") else { return args }
        var out = args
        for j in (i + 1)..<args.count {
            let a = args[j]
            if a == "--" { break }
            let third = a.dropFirst(2).first
            if a.hasPrefix("--"), third == " " || third == "\t" || third == "\n" || a.contains("\n") {
                out[j] = "--query-text=" + a
            }
        }
        return out
    }

    static let configuration = CommandConfiguration(
        commandName: "skbtrail",
        abstract: "Analyze a bundle recorded by skbtrail-record: packets, paths, clones, NAT, drops, SQL.",
        discussion: "The bundle is only ever read. Its decode is cached beside your other caches (SKBTRAIL_CACHE_DIR, XDG_CACHE_HOME/skbtrail or ~/.cache/skbtrail).",
        version: SkbtrailAnalysisVersion.version,
        subcommands: [Info.self, Paths.self, Drops.self, Sql.self, Diag.self, Rules.self, Latency.self, TCP.self, Verify.self, Pcap.self, Slice.self, Redact.self]
    )
}

/// Options every command that reads a bundle takes.
struct BundleOptions: ParsableArguments {
    @Argument(help: "The bundle (.skbt) written by skbtrail-record -o FILE.")
    var file: String

    @Flag(name: .customLong("no-cache"), help: "Decode into a temporary file instead of the cache.")
    var noCache = false

    /// Opens the bundle and its analysis, with a progress bar on stderr when decoding takes a while.
    func open() throws -> AnalysisDatabase {
        let a = try AnalysisDatabase(bundlePath: file, cache: noCache ? .none : .auto)
        // what was left out of a damaged bundle is said before any result, once per command
        for line in a.damage.prefix(5) { FileHandle.standardError.write(Data("warning: \(line)\n".utf8)) }
        if a.damage.count > 5 {
            FileHandle.standardError.write(Data("warning: \(a.damage.count - 5) more damaged parts of \(file) left out (skbtrail verify \(file) lists them all)\n".utf8))
        }
        return a
    }
}

/// Runs `body` and turns an error into `error: <sentence>` on stderr and exit status 1.
func reporting(text: Bool = false, _ body: () throws -> String) throws {
    try streaming(text: text) { $0.append(try body()) }
}

/// Runs `body`, which writes to standard output as it goes, and turns an error into `error: <sentence>`
/// on stderr and exit status 1 (after what was written before it). Ctrl-C (or SIGTERM, SIGHUP) stops a
/// decode, a query or a report at its next check, exit status 128 + the signal, and what it made in the
/// cache or a temporary directory goes with it. `text` (output for people, not JSON, CSV or bytes) on a
/// terminal gets colour and goes through the pager (TerminalOptions); a pager that quits early ends
/// the command quietly.
func streaming(text: Bool = false, _ body: (TextSink) throws -> Void) throws {
    Sandbox.catchInterrupt()
    let terminal = TerminalOutput(text: text)
    let sink = TextSink { terminal.write($0) }
    defer { terminal.finish() }
    do {
        try body(sink)
        sink.flush()
    } catch let error as ValidationError {
        sink.flush()
        throw error
    } catch {
        sink.flush()
        if Sandbox.interrupted == SIGPIPE { return }  // the reader has gone: nothing left to say
        FileHandle.standardError.write(Data("error: \(AnalysisError.describe(error))\n".utf8))
        throw Sandbox.interrupted != 0 ? ExitCode(128 + Sandbox.interrupted) : ExitCode.failure
    }
}

/// The limits of SQL that users write, as --timeout and --memory give them.
struct LimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("How long one query or rule may run before it is stopped: 30s, 5m, 500ms (a bare number is seconds; 0: no limit).", valueName: "DURATION"))
    var timeout = "300s"
    @Option(help: ArgumentHelp("How much memory SQLite may use for it: 512M, 2G (0: no limit).", valueName: "SIZE"))
    var memory = "2G"

    func validate() throws { _ = try limits() }

    func limits() throws -> QueryLimits {
        guard let seconds = Duration.parse(timeout).map({ Double($0) / 1e9 }) else {
            throw ValidationError("--timeout \(timeout) is not a duration: write it as 30s, 5m or 500ms (0: no limit).")
        }
        let m = memory.trimmingCharacters(in: .whitespaces).uppercased()
        let scale: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824]
        var bytes: Double?
        if let last = m.last, let k = scale[last] { bytes = Double(m.dropLast()).map { $0 * k } } else { bytes = Double(m) }
        guard let bytes, bytes >= 0, bytes.isFinite, bytes == 0 || bytes >= 16_777_216 else {
            throw ValidationError("--memory \(memory) is not a size of at least 16M: write it as 512M or 2G (0: no limit).")
        }
        return QueryLimits(seconds: seconds, memory: Int64(bytes))
    }
}

extension OutputFormat: ExpressibleByArgument {
    /// Refuses a format this command does not print.
    func require(_ allowed: [OutputFormat]) throws {
        guard allowed.contains(self) else {
            throw ValidationError("--format \(rawValue): this command prints \(allowed.map(\.rawValue).joined(separator: " or ")).")
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a whole bundle: every SQLite page, chunk, zstd checksum, record and metadata value. Exits 1 when anything is damaged.",
        discussion: "Analysis of a damaged bundle still runs on its intact part and warns about the rest; verify lists everything it finds, one line each.")

    @Argument(help: "The bundle (.skbt) to check.") var file: String
    @Option(help: ArgumentHelp("Output format: text, json (one document) or jsonl (the same, on one line).", valueName: "FORMAT"))
    var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        do {
            let v = try AnalysisDatabase.verify(bundlePath: file)
            FileHandle.standardOutput.write(Data((format.isJSON ? v.json : v.text).utf8))
            if v.damaged { throw ExitCode.failure }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("error: \(AnalysisError.describe(error))\n".utf8))
            throw ExitCode.failure
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What was recorded: host, kernel, time span, events per probe, lost events, probes, sizes.")

    @OptionGroup var bundle: BundleOptions
    @OptionGroup(title: "Filters (with any, a line counts the packets they select)") var filters: FilterOptions
    @Option(help: ArgumentHelp("Output format: text, json (one document) or jsonl (the same, on one line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        try reporting(text: format == .text) { try bundle.open().infoReport(json: format.isJSON, filter: filters.filter) }
    }
}

/// The filters every analysis command takes (paths, diag, drops, latency, tcp, info, pcap, slice,
/// redact): the recorder's capture filters by the same names, plus packet selection.
struct FilterOptions: ParsableArguments {
    @Option(name: [.customShort("s"), .long], help: ArgumentHelp("Source address or network (10.0.0.1, 10.199.1.0/24, fd00::/8) seen on any step.", valueName: "ADDR"))
    var saddr: String?
    @Option(name: [.customShort("d"), .long], help: ArgumentHelp("Destination address or network seen on any step.", valueName: "ADDR"))
    var daddr: String?
    @Option(help: ArgumentHelp("Source or destination address or network.", valueName: "ADDR"))
    var addr: String?
    @Option(name: [.customShort("S"), .long], help: ArgumentHelp("Source port.", valueName: "PORT")) var sport: Int?
    @Option(name: [.customShort("D"), .long], help: ArgumentHelp("Destination port.", valueName: "PORT")) var dport: Int?
    @Option(name: [.customShort("P"), .long], help: ArgumentHelp("Source or destination port.", valueName: "PORT")) var port: Int?
    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Protocol, as skbtrail-record takes it: \(FilterOptions.protocolList), or an IP protocol number.", valueName: "PROTO"))
    var proto: String?
    @Option(help: ArgumentHelp("Network namespace: a name the bundle knows (skbtrail info lists them), /run/netns/NAME, an inode, or a namespace file of this machine (/proc/PID/ns/net).", valueName: "NETNS"))
    var netns: String?
    @Option(help: ArgumentHelp("Interface name, on any step.", valueName: "NAME")) var ifname: String?
    @Option(help: ArgumentHelp("Process id, on any step.", valueName: "PID")) var pid: Int?
    @Option(help: ArgumentHelp("Only these packets (and their clones): ids as paths shows them, comma-separated or repeated.", valueName: "IDS"))
    var packet: [String] = []
    @Flag(help: "Only dropped packets.") var dropped = false
    @Option(help: ArgumentHelp("Only packets first seen at or after this time since the recording's start: 5s, 1.5m, 200ms (a bare number is seconds).", valueName: "TIME"))
    var since: String?
    @Option(help: ArgumentHelp("Only packets first seen at or before this time since the recording's start.", valueName: "TIME"))
    var until: String?
    @Option(help: ArgumentHelp("At most this many packets (drops: groups; tcp: connections; 0: all).", valueName: "N"))
    var limit: Int?

    static var protocolList: String { (ProtocolNames.l3.keys.sorted() + ProtocolNames.l4.keys.sorted()).joined(separator: ", ") }

    func validate() throws {
        for (flag, value) in [("--since", since), ("--until", until)] {
            if let value, Duration.parse(value) == nil {
                throw ValidationError("\(flag) \(value) is not a time: write it as 5s, 1.5m, 200ms or 800us (a bare number is seconds).")
            }
        }
        for p in packet.flatMap({ $0.split(separator: ",") }) where Int(p.trimmingCharacters(in: .whitespaces)) == nil {
            throw ValidationError("--packet \(p) is not a packet id: give ids such as 12 or 3,5,9 (skbtrail paths shows them).")
        }
        if let bad = filter.invalidValue() { throw ValidationError(bad) }
    }

    var filter: PacketFilter {
        var f = PacketFilter()
        f.saddr = saddr; f.daddr = daddr; f.addr = addr
        f.sport = sport; f.dport = dport; f.port = port
        f.proto = proto; f.netns = netns; f.ifname = ifname; f.pid = pid
        f.packets = packet.flatMap { $0.split(separator: ",") }.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        f.droppedOnly = dropped
        f.sinceNs = since.flatMap(Duration.parse); f.untilNs = until.flatMap(Duration.parse)
        f.limit = limit
        return f
    }
}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each packet's life through the kernel: its steps, clones, NAT rewrites and fate.",
        discussion: """
            A block per packet: its id, tuple and fate, then a line per step: the time since its first step \
            (+0.000012s, or UTC with --date), the probe, interface, namespace and what the step saw. Clones \
            are indented under their parent.

            Examples:
              skbtrail paths trace.skbt --dropped --limit 5
              skbtrail paths trace.skbt --addr 10.0.0.0/24 -p icmp --since 2s --until 4s
              skbtrail paths trace.skbt --netns blue --format jsonl | jq -c 'select(.fate == "dropped")'
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup(title: "Filters") var filters: FilterOptions
    @Flag(help: "Wall-clock times (UTC, ISO 8601) instead of seconds since the packet's first step.") var date = false
    @Flag(help: "Show CPU, pid, comm and skb address on each step.") var detail = false
    @Option(help: ArgumentHelp("Output format: text, json (one array, a packet per line) or jsonl (an object per packet per line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        var o = PathsOptions(json: format.isJSON, date: date, detail: detail)
        o.jsonLines = format == .jsonl
        try streaming(text: format == .text) { sink in
            try bundle.open().pathsReport(filter: filters.filter, options: o, to: sink)
        }
    }
}

struct Drops: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dropped packets grouped by the kernel's drop reason, location, netfilter hook, interface and netns.")

    @OptionGroup var bundle: BundleOptions
    @OptionGroup(title: "Filters (of the dropped packets)") var filters: FilterOptions
    @Flag(help: "Group by the drop's kernel stack as well, and show each group's stack (bundles recorded with skbtrail-record --drop-stack).")
    var stack = false
    @Option(help: ArgumentHelp("Output format: text, json (one array, a group per line) or jsonl (an object per group per line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        try reporting(text: format == .text) {
            try bundle.open().dropsReport(filter: filters.filter, json: format.isJSON, jsonLines: format == .jsonl, stack: stack)
        }
    }
}

struct Sql: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one read-only SQL query on the analysis views (docs/sql.md).",
        discussion: "Views: recording, probe, event, packet, path_step, clone, nat_rewrite, lost, finding, tcp_sample, tcp_connection. The query cannot modify anything.")

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var limits: LimitOptions
    @Argument(help: "The query (it may begin with a -- comment); read from stdin when absent.") var query: String?
    @Option(name: .customLong("query-text"), help: .hidden) var queryText: String?
    @Option(help: ArgumentHelp("Output format: table, csv, json (one array, a row per line) or jsonl (an object per row per line).", valueName: "FORMAT"))
    var format: OutputFormat = .table
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.table, .csv, .json, .jsonl]) }

    func run() throws {
        var text = queryText ?? query
        if text == nil {
            if isatty(STDIN_FILENO) == 1 {
                throw ValidationError("no query: give one after the bundle (skbtrail sql FILE \"SELECT ...\"), or pipe it on stdin.")
            }
            let data = FileHandle.standardInput.readDataToEndOfFile()
            text = String(decoding: data, as: UTF8.self)
        }
        guard let sql = text, !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ValidationError("no query: give one after the bundle, or on stdin.")
        }
        TerminalOutput.options = terminal
        try streaming(text: format == .table) { sink in
            let analysis = try bundle.open()
            // Findings are computed on first use: running every rule costs seconds on a large bundle.
            if sql.range(of: #"\b(finding|rule)\b"#, options: [.regularExpression, .caseInsensitive]) != nil {
                try analysis.diagnose(limits: try limits.limits())
            }
            // rows go out as they come: a query over every event needs no memory of its own
            try analysis.sqlReport(sql, format: format, limits: try limits.limits(), to: sink)
        }
    }
}
