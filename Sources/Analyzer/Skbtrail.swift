import ArgumentParser
import Foundation
import SkbtrailAnalysis

/// `skbtrail`: reads a bundle written by skbtrail-record, on any machine, without BPF or root.
@main
struct Skbtrail: ParsableCommand {
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
func reporting(_ body: () throws -> String) throws {
    try streaming { $0.append(try body()) }
}

/// Runs `body`, which writes to standard output as it goes, and turns an error into `error: <sentence>`
/// on stderr and exit status 1 (after what was written before it). Ctrl-C (or SIGTERM, SIGHUP) stops a
/// decode, a query or a report at its next check, exit status 128 + the signal, and what it made in the cache or a temporary directory goes with it.
func streaming(_ body: (TextSink) throws -> Void) throws {
    Sandbox.catchInterrupt()
    let sink = TextSink.standardOutput()
    do {
        try body(sink)
        sink.flush()
    } catch let error as ValidationError {
        sink.flush()
        throw error
    } catch {
        sink.flush()
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
        let t = timeout.trimmingCharacters(in: .whitespaces).lowercased()
        var seconds: Double?
        if let v = Double(t) { seconds = v } else if t.hasSuffix("m"), let v = Double(t.dropLast()) { seconds = v * 60 }
        else if let ns = Duration.parse(t) { seconds = Double(ns) / 1e9 }
        guard let seconds, seconds >= 0 else {
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
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        do {
            let v = try AnalysisDatabase.verify(bundlePath: file)
            FileHandle.standardOutput.write(Data((format == .json ? v.json : v.text).utf8))
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
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        try reporting { try bundle.open().infoReport(json: format == .json) }
    }
}

/// The capture filters, as skbtrail-record takes them, plus packet selection.
struct FilterOptions: ParsableArguments {
    @Option(name: [.customShort("s"), .long], help: "Source address seen on any step.") var saddr: String?
    @Option(name: [.customShort("d"), .long], help: "Destination address seen on any step.") var daddr: String?
    @Option(help: "Source or destination address.") var addr: String?
    @Option(name: [.customShort("S"), .long], help: "Source port.") var sport: Int?
    @Option(name: [.customShort("D"), .long], help: "Destination port.") var dport: Int?
    @Option(name: [.customShort("P"), .long], help: "Source or destination port.") var port: Int?
    @Option(name: [.customShort("p"), .long], help: "Protocol: tcp, udp, icmp, icmpv6, arp, ipv4, ipv6, or a number.") var proto: String?
    @Option(help: "Network namespace, by name or inode.") var netns: String?
    @Option(help: "Interface name (any step).") var ifname: String?
    @Option(help: "Process id on any step.") var pid: Int?
    @Option(help: "Only this packet id.") var packet: Int?
    @Flag(help: "Only dropped packets.") var dropped = false
    @Option(help: "Only packets first seen at or after this many seconds from the recording's start.") var since: Double?
    @Option(help: "Only packets first seen at or before this many seconds from the recording's start.") var until: Double?

    func validate() throws {
        for (name, value) in [("--sport", sport), ("--dport", dport), ("--port", port)] {
            if let value, !(0...65535).contains(value) {
                throw ValidationError("\(name) \(value) is not a port: give a number from 0 to 65535.")
            }
        }
        if let since, let until, since > until {
            throw ValidationError("--since \(since) is after --until \(until): the time window is empty.")
        }
    }

    var filter: PacketFilter {
        var f = PacketFilter()
        f.saddr = saddr; f.daddr = daddr; f.addr = addr
        f.sport = sport; f.dport = dport; f.port = port
        f.proto = proto; f.netns = netns; f.ifname = ifname; f.pid = pid
        f.packet = packet; f.droppedOnly = dropped; f.since = since; f.until = until
        return f
    }
}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each packet's life through the kernel: its steps, clones, NAT rewrites and fate.")

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var filters: FilterOptions
    @Flag(help: "Wall-clock (UTC) times instead of times relative to the packet's first step.") var date = false
    @Flag(help: "Show CPU, pid, comm and skb address on each step.") var detail = false
    @Option(help: "Output format: text, or json (one object per packet, one per line).") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        try streaming { sink in
            try bundle.open().pathsReport(filter: filters.filter,
                                          options: PathsOptions(json: format == .json, date: date, detail: detail), to: sink)
        }
    }
}

struct Drops: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dropped packets grouped by the kernel's drop reason, location, netfilter hook, interface and netns.")

    @OptionGroup var bundle: BundleOptions
    @Option(help: "Output format: text, or json (one object per group, one per line).") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        try reporting { try bundle.open().dropsReport(json: format == .json) }
    }
}

struct Sql: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one read-only SQL query on the analysis views (docs/sql.md).",
        discussion: "Views: recording, probe, event, packet, path_step, clone, nat_rewrite, lost, finding, tcp_sample, tcp_connection. The query cannot modify anything.")

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var limits: LimitOptions
    @Argument(help: "The query; read from stdin when absent.") var query: String?
    @Option(help: "Output format: table, csv or json.") var format: OutputFormat = .table

    func validate() throws { try format.require([.table, .csv, .json]) }

    func run() throws {
        var text = query
        if text == nil {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            text = String(decoding: data, as: UTF8.self)
        }
        guard let sql = text, !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ValidationError("no query: give one after the bundle, or on stdin.")
        }
        try streaming { sink in
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
