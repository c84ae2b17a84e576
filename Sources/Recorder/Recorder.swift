#if os(Linux)
import CLibbpf
import Foundation
import Glibc
import SkbtrailBundle
import SkbtrailEvents

/// The signal that asked the recorder to stop, or 0.
nonisolated(unsafe) var stopSignal: Int32 = 0

/// One recording: load, attach, stream into the bundle, stop, write the metadata, detach.
struct Recorder {
    let options: Record

    /// Returns the exit status skbtrail-record ends with: COMMAND's (128 + its signal when killed),
    /// else 0.
    func run() throws -> Int32 {
        guard geteuid() == 0 else {
            throw RecorderError("loading eBPF programs needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): run it with sudo.")
        }
        var filters = CaptureFilters(
            saddr: options.filters.saddr, daddr: options.filters.daddr, addr: options.filters.addr,
            sport: options.filters.sport, dport: options.filters.dport, port: options.filters.port,
            proto: options.filters.proto, netns: options.filters.netns, ifname: options.filters.ifname,
            pid: options.filters.pid)
        if let netns = filters.netns { filters.netnsInode = try CaptureFilters.resolveNetns(netns) }
        var config = try filters.config(snaplen: options.snaplen, wakeupBytes: UInt32(options.ringSize << 20) / 4)
        if options.dropStack || options.check { config.options |= UInt8(ST_OPT_DROP_STACK.rawValue) }

        if options.check {
            try check(config: config)
            return 0
        }

        let selected = probeSelection()
        let pretend = Set((options.pretendMissing ?? "").split(separator: ",").map(String.init))
        let maxSize = try options.limits.maxSizeBytes()

        // The recording row first: a bundle is readable from its first committed chunk on.
        let rootInode = Kernel.inode(of: "/proc/1/ns/net")
        let recording = recordingRow(filters: filters)

        // The bundle first: an unwritable path fails before seconds of BPF loading. If loading fails,
        // the empty bundle goes.
        let writer = try BundleWriter(path: options.output, recording: recording)
        let session: BPFSession
        do {
            session = try BPFSession.load(config: config, ringBytes: UInt32(options.ringSize << 20),
                                          selected: selected, pretendMissing: pretend)
        } catch {
            try? writer.finish(endedNs: UInt64(Kernel.bootNs()), reason: "BPF load failed")
            try? FileManager.default.removeItem(atPath: options.output)
            throw error
        }
        let namespaces = filters.netnsInode.map { inode in Netns.all().filter { $0.inode == inode } } ?? Netns.all()
        for ns in namespaces { session.attachNetfilter(in: ns) }
        if let inode = filters.netnsInode, namespaces.isEmpty {
            warn("netfilter hooks are per namespace and namespace \(inode) has no name under /run/netns: only tracepoints record it")
        }

        // Kernel facts a reader elsewhere needs, written before any event.
        try writer.writeProbes(session.probes)
        try writeKernelEnums(writer)
        let startSnapshot = MachineSnapshotter.take(phase: "start", namespaces: namespaces, rootInode: rootInode)
        try writer.writeSnapshot(startSnapshot)
        if let name = options.filters.ifname, !startSnapshot.interfaces.contains(where: { $0.name == name }) {
            warn("skbtrail-record: --ifname \(name): no interface has that name now (in the \(namespaces.count) namespace\(namespaces.count == 1 ? "" : "s") seen); recording anyway: one that appears under that name will match")
        }

        let sink = ChunkSink(writer: writer, chunkBytes: options.chunkSize << 10, maxEvents: options.limits.maxEvents)
        let ringFD = session.mapFD("events")
        let context = Unmanaged.passUnretained(sink).toOpaque()
        guard let ring = ring_buffer__new(ringFD, { ctx, data, size in
            guard let ctx, let data else { return 0 }
            Unmanaged<ChunkSink>.fromOpaque(ctx).takeUnretainedValue().add(data, size)
            return 0
        }, context, nil) else {
            throw RecorderError("cannot open the BPF ring buffer: \(String(cString: strerror(errno)))")
        }
        defer { ring_buffer__free(ring) }

        catchStopSignals()

        let attached = session.probes.filter(\.attached).count
        let failed = session.probes.count - attached
        if !options.quiet {
            var line = "skbtrail-record: recording into \(options.output): \(attached) probes attached"
            if failed > 0 { line += ", \(failed) not (see `skbtrail info \(options.output)`)" }
            warn(line)
        }

        let child: pid_t?
        do {
            child = try options.command.isEmpty ? nil : spawn(options.command)
        } catch {
            // nothing was recorded: no bundle is left behind
            session.detach()
            try? writer.finish(endedNs: UInt64(Kernel.bootNs()), reason: "the command could not run")
            try? FileManager.default.removeItem(atPath: options.output)
            throw error
        }

        let stop = StopConditions(duration: options.limits.duration, maxEvents: sink.maxEvents,
                                  maxSize: maxSize, maxSizeText: options.limits.maxSize, child: child)
        var (reason, childStatus) = try recordingLoop(ring: ring, session: session, sink: sink, stop: stop,
                                                      rescanNetns: filters.netnsInode == nil)
        if childStatus == nil, let child { reason += stopChild(child) }
        // Events still in flight when the command exits: give the softirqs a moment, then detach.
        if childStatus != nil { _ = ring_buffer__poll(ring, 50) }
        session.detach()
        ring_buffer__consume(ring)
        sink.flush()
        sink.drain()

        let lost = try writeEnd(writer, session: session, sink: sink, reason: reason, netnsFilter: filters.netnsInode,
                                startNamespaces: namespaces, rootInode: rootInode)
        let totalLost = lost.values.reduce(0, +)
        if !options.quiet {
            let perEvent = sink.events > 0 ? Double(writer.storedBytes) / Double(sink.events) : 0
            warn(String(format: "skbtrail-record: stopped (%@): %d events in %d chunks, %@ stored (%.1f B/event, %.1fx), %llu lost",
                        reason, sink.events, writer.chunks, formatBytes(writer.storedBytes), perEvent,
                        writer.storedBytes > 0 ? Double(writer.rawBytes) / Double(writer.storedBytes) : 0, totalLost))
        }
        if sink.events == 0 {
            let filtered = [options.filters.saddr, options.filters.daddr, options.filters.addr, options.filters.proto,
                            options.filters.netns, options.filters.ifname].contains { $0 != nil }
                || options.filters.sport != nil || options.filters.dport != nil || options.filters.port != nil || options.filters.pid != nil
            warn("skbtrail-record: no events recorded" + (filtered ? ": nothing matched the capture filters (check them against `ip -all netns exec ip addr`, or record without them)" : ""))
        }
        // COMMAND's own status, so `skbtrail-record -o t.skbt -- make test` fails as make test does
        guard let status = childStatus else { return 0 }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// The end of the recording: losses, symbols, the snapshot again, then a self-contained file. After a
    /// write error (a full disk) these are best effort: the committed chunks matter more. Returns the
    /// events lost per CPU.
    func writeEnd(_ writer: BundleWriter, session: BPFSession, sink: ChunkSink, reason: String, netnsFilter: UInt32?,
                  startNamespaces: [Netns], rootInode: UInt32?) throws -> [Int: UInt64] {
        let writeFailure = sink.error
        let lost = session.lostPerCPU().merging(sink.malformed) { $0 + $1 }
        do {
            try writer.writeLost(lost)
            if options.dropStack {
                let misses = session.dropStackMisses()
                session.noteDropStackMisses(misses)
                if misses > 0 { warn("skbtrail-record: \(misses) drops have no stack (--drop-stack): the stack map had another stack in their hash bucket, or was full") }
            }
            try writer.writeProbes(session.probes)
            let symbols = KernelSymbols()
            let stacks = options.dropStack ? session.dropStacks() : [:]
            if !stacks.isEmpty { try writer.writeStacks(stacks) }
            let addresses = sink.locations.union(stacks.values.joined())
            try writer.writeSymbols(addresses.sorted().compactMap { address in
                symbols.resolve(address).map { SymbolRow(address: address, name: $0.name, offset: $0.offset) }
            })
            var endNamespaces = Netns.all()
            if let inode = netnsFilter { endNamespaces = endNamespaces.filter { $0.inode == inode } }
            var endSnapshot = MachineSnapshotter.take(phase: "end", namespaces: endNamespaces, rootInode: rootInode)
            let known = Set(endSnapshot.netns.map(\.inode)).union(startNamespaces.map { Int64($0.inode) })
            for inode in sink.netnsSeen where !known.contains(Int64(inode)) {
                endSnapshot.netns.append(NetnsRow(inode: Int64(inode), name: nil, isRoot: inode == rootInode))
            }
            try writer.writeSnapshot(endSnapshot)
            try writer.finish(endedNs: UInt64(Kernel.bootNs()), reason: reason)
        } catch {
            throw RecorderError("""
                writing \(options.output) failed: \(describe(writeFailure ?? error)). The bundle keeps the \
                \(sink.committed.chunks) chunks committed before (\(sink.committed.chunks > 0 ? "analyze them with `skbtrail info \(options.output)`" : "none yet")); free some space or choose another -o FILE.
                """)
        }
        if let writeFailure {
            throw RecorderError("writing \(options.output) failed: \(describe(writeFailure)). The bundle keeps the \(sink.committed.chunks) chunks committed before; analyze them with `skbtrail info \(options.output)`.")
        }

        return lost
    }

    /// Which probes to record: those --probes names, by name or group, that --exclude-probes does not.
    /// Without --probes, or with `default` in it, every probe but the functions of the packet's path
    /// (ip-fn, ...: a record per function call), which --probes names by group, by function, or all
    /// with `functions`. Netfilter brackets are the group "netfilter".
    func probeSelection() -> (_ name: String, _ group: String) -> Bool {
        Self.probeSelection(probes: options.probes, exclude: options.excludeProbes)
    }

    static func probeSelection(probes: String?, exclude excluded: String?) -> (_ name: String, _ group: String) -> Bool {
        let include = Set((probes ?? ProbeSelectors.defaultSet).split(separator: ",").map(String.init))
        let exclude = Set((excluded ?? "").split(separator: ",").map(String.init))
        let pathGroups = ProbeTable.pathGroups
        return { name, group in
            let path = pathGroups.contains(group)
            // `default` and `functions` name sets, in either list
            let set = path ? ProbeSelectors.functions : ProbeSelectors.defaultSet
            let named = include.contains(name) || include.contains(group) || include.contains(set)
            return named && !exclude.contains(name) && !exclude.contains(group) && !exclude.contains(set)
        }
    }

    /// The bundle's `recording` row: what records, where, how.
    func recordingRow(filters: CaptureFilters) -> Recording {
        let host = Kernel.uname()
        let filtersJSON = String(decoding: (try? JSONEncoder().encode(filters)) ?? Data("{}".utf8), as: UTF8.self)
        let commandJSON = String(decoding: (try? JSONSerialization.data(withJSONObject: CommandLine.arguments)) ?? Data("[]".utf8), as: UTF8.self)
        return Recording(
            formatVersion: BundleFormat.version, recorderVersion: recorderVersion, uuid: UUID().uuidString.lowercased(),
            commandLine: commandJSON, filters: filtersJSON, host: host.host, kernelRelease: host.release,
            kernelVersion: host.version, machine: host.machine, byteOrder: BundleFormat.hostByteOrder,
            bootToUnixNs: Kernel.bootToUnixNs(), codec: options.zstdLevel == 0 ? "none" : SplitCodec.name,
            codecLevel: options.zstdLevel, snaplen: options.snaplen, eventSize: BundleFormat.eventSize,
            startedNs: Kernel.bootNs())
    }

    /// Drains the ring buffer into `sink` until a stop condition holds; keeps the status line fresh and,
    /// unless a namespace filter pins one, attaches netfilter brackets in namespaces that appear.
    /// Returns why it stopped, and the command's wait status when its exit was the reason.
    func recordingLoop(ring: OpaquePointer, session: BPFSession, sink: ChunkSink, stop: StopConditions,
                       rescanNetns: Bool) throws -> (reason: String, childStatus: Int32?) {
        let start = Date()
        let status = StatusLine(enabled: !options.quiet)
        defer { status.finish() }
        var lastRescan = Date()
        while true {
            let n = ring_buffer__poll(ring, 100)
            if n < 0 && n != -EINTR {
                throw RecorderError("reading the BPF ring buffer failed: \(String(cString: strerror(-n)))")
            }
            ring_buffer__consume(ring) // lazy wake-ups: data may wait without an epoll event
            if let why = stop.reached(sink: sink, elapsed: Date().timeIntervalSince(start)) { return why }
            if Date().timeIntervalSince(sink.lastFlush) >= 1 { sink.flush() }
            if rescanNetns, Date().timeIntervalSince(lastRescan) >= 1 {
                lastRescan = Date()
                for ns in Netns.all() { session.attachNetfilter(in: ns) }
            }
            status.update(events: sink.events, lost: session.lostPerCPU().values.reduce(0, +),
                          stored: sink.committed.stored, raw: sink.rawBytes, elapsed: Date().timeIntervalSince(start))
        }
    }

    /// --check: load every program through the verifier and print each verdict. Programs this kernel
    /// cannot have are listed as skipped, with why, and do not fail the check.
    func check(config: st_config) throws {
        let results = try BPFSession.verifyAll(config: config)
        var bad = 0, skipped = 0
        for (program, verdict) in results {
            switch verdict {
            case .passed: print("ok       \(program)")
            case .rejected(let why): bad += 1; print("REJECTED \(program): \(why)")
            case .notForThisKernel(let why): skipped += 1; print("SKIPPED  \(program): \(why)")
            }
        }
        let tried = results.count - skipped
        var summary = "\(tried - bad) of \(tried) BPF programs passed the verifier"
        if skipped > 0 { summary += "; \(skipped) not for this kernel (SKIPPED)" }
        print(summary)
        if bad > 0 { throw RecorderError("\(bad) BPF programs were rejected by this kernel's verifier") }
    }

    func writeKernelEnums(_ writer: BundleWriter) throws {
        guard let btf = btf__load_vmlinux_btf() else { return }
        defer { btf__free(btf) }
        func values(_ enumName: String, dropping prefix: String) -> [EnumName] {
            let n = skbtrail_btf_enum_count(btf, enumName)
            guard n > 0 else { return [] }
            return (0..<n).compactMap { i in
                var name: UnsafePointer<CChar>?
                var value: Int64 = 0
                guard skbtrail_btf_enum_at(btf, enumName, i, &name, &value) == 0, let name else { return nil }
                var text = String(cString: name)
                if text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
                return EnumName(value: value, name: text)
            }
        }
        try writer.writeEnum(table: "drop_reason", values("skb_drop_reason", dropping: "SKB_DROP_REASON_"))
        try writer.writeEnum(table: "rst_reason", values("sk_rst_reason", dropping: "SK_RST_REASON_"))
    }

    func spawn(_ command: [String]) throws -> pid_t {
        var pid = pid_t()
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawnp(&pid, command[0], nil, nil, argv, environ)
        guard rc == 0 else {
            throw RecorderError("cannot run \(command[0]): \(String(cString: strerror(rc))). Check the command after --.")
        }
        return pid
    }

    /// Ends the command the recorder started: SIGTERM, then SIGKILL after two seconds.
    func stopChild(_ pid: pid_t) -> String {
        kill(pid, SIGTERM)
        var st: Int32 = 0
        for _ in 0..<20 {
            if waitpid(pid, &st, WNOHANG) == pid { return "; command stopped" }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &st, 0)
        return "; command killed"
    }
}

/// When a recording stops: a signal, a write error, its duration, its event or size limit, or the end
/// of the command it runs.
struct StopConditions {
    var duration: Double?
    var maxEvents: Int?
    var maxSize: Int?
    var maxSizeText: String?
    var child: pid_t?

    /// Why the recording should stop now (and the command's wait status when it ended), or nil.
    func reached(sink: ChunkSink, elapsed: Double) -> (reason: String, childStatus: Int32?)? {
        if stopSignal != 0 { return ("signal \(signalName(stopSignal))", nil) }
        if let error = sink.error { return ("write error: \(error)", nil) }
        if let duration, elapsed >= duration { return ("duration \(duration)s", nil) }
        if sink.limitReached { return ("max events \(maxEvents ?? 0)", nil) }
        if let maxSize, sink.committed.stored >= maxSize { return ("max size \(maxSizeText ?? "")", nil) }
        if let child {
            var st: Int32 = 0
            if waitpid(child, &st, WNOHANG) == child { return (exitDescription(st), st) }
        }
        return nil
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP from here on into `stopSignal`, even when the parent left them
/// blocked (swift-testing's threads do).
func catchStopSignals() {
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal(sig) { stopSignal = $0 }
        sigaddset(&stopSignals, sig)
    }
    sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
}

/// A command's wait status in words.
func exitDescription(_ status: Int32) -> String {
    let sig = status & 0x7f
    return sig == 0 ? "command exited \((status >> 8) & 0xff)" : "command killed by \(signalName(sig))"
}

/// A write error in words: SQLite's "database or disk is full" becomes "the disk is full".
func describe(_ error: Error) -> String {
    let text = "\(error)"
    if text.contains("disk is full") || text.contains("SQLITE_FULL") { return "the disk is full (\(text))" }
    return text
}

func signalName(_ sig: Int32) -> String {
    switch sig {
    case SIGINT: return "SIGINT"
    case SIGTERM: return "SIGTERM"
    case SIGHUP: return "SIGHUP"
    case SIGKILL: return "SIGKILL"
    default: return "signal \(sig)"
    }
}

func warn(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

#endif
