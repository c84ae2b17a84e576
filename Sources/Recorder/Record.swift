import ArgumentParser
import Foundation

import SkbtrailBundle
#if os(Linux)
import CLibbpf
import Glibc
import SkbtrailEvents
#endif

/// Version of the recorder, stored in every bundle.
let recorderVersion = "0.1.0"

@main
struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skbtrail-record",
        abstract: "Record the kernel's packet path into a trace bundle (Linux, root).",
        discussion: """
            Attaches eBPF programs to the network stack's tracepoints, to every netfilter hook (kernel 6.4+) \
            and to netfilter's table and chain functions (group nf-fn: ipt_do_table, nft_do_chain, by fexit or \
            kprobes where the kernel allows), and writes raw skb events, zstd-compressed, into one SQLite file: \
            the trace bundle. Analyze it \
            later, on any machine, with `skbtrail info|paths|drops|diag|sql FILE`.

            Stops on Ctrl-C or SIGTERM, after --duration, --max-events or --max-size, or when COMMAND exits; it then exits with COMMAND's status.

            Filters match each packet on its own headers, then follow that skb until it is freed, through NAT
            too. A reply crosses NAT with other addresses: to follow both directions, filter on an address
            both carry, on a namespace, or record without filters and select in `skbtrail paths`.

            Examples:
              skbtrail-record -o drop.skbt -- ping -c 3 10.0.0.2
              skbtrail-record -o web.skbt --dport 80 --duration 30s
              skbtrail-record -o ns.skbt --netns blue --proto icmp
              skbtrail-record --check               # does every BPF program pass this kernel's verifier?
            """,
        version: recorderVersion
    )

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The bundle to write (must not exist). Required unless --check.", valueName: "FILE"))
    var outputPath: String?

    /// The bundle path; `validate()` guarantees it except with --check.
    var output: String { outputPath ?? "" }

    @OptionGroup(title: "Capture filters (applied in the kernel; a matching packet stays tracked until freed)")
    var filters: FilterOptions

    @OptionGroup(title: "Limits")
    var limits: LimitOptions

    @Option(help: ArgumentHelp("Probe groups, tracepoints or kernel functions to attach, comma-separated (default: `default`, every probe but the functions of the packet's path). Groups: \(ProbeTable.groups.joined(separator: ", ")); `functions` is every *-fn group but nf-fn, a record per function call (nettrace's lifecycle view), e.g. --probes default,ip-fn,route-fn.", valueName: "LIST"))
    var probes: String?

    @Option(help: ArgumentHelp("Probe groups, tracepoints or kernel functions not to attach, comma-separated.", valueName: "LIST"))
    var excludeProbes: String?

    @Option(help: ArgumentHelp("Packet bytes to keep from the network header (64-256).", valueName: "BYTES"))
    var snaplen: Int = 128

    @Option(help: ArgumentHelp("zstd level for chunks (1 fastest .. 19 smallest; 0 stores uncompressed).", valueName: "N"))
    var zstdLevel: Int = 3

    @Option(help: ArgumentHelp("Ring buffer size in MiB (a power of two).", valueName: "MIB"))
    var ringSize: Int = 16

    @Option(help: ArgumentHelp("Uncompressed bytes per chunk, in KiB.", valueName: "KIB"))
    var chunkSize: Int = 1024

    @Flag(help: ArgumentHelp("Record the kernel stack of each drop (kfree_skb), symbolized in the bundle: `skbtrail paths` shows it under the drop, `skbtrail drops --stack` counts drops by stack."))
    var dropStack = false

    @Flag(help: "Load every BPF program through the verifier, print each verdict, and exit.")
    var check = false

    @Flag(name: .shortAndLong, help: "No status line.")
    var quiet = false

    @Option(help: .hidden)
    var pretendMissing: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("A command to run while recording; recording stops when it exits.", valueName: "COMMAND"))
    var command: [String] = []

    func validate() throws {
        guard (64...256).contains(snaplen) else {
            throw ValidationError("--snaplen \(snaplen): give 64 to 256 bytes (enough for IPv6 + TCP headers is 100)")
        }
        guard (0...19).contains(zstdLevel) else { throw ValidationError("--zstd-level \(zstdLevel): give 0 to 19") }
        guard ringSize >= 1, ringSize <= 1024, ringSize & (ringSize - 1) == 0 else {
            throw ValidationError("--ring-size \(ringSize): give a power of two between 1 and 1024 MiB")
        }
        guard (16...65536).contains(chunkSize) else { throw ValidationError("--chunk-size \(chunkSize): give 16 to 65536 KiB") }
        let known = probeSelectors
        for list in [probes, excludeProbes].compactMap({ $0 }) {
            for name in list.split(separator: ",").map(String.init) where !known.contains(name) {
                throw ValidationError("--probes/--exclude-probes: unknown probe or group '\(name)'. Known: \(known.sorted().joined(separator: ", "))")
            }
        }
        if let pid = filters.pid, !FileManager.default.fileExists(atPath: "/proc/\(pid)") {
            throw ValidationError("--pid \(pid): no process has that id now; give the id of a running process (the filter keeps the packets it sends first)")
        }
        if !check {
            guard let path = outputPath else {
                throw ValidationError("-o FILE is missing: name the bundle to write, e.g. skbtrail-record -o trace.skbt -- COMMAND")
            }
            if FileManager.default.fileExists(atPath: path) {
                throw ValidationError("--output \(path): the file exists. skbtrail-record never overwrites a bundle: choose another name or remove it.")
            }
        }
    }

    func run() throws {
        #if os(Linux)
        do {
            let status = try Recorder(options: self).run()
            if status != 0 { throw ExitCode(status) }
        } catch let error as ExitCode {
            throw error
        } catch let error as RecorderError {
            FileHandle.standardError.write(Data("skbtrail-record: \(error.description)\n".utf8))
            throw ExitCode(1)
        } catch let error as BundleError {
            FileHandle.standardError.write(Data("skbtrail-record: \(error.description)\n".utf8))
            throw ExitCode(1)
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("skbtrail-record: \(error)\n".utf8))
            throw ExitCode(1)
        }
        #else
        throw ValidationError("skbtrail-record runs on Linux only; analyze bundles here with `skbtrail`.")
        #endif
    }
}

struct FilterOptions: ParsableArguments {
    @Option(name: [.customShort("s"), .long], help: ArgumentHelp("Source address (IPv4 or IPv6).", valueName: "ADDR"))
    var saddr: String?
    @Option(name: [.customShort("d"), .long], help: ArgumentHelp("Destination address.", valueName: "ADDR"))
    var daddr: String?
    @Option(help: ArgumentHelp("Source or destination address.", valueName: "ADDR"))
    var addr: String?
    @Option(name: [.customShort("S"), .long], help: ArgumentHelp("Source port (TCP, UDP, SCTP).", valueName: "PORT"))
    var sport: UInt16?
    @Option(name: [.customShort("D"), .long], help: ArgumentHelp("Destination port.", valueName: "PORT"))
    var dport: UInt16?
    @Option(name: [.customShort("P"), .long], help: ArgumentHelp("Source or destination port.", valueName: "PORT"))
    var port: UInt16?
    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Protocol: \((ProtocolNames.l3.keys.sorted() + ProtocolNames.l4.keys.sorted()).joined(separator: ", ")), or an IP protocol number.", valueName: "PROTO"))
    var proto: String?
    @Option(help: ArgumentHelp("Network namespace: a name from `ip netns list`, a path such as /proc/PID/ns/net, or an inode.", valueName: "NETNS"))
    var netns: String?
    @Option(help: ArgumentHelp("Interface name, in any namespace.", valueName: "NAME"))
    var ifname: String?
    @Option(help: ArgumentHelp("Process id that first touches the packet (sending process).", valueName: "PID"))
    var pid: Int32?
}

struct LimitOptions: ParsableArguments {
    @Option(name: .customLong("duration"), help: ArgumentHelp("Stop after this long: 30s, 5m, 2h, 500ms (a bare number is seconds).", valueName: "TIME"))
    var durationText: String?

    /// --duration in seconds (`validate()` has checked it).
    var duration: Double? { durationText.flatMap(TimeText.nanoseconds).map { Double($0) / 1e9 } }
    @Option(help: ArgumentHelp("Stop after this many events.", valueName: "N"))
    var maxEvents: Int?
    @Option(help: ArgumentHelp("Stop when the bundle holds this much compressed data (e.g. 500M, 2G).", valueName: "SIZE"))
    var maxSize: String?

    func validate() throws {
        if let durationText, TimeText.nanoseconds(durationText) ?? 0 <= 0 {
            throw ValidationError("--duration \(durationText) is not a length of time: write it as 30s, 5m, 2h or 500ms (a bare number is seconds).")
        }
    }

    func maxSizeBytes() throws -> Int? {
        guard let text = maxSize?.uppercased() else { return nil }
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = text
        var scale = 1
        if let last = text.last, let unit = units[last] { scale = unit; digits.removeLast() }
        guard let value = Double(digits), value > 0 else {
            throw ValidationError("--max-size \(maxSize ?? ""): give a size such as 500K, 100M or 2G")
        }
        return Int(value * Double(scale))
    }
}

