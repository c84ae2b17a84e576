import Foundation
import SkbtrailBundle
import SkbtrailEvents
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the recorder's end-to-end tests: the machine check, the recorder binary, processes,
// network namespaces and decoding the records of a bundle. Everything is torn down by the caller's
// `defer`; processes are ended by PID.

/// Whether this machine can run the recorder, and why not.
enum Machine {
    static let skipReason: String? = {
        #if os(Linux)
        if geteuid() != 0 { return "not running as root: the recorder's end-to-end tests need root (eBPF, network namespaces)" }
        if !FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux") {
            return "this kernel has no BTF (/sys/kernel/btf/vmlinux): the recorder cannot load its BPF programs"
        }
        for tool in ["ip", "iptables", "ping", "nc"] where Shell.which(tool) == nil {
            return "\(tool) is not installed (apt-get install iproute2 iptables iputils-ping netcat-openbsd)"
        }
        return nil
        #else
        return "skbtrail-record runs on Linux only"
        #endif
    }()

    /// True when the BPF tests can run; prints why once when they cannot.
    static let canRecord: Bool = {
        if let skipReason {
            FileHandle.standardError.write(Data("RecorderTests: skipping the BPF end-to-end tests: \(skipReason)\n".utf8))
            return false
        }
        return true
    }()

    static var skipComment: Comment { Comment(rawValue: "needs root, BTF and the network tools; skipped here: \(skipReason ?? "")") }
}

/// What the running kernel has, by its BTF's names, for the tests whose subject needs it: each says
/// the missing feature in one sentence when it skips.
enum KernelFeatures {
    private static let btf = (try? Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/btf/vmlinux"))) ?? Data()

    /// Whether the BTF's string table has `name` (a whole string: NUL on both sides).
    static func has(_ name: String) -> Bool { btf.range(of: Data([0] + Array(name.utf8) + [0])) != nil }

    /// BPF netfilter links, Linux 6.4+: the brackets that name a netfilter drop's hook.
    static let netfilterLinks = has("BPF_PROG_TYPE_NETFILTER")
    static let noNetfilterLinks: Comment = "needs BPF netfilter links (BPF_PROG_TYPE_NETFILTER), kernel 6.4+: this kernel has none"

    /// kfree_skb's drop reason, Linux 5.17+.
    static let dropReasons = has("SKB_DROP_REASON_NETFILTER_DROP")

    /// Kernel functions can be probed (tier 3): the kernel has kprobes, which the recorder falls back to
    /// where fexit cannot attach. (A kernel with fexit and no kprobes would qualify too, but whether it
    /// permits fexit only a load tells; this host, with neither, is the one such case the tests meet.)
    static let functionProbes = FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/kprobe")
    static let noFunctionProbes: Comment = "needs kprobes or fexit for kernel functions: this kernel has no kprobes (CONFIG_KPROBES) and refuses fexit"

    /// Whether module `name` has BTF here (fexit on its functions; 5.11+).
    static func moduleBTF(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "/sys/kernel/btf/\(name)") }
}

/// The package root, from this file's path (Tests/RecorderTests/Support.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The built recorder: $SKBTRAIL_RECORDER, or .build/debug/skbtrail-record (`swift build` makes it).
func recorderPath() throws -> String {
    if let path = ProcessInfo.processInfo.environment["SKBTRAIL_RECORDER"], !path.isEmpty { return path }
    let path = packageRoot.appendingPathComponent(".build/debug/skbtrail-record").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        Issue.record("no recorder at \(path): run `swift build` before `swift test`, or set SKBTRAIL_RECORDER")
        throw CancellationError()
    }
    return path
}

/// The built analyzer: `skbtrail` beside the recorder.
func analyzerPath() throws -> String {
    let path = URL(fileURLWithPath: try recorderPath()).deletingLastPathComponent().appendingPathComponent("skbtrail").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        Issue.record("no analyzer at \(path): build skbtrail beside skbtrail-record")
        throw CancellationError()
    }
    return path
}

/// A unique short tag for names of namespaces and interfaces (interface names are at most 15 bytes).
/// Suites run in parallel, so the counter is taken under a lock; the "t" keeps "pid 1303, 22" apart from
/// "pid 13032, 2".
func uniqueTag() -> String {
    enum Counter {
        static let lock = NSLock()
        nonisolated(unsafe) static var next = 0
    }
    let n = Counter.lock.withLock { Counter.next += 1; return Counter.next }
    return "rt\(getpid() % 100_000)t\(n)"
}

/// A temporary directory for bundles, removed by the caller's `defer`.
func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skbtrail-rt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

struct ShellResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var ok: Bool { status == 0 }
}

enum Shell {
    /// Runs a command to completion (PATH lookup) and returns its status and output.
    @discardableResult
    static func run(_ args: [String]) throws -> ShellResult {
        // Output goes to files, not pipes: a chatty command can never block on a full pipe.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return ShellResult(status: process.terminationStatus,
                           stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                           stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// Runs a command that must succeed.
    @discardableResult
    static func must(_ args: [String]) throws -> String {
        let result = try run(args)
        guard result.ok else {
            throw TestFailure("`\(args.joined(separator: " "))` exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    static func which(_ tool: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A process started in the background, ended by its PID.
///
/// Started with posix_spawn, an empty signal mask and default signal actions, as from a shell: threads of
/// the test runner block signals, and a child would inherit that mask (see `Background(inheritSignalMask:)`).
final class Background {
    let pid: pid_t
    let stderrFile: URL
    private var exitStatus: Int32?

    /// Starts `args` (PATH lookup); stderr goes to a file (read it with `stderrText()`), stdout is discarded.
    init(_ args: [String], stderrTo file: URL, inheritSignalMask: Bool = false) throws {
        stderrFile = file
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, file.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        if !inheritSignalMask {
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attr, &none)
            posix_spawnattr_setsigdefault(&attr, &all)
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        }
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawnp(&pid, args[0], &actions, &attr, argv, environ)
        guard rc == 0 else { throw TestFailure("cannot start \(args[0]): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// The exit status (128 + signal when killed), or nil while it runs.
    var status: Int32? {
        if exitStatus == nil {
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid {
                exitStatus = st & 0x7f == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
            }
        }
        return exitStatus
    }

    var isRunning: Bool { status == nil }

    func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// Waits up to `timeout` seconds for the process to exit; returns its status, or nil if it still runs.
    func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(50_000) }
        return status
    }

    /// Ends the process: SIGTERM, then SIGKILL after two seconds.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if wait(timeout: 2) == nil {
            kill(pid, SIGKILL)
            _ = wait(timeout: 5)
        }
    }

    func stderrText() -> String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    /// PIDs of this process's children (from /proc), to end them by PID after a `kill -9`.
    func childPIDs() -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}

/// The kernel's text symbols from /proc/kallsyms, to check the bundle's symbol table against.
struct Kallsyms {
    private var starts: [UInt64] = []
    private var names: [String] = []

    init() throws {
        // FileManager.contents(atPath:) stops after the first 4 KiB of a /proc file: read to the end.
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/kallsyms"))
        defer { try? handle.close() }
        let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var entries: [(UInt64, String)] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3)
            guard fields.count >= 3, fields[1] == "t" || fields[1] == "T", let address = UInt64(fields[0], radix: 16),
                  address != 0 else { continue }
            entries.append((address, String(fields[2].split(separator: "\t").first ?? fields[2])))
        }
        entries.sort { $0.0 < $1.0 }
        starts = entries.map(\.0)
        names = entries.map(\.1)
    }

    var count: Int { starts.count }

    /// The function containing `address`, and the offset into it.
    func resolve(_ address: UInt64) -> (name: String, offset: UInt64)? {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : (names[lo - 1], address - starts[lo - 1])
    }
}

/// Network namespaces and background processes owned by one test; `teardown()` removes them all.
final class Lab {
    let tag = uniqueTag()
    private(set) var namespaces: [String] = []
    private var processes: [Background] = []
    let dir: URL

    init() throws { dir = try temporaryDirectory() }

    /// A new namespace named TAG-SUFFIX, with lo up.
    func netns(_ suffix: String) throws -> String {
        let name = "\(tag)-\(suffix)"
        try Shell.must(["ip", "netns", "add", name])
        namespaces.append(name)
        try Shell.must(["ip", "-n", name, "link", "set", "lo", "up"])
        return name
    }

    /// A veth pair between two namespaces, addressed (ADDR/LEN) and up.
    func veth(_ ns1: String, _ if1: String, _ addr1: String, _ ns2: String, _ if2: String, _ addr2: String) throws {
        try Shell.must(["ip", "link", "add", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2])
        try Shell.must(["ip", "-n", ns1, "addr", "add", addr1, "dev", if1])
        try Shell.must(["ip", "-n", ns2, "addr", "add", addr2, "dev", if2])
        try Shell.must(["ip", "-n", ns1, "link", "set", if1, "up"])
        try Shell.must(["ip", "-n", ns2, "link", "set", if2, "up"])
    }

    /// Runs a command in a namespace in the background (ip netns exec execs it: the PID is the command's).
    func background(in ns: String, _ args: [String]) throws -> Background {
        let process = try Background(["ip", "netns", "exec", ns] + args,
                                     stderrTo: dir.appendingPathComponent("bg\(processes.count).err"))
        processes.append(process)
        return process
    }

    func track(_ process: Background) { processes.append(process) }

    /// Waits until something listens on a port in a namespace ("t" TCP, "u" UDP).
    func waitListening(in ns: String, _ kind: String, port: Int) throws {
        for _ in 0..<50 {
            let out = try Shell.run(["ip", "netns", "exec", ns, "ss", "-H", "-\(kind)ln", "sport = :\(port)"])
            if !out.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            usleep(100_000)
        }
        throw TestFailure("nothing listens on \(kind == "t" ? "TCP" : "UDP") port \(port) in \(ns)")
    }

    func inode(of ns: String) throws -> Int64 {
        let text = try Shell.must(["stat", "-L", "-c", "%i", "/run/netns/\(ns)"])
        guard let inode = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("stat gave no inode for \(ns): \(text)")
        }
        return inode
    }

    func teardown() {
        for process in processes { process.stop() }
        for ns in namespaces { _ = try? Shell.run(["ip", "netns", "delete", ns]) }
        namespaces = []
        try? FileManager.default.removeItem(at: dir)
    }
}

/// One record of a bundle, with what the tests look at.
struct Event {
    var probe: Int
    var skb: UInt64
    var netns: Int64
    var ifindex: Int
    var flags: UInt8
    var args: st_args
    var packet: [UInt8]

    var ipv4: (proto: UInt8, src: String, dst: String)? {
        guard packet.count >= 20, packet[0] >> 4 == 4 else { return nil }
        func text(_ at: Int) -> String { packet[at..<(at + 4)].map(String.init).joined(separator: ".") }
        return (packet[9], text(12), text(16))
    }

    /// Destination port of a TCP or UDP packet without IP options.
    var dport: Int? {
        guard let ip = ipv4, ip.proto == 6 || ip.proto == 17 else { return nil }
        let ihl = Int(packet[0] & 0x0f) * 4
        guard packet.count >= ihl + 4 else { return nil }
        return Int(packet[ihl + 2]) << 8 | Int(packet[ihl + 3])
    }

    func isIPv4(_ proto: UInt8, from src: String, to dst: String) -> Bool {
        guard let ip = ipv4 else { return false }
        return ip.proto == proto && ip.src == src && ip.dst == dst
    }

    func involves(_ address: String) -> Bool {
        guard let ip = ipv4 else { return false }
        return ip.src == address || ip.dst == address
    }
}

extension BundleReader {
    /// Every event record of the bundle, in order.
    func events() throws -> [Event] {
        var events: [Event] = []
        var walker = RecordWalker()
        try forEachChunk { chunk, bytes, count in
            try walker.walk(bytes, count: count, chunk: chunk.id) { event, packet in
                events.append(Event(probe: Int(event.probe), skb: event.skb, netns: Int64(event.netns),
                                    ifindex: Int(event.ifindex), flags: event.flags, args: event.args,
                                    packet: Array(packet)))
            }
        }
        return events
    }

    /// Records marked ST_F_SAME_BYTES whose reference bytes a walk does not find.
    func unresolvedBytes() throws -> Int {
        var walker = RecordWalker()
        try forEachChunk { chunk, bytes, count in
            try walker.walk(bytes, count: count, chunk: chunk.id) { _, _ in }
        }
        return walker.unresolvedBytes
    }
}

/// Packets counted by the first rule of a chain whose target is `target` (`iptables -L CHAIN -v -x -n`).
func iptablesPackets(ns: String, table: String = "filter", chain: String, target: String) throws -> Int {
    let text = try Shell.must(["ip", "netns", "exec", ns, "iptables", "-w", "-t", table, "-L", chain, "-v", "-x", "-n"])
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count > 3, fields[2] == target, let packets = Int(fields[0]) { return packets }
    }
    throw TestFailure("no \(target) rule in \(table) \(chain) of \(ns):\n\(text)")
}
