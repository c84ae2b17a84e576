import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The recorder against the real kernel: namespaces, veths, iptables rules and real traffic, checked
// against the kernel's own counters. Needs root and BTF; skipped with a message elsewhere.
// Serialized: every recording attaches to every namespace, and two cores are shared with the build.

/// Runs the recorder to completion (at most `timeout` seconds) and returns its exit status and stderr.
func record(_ lab: Lab, _ output: String, _ flags: [String], command: [String] = [], timeout: Double = 90)
    throws -> (status: Int32, stderr: String) {
    let recorder = try Background([try recorderPath(), "-o", output] + flags + (command.isEmpty ? [] : ["--"] + command),
                                  stderrTo: lab.dir.appendingPathComponent("recorder-\(UUID().uuidString).err"))
    lab.track(recorder)
    guard let status = recorder.wait(timeout: timeout) else {
        recorder.stop()
        throw TestFailure("skbtrail-record did not stop within \(timeout) s: \(recorder.stderrText())")
    }
    return (status, recorder.stderrText())
}

/// Two namespaces joined by a veth: the client A and the server B.
struct TwoHosts {
    let a: String, b: String, ifA: String, ifB: String, addrA: String, addrB: String

    init(_ lab: Lab, subnet: Int) throws {
        a = try lab.netns("a")
        b = try lab.netns("b")
        ifA = "\(lab.tag)a"
        ifB = "\(lab.tag)b"
        addrA = "10.198.\(subnet).1"
        addrB = "10.198.\(subnet).2"
        try lab.veth(a, ifA, addrA + "/24", b, ifB, addrB + "/24")
    }
}

@Suite("Recorder end to end (root, BPF)", .serialized, .enabled(if: Machine.canRecord, Machine.skipComment))
struct RecorderEndToEndTests {
    @Test("iptables DROP: NETFILTER_DROP events equal the rule's counter; names resolve through the bundle")
    func netfilterDropMatchesRuleCounter() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 11)
        let (udpPort, tcpPort, pings) = (5311, 5312, 4)
        try Shell.must(["ip", "netns", "exec", hosts.b, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-j", "DROP"])
        _ = try lab.background(in: hosts.b, ["nc", "-k", "-l", hosts.addrB, "\(tcpPort)"])
        _ = try lab.background(in: hosts.b, ["nc", "-u", "-l", hosts.addrB, "\(udpPort)"])
        try lab.waitListening(in: hosts.b, "t", port: tcpPort)
        try lab.waitListening(in: hosts.b, "u", port: udpPort)

        let bundle = lab.dir.appendingPathComponent("drop.skbt").path
        let run = try record(lab, bundle, ["--addr", hosts.addrB], command: [
            "ip", "netns", "exec", hosts.a, "bash", "-c", """
            ping -c \(pings) -i 0.2 -W 1 \(hosts.addrB) >/dev/null
            echo udp-hello >/dev/udp/\(hosts.addrB)/\(udpPort)
            echo tcp-hello | nc -N -w 2 \(hosts.addrB) \(tcpPort)
            exit 0
            """,
        ])
        try #require(run.status == 0, "skbtrail-record failed: \(run.stderr)")
        #expect(run.stderr.contains("stopped (command exited 0)"), "\(run.stderr)")
        let counter = try iptablesPackets(ns: hosts.b, chain: "INPUT", target: "DROP")
        #expect(counter == pings, "the DROP rule counted \(counter) packets for \(pings) pings")

        let reader = try BundleReader(path: bundle)
        #expect(reader.recording.endedNs != nil)
        #expect(reader.recording.stopReason?.contains("command exited 0") == true)
        // Every chunk carries zstd's checksum of its records, verified whenever it is read.
        let stored = try reader.readBundle { try Data.fetchAll($0, sql: "SELECT data FROM chunk") }
        #expect(!stored.isEmpty && stored.allSatisfy(Zstd.hasChecksum), "chunks without a zstd checksum")
        let events = try reader.events()
        let reasons = try reader.enumNames(table: "drop_reason")
        let netfilterDrop = try #require(reasons.first { $0.value == "NETFILTER_DROP" }?.key,
                                         "the bundle's drop_reason table has no NETFILTER_DROP")

        let drops = events.filter {
            $0.probe == Int(ST_P_KFREE_SKB.rawValue) && $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB)
                && Int64($0.args.free.reason) == netfilterDrop
        }
        // The kernel's own count of dropped packets and the bundle's agree.
        #expect(drops.count == counter, "\(drops.count) NETFILTER_DROP kfree_skb events, the rule counted \(counter)")

        let symbols = Dictionary(try reader.symbols().map { (UInt64(bitPattern: $0.address), $0) }, uniquingKeysWith: { a, _ in a })
        let interfaces = try reader.interfaces()
        let namespaces = try reader.netns()
        let inodeB = try lab.inode(of: hosts.b)
        #expect(namespaces.contains { $0.inode == inodeB && $0.name == hosts.b },
                "netns table \(namespaces) lacks \(hosts.b) = \(inodeB)")
        #expect(namespaces.contains { $0.inode == (try? lab.inode(of: hosts.a)) && $0.name == hosts.a })
        let kallsyms = try Kallsyms()
        #expect(kallsyms.count > 10_000, "only \(kallsyms.count) text symbols in /proc/kallsyms")
        // iptables-nft drops in nft_do_chain (NF_DROP_REASON), iptables-legacy in nf_hook_slow.
        let netfilterFunctions: Set = ["nf_hook_slow", "nft_do_chain", "ipt_do_table", "nf_hook_slow_list"]
        for drop in drops {
            let location = drop.args.free.location
            let symbol = symbols[location]
            let kernel = kallsyms.resolve(location)
            #expect(symbol?.name == kernel?.name && symbol.map { UInt64($0.offset) } == kernel?.offset,
                    "drop location \(String(location, radix: 16)) is \(String(describing: kernel)) in /proc/kallsyms, the bundle says \(String(describing: symbol))")
            #expect(netfilterFunctions.contains(kernel?.name ?? ""), "drop location is \(String(describing: kernel)), not in netfilter")
            #expect(drop.flags & UInt8(ST_F_NF_LAST.rawValue) != 0)
            #expect(drop.args.free.nf_pf == 2 && drop.args.free.nf_hook == 1, "dropped after IPv4 INPUT hook")
            #expect(drop.netns == inodeB)
            let name = interfaces.first { $0.netns == drop.netns && $0.ifindex == drop.ifindex }?.name
            #expect(name == hosts.ifB, "ifindex \(drop.ifindex) in netns \(drop.netns) is \(name ?? "nothing") in the bundle")
        }

        // The allowed traffic is there too, and not dropped by netfilter.
        let udp = events.filter { $0.isIPv4(17, from: hosts.addrA, to: hosts.addrB) && $0.dport == udpPort }
        let tcp = events.filter { $0.isIPv4(6, from: hosts.addrA, to: hosts.addrB) && $0.dport == tcpPort }
        #expect(!udp.isEmpty, "no event of the UDP datagram to :\(udpPort)")
        #expect(!tcp.isEmpty, "no event of the TCP connection to :\(tcpPort)")
        #expect(tcp.contains { $0.netns == inodeB }, "the TCP connection never reached \(hosts.b)")
        let wronglyDropped = (udp + tcp).filter { $0.probe == Int(ST_P_KFREE_SKB.rawValue) && Int64($0.args.free.reason) == netfilterDrop }
        #expect(wronglyDropped.isEmpty)
        // The kernel delivered the datagram and accepted the connection: its counters in B say so.
        let snmp = try Shell.must(["ip", "netns", "exec", hosts.b, "cat", "/proc/net/snmp"])
        #expect(snmpCounter(snmp, "Udp", "InDatagrams") == 1)
        #expect(snmpCounter(snmp, "Tcp", "PassiveOpens") == 1)

        // The snapshots hold the same counters: the rule's at the start (0) and at the end (the kernel's
        // count), and B's SNMP counters at the end.
        func snapshot(_ phase: String, _ source: String) throws -> String {
            try reader.readBundle {
                try String.fetchOne($0, sql: "SELECT content FROM snapshot WHERE netns = ? AND phase = ? AND source = ?",
                                    arguments: [Int64(inodeB), phase, source])
            } ?? ""
        }
        #expect(try snapshot("start", "iptables-save").contains("[0:0] -A INPUT -p icmp -j DROP"))
        #expect(try snapshot("end", "iptables-save").contains("[\(counter):"), "the end snapshot lacks the rule's count \(counter)")
        let endSNMP = try snapshot("end", "proc-net-snmp")
        #expect(snmpCounter(endSNMP, "Udp", "InDatagrams") == 1)
        #expect(snmpCounter(endSNMP, "Tcp", "PassiveOpens") == 1)
        #expect(endSNMP.contains("TcpExt:") && endSNMP.contains("Ip6InReceives"))
        #expect(try snapshot("end", "ss-listen").contains("\(hosts.addrB):\(tcpPort)"))
    }

    @Test("a filter that excludes the flow records none of it")
    func excludingFilterRecordsNothingOfTheFlow() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 12)
        try Shell.must(["ip", "netns", "exec", hosts.b, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-j", "DROP"])
        let bundle = lab.dir.appendingPathComponent("none.skbt").path
        let run = try record(lab, bundle, ["--addr", "10.198.250.250"], command: [
            "ip", "netns", "exec", hosts.a, "bash", "-c", "ping -c 3 -i 0.2 -W 1 \(hosts.addrB) >/dev/null; exit 0",
        ])
        try #require(run.status == 0, "skbtrail-record failed: \(run.stderr)")
        #expect(try iptablesPackets(ns: hosts.b, chain: "INPUT", target: "DROP") == 3, "the traffic did happen")
        let events = try BundleReader(path: bundle).events()
        let ofFlow = events.filter { $0.involves(hosts.addrA) || $0.involves(hosts.addrB) }
        #expect(ofFlow.isEmpty, "\(ofFlow.count) events of the excluded flow were recorded")
    }

    @Test("--check: every BPF program passes this kernel's verifier")
    func verifierAcceptsEveryProgram() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let result = try Shell.run([try recorderPath(), "--check", "-o", lab.dir.appendingPathComponent("unused.skbt").path])
        #expect(result.ok, "--check exited \(result.status): \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let summary = try #require(lines.last, "--check printed nothing")
        let verdicts = lines.dropLast()
        let rejected = verdicts.filter { !$0.hasPrefix("ok ") }
        #expect(rejected.isEmpty, "rejected or unexpected lines:\n\(rejected.joined(separator: "\n"))")
        #expect(verdicts.count > 50, "only \(verdicts.count) programs checked")
        #expect(summary == "\(verdicts.count) of \(verdicts.count) BPF programs passed the verifier", "\(summary)")
    }

    @Test("a kernel without some tracepoints still records, and the bundle says what is missing")
    func degradedKernelStillRecords() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 13)
        let bundle = lab.dir.appendingPathComponent("degraded.skbt").path
        let missing: Set = ["kfree_skb", "net_dev_queue"]
        let run = try record(lab, bundle, ["--addr", hosts.addrB, "--pretend-missing", missing.sorted().joined(separator: ",")],
                             command: ["ip", "netns", "exec", hosts.a, "ping", "-c", "3", "-i", "0.2", "-q", hosts.addrB])
        try #require(run.status == 0, "skbtrail-record failed: \(run.stderr)")
        let reader = try BundleReader(path: bundle)
        let probes = try reader.probes()
        for name in missing {
            let rows = probes.filter { $0.name == name }
            #expect(!rows.isEmpty, "no probe row for \(name)")
            for row in rows {
                #expect(!row.attached, "\(name) attached although pretended missing")
                #expect(!(row.error ?? "").isEmpty, "\(name) has no error saying why it did not attach")
            }
        }
        #expect(probes.filter { !missing.contains($0.name) && $0.attached }.count > 10, "the other probes attached")
        let events = try reader.events()
        let seen = Set(events.map(\.probe))
        #expect(!seen.contains(Int(ST_P_KFREE_SKB.rawValue)) && !seen.contains(Int(ST_P_NET_DEV_QUEUE.rawValue)))
        #expect(seen.contains(Int(ST_P_NETIF_RECEIVE_SKB.rawValue)), "no netif_receive_skb events: \(seen.sorted())")
        #expect(seen.contains(Int(ST_P_NET_DEV_START_XMIT.rawValue)), "no net_dev_start_xmit events: \(seen.sorted())")
        #expect(events.contains { $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB) })
    }

    @Test("--duration stops by itself")
    func durationStops() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let bundle = lab.dir.appendingPathComponent("duration.skbt").path
        let started = Date()
        let run = try record(lab, bundle, ["--duration", "1", "--addr", "10.198.250.251"], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(Date().timeIntervalSince(started) >= 1)
        let reader = try BundleReader(path: bundle)
        #expect(reader.recording.endedNs != nil)
        #expect(reader.recording.stopReason?.contains("duration") == true, "\(String(describing: reader.recording.stopReason))")
    }

    @Test("a TCP bulk stream: programs interrupting each other on a CPU keep their records whole")
    func nestedProgramsKeepRecordsWhole() throws {
        // A softirq's receive path runs BPF programs on top of the sender's task-context ones; with one
        // record under construction per CPU the inner program overwrote the outer's, and the ring
        // buffer got records whose size field was not theirs (the bundle could not be walked).
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 17)
        let port = 5617
        _ = try lab.background(in: hosts.b, ["bash", "-c", "nc -l \(hosts.addrB) \(port) >/dev/null"])
        try lab.waitListening(in: hosts.b, "t", port: port)
        let bundle = lab.dir.appendingPathComponent("stream.skbt").path
        let run = try record(lab, bundle, ["--addr", hosts.addrB], command: [
            "ip", "netns", "exec", hosts.a, "bash", "-c", "head -c 300M /dev/zero | nc -N -w 5 \(hosts.addrB) \(port)",
        ])
        try #require(run.status == 0, "skbtrail-record failed: \(run.stderr)")
        let reader = try BundleReader(path: bundle)
        let records = try reader.chunks().reduce(0) { $0 + $1.records }
        #expect(records > 10_000, "\(records) records of a 300 MB stream")
        let events = try reader.events()  // throws on a record whose size is not its own
        #expect(events.count == records)
        #expect(events.contains { $0.probe == Int(ST_P_TCP_PROBE.rawValue) })
        // the recorder leaves a malformed record out and counts it as lost
        let lost = try reader.lost().values.reduce(0, +)
        #expect(lost == 0, "\(lost) events lost or malformed")
        // records that left their bytes out find them: an interrupting program's record, which reaches
        // the ring buffer first, is never the reference
        let same = events.filter { $0.flags & UInt8(ST_F_SAME_BYTES.rawValue) != 0 }.count
        let nested = events.filter { $0.flags & UInt8(ST_F_NESTED.rawValue) != 0 }.count
        #expect(same > 0, "no record left its bytes out")
        let unresolved = try reader.unresolvedBytes()
        #expect(unresolved == 0, "\(unresolved) of \(same) records without bytes have no reference (\(nested) nested records)")
    }

    @Test("--max-events stops at the limit, and ends the command")
    func maxEventsStops() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 14)
        let bundle = lab.dir.appendingPathComponent("max.skbt").path
        // ping runs until the recorder stops it.
        let run = try record(lab, bundle, ["--max-events", "50", "--addr", hosts.addrB],
                             command: ["ip", "netns", "exec", hosts.a, "ping", "-i", "0.05", "-q", hosts.addrB], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        let reader = try BundleReader(path: bundle)
        let records = try reader.chunks().reduce(0) { $0 + $1.records }
        #expect(records > 0 && records <= 50, "\(records) records with --max-events 50")
        #expect(try reader.events().count == records)
        #expect(reader.recording.stopReason?.contains("max events") == true, "\(String(describing: reader.recording.stopReason))")
    }

    @Test("SIGTERM ends a recording cleanly")
    func sigtermEndsCleanly() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let bundle = lab.dir.appendingPathComponent("term.skbt").path
        let recorder = try Background([try recorderPath(), "-o", bundle, "--addr", "10.198.250.252"],
                                      stderrTo: lab.dir.appendingPathComponent("term.err"))
        lab.track(recorder)
        try waitUntilRecording(recorder)
        recorder.signal(SIGTERM)
        let status = recorder.wait(timeout: 30)
        #expect(status == 0, "exit status \(String(describing: status)): \(recorder.stderrText())")
        let reader = try BundleReader(path: bundle)
        #expect(reader.recording.endedNs != nil)
        #expect(reader.recording.stopReason?.contains("SIGTERM") == true, "\(String(describing: reader.recording.stopReason))")
    }

    @Test("SIGTERM stops a recorder whose parent left SIGTERM blocked (as swift-testing's threads do)")
    func sigtermWithInheritedBlockedMask() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let bundle = lab.dir.appendingPathComponent("blocked.skbt").path
        // Make sure the mask we pass on blocks SIGTERM, whatever thread runs this test.
        var block = sigset_t(), old = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &block, &old)
        let recorder = try Background([try recorderPath(), "-o", bundle, "--addr", "10.198.250.254"],
                                      stderrTo: lab.dir.appendingPathComponent("blocked.err"), inheritSignalMask: true)
        pthread_sigmask(SIG_SETMASK, &old, nil)
        lab.track(recorder)
        try waitUntilRecording(recorder)
        recorder.signal(SIGTERM)
        let status = recorder.wait(timeout: 10)
        #expect(status == 0, "still running 10 s after SIGTERM: \(recorder.stderrText())")
    }

    @Test("kill -9 mid-recording leaves the committed chunks readable")
    func killNineLeavesReadableChunks() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 15)
        let bundle = lab.dir.appendingPathComponent("killed.skbt").path
        let recorder = try Background([try recorderPath(), "-o", bundle, "--addr", hosts.addrB, "--",
                                       "ip", "netns", "exec", hosts.a, "ping", "-i", "0.05", "-q", hosts.addrB],
                                      stderrTo: lab.dir.appendingPathComponent("killed.err"))
        lab.track(recorder)
        try waitUntilRecording(recorder)
        // Chunks are committed about once a second: wait for the first.
        var committed = 0
        for _ in 0..<100 where committed == 0 {
            usleep(200_000)
            committed = (try? BundleReader(path: bundle).chunks().count) ?? 0
        }
        #expect(committed > 0, "no chunk committed within 20 s: \(recorder.stderrText())")
        let children = recorder.childPIDs()
        recorder.signal(SIGKILL)
        _ = recorder.wait(timeout: 10)
        for child in children { kill(child, SIGTERM) } // the orphaned ping, by PID
        let reader = try BundleReader(path: bundle)
        #expect(reader.recording.endedNs == nil)
        let chunks = try reader.chunks()
        #expect(!chunks.isEmpty)
        let events = try reader.events()
        #expect(events.count == chunks.reduce(0) { $0 + $1.records })
        #expect(events.contains { $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB) })
    }

    @Test("a full disk ends the recording with a sentence, and the committed chunks stay readable")
    func fullDiskKeepsCommittedChunks() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let hosts = try TwoHosts(lab, subnet: 16)
        // A real full disk: a 400 KiB tmpfs, unmounted afterwards.
        let mount = lab.dir.appendingPathComponent("tiny").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try Shell.must(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", mount])
        defer { _ = try? Shell.run(["umount", mount]) }
        let bundle = mount + "/full.skbt"
        let result = try Shell.run([try recorderPath(), "-o", bundle, "--addr", hosts.addrB, "--",
                                    "ip", "netns", "exec", hosts.a, "ping", "-f", "-c", "50000", "-q", hosts.addrB])
        #expect(result.status != 0, "a full disk must not look like success")
        #expect(result.stderr.contains("writing \(bundle) failed: the disk is full"), "\(result.stderr)")
        let reader = try BundleReader(path: bundle)
        let chunks = try reader.chunks()
        #expect(!chunks.isEmpty, "nothing committed before the disk filled")
        #expect(try reader.events().count == chunks.reduce(0) { $0 + $1.records })
    }

    @Test("bad flags and files exit non-zero with a sentence naming them", arguments: [
        (["--snaplen", "5"], "--snaplen"),
        (["--proto", "bogus"], "--proto bogus"),
        (["--addr", "not-an-address"], "--addr not-an-address"),
        (["--probes", "nosuchprobe"], "nosuchprobe"),
        (["--netns", "skbtrail-no-such-ns"], "skbtrail-no-such-ns"),
    ])
    func badFlags(flags: [String], named: String) throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let bundle = lab.dir.appendingPathComponent("bad.skbt").path
        let result = try Shell.run([try recorderPath(), "-o", bundle, "--duration", "1"] + flags)
        #expect(result.status != 0)
        let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.contains(named), "stderr does not name \(named): \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle), "a bundle was left behind")
    }

    @Test("an existing output file or an unwritable place is refused by name")
    func badOutputs() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let existing = lab.dir.appendingPathComponent("exists.skbt").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        for path in [existing, "/proc/skbtrail-test.skbt", lab.dir.appendingPathComponent("no/such/dir/x.skbt").path] {
            let result = try Shell.run([try recorderPath(), "-o", path, "--duration", "1", "--addr", "10.198.250.253"])
            #expect(result.status != 0, "\(path) was accepted")
            let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.contains(path), "stderr does not name \(path): \(result.stderr)")
        }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me", "the existing file was touched")
    }
}

/// Waits until the recorder says it records (its programs are attached and the bundle exists).
func waitUntilRecording(_ recorder: Background, timeout: Double = 60) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if recorder.stderrText().contains("recording into") { return }
        if !recorder.isRunning { throw TestFailure("skbtrail-record exited early: \(recorder.stderrText())") }
        usleep(100_000)
    }
    throw TestFailure("skbtrail-record did not start recording within \(timeout) s: \(recorder.stderrText())")
}

/// A counter from the text of /proc/net/snmp: a header line and a value line per protocol.
func snmpCounter(_ text: String, _ proto: String, _ name: String) -> Int? {
    let lines = text.split(separator: "\n").filter { $0.hasPrefix(proto + ":") }.map { $0.split(separator: " ") }
    guard lines.count >= 2, let column = lines[0].firstIndex(of: Substring(name)), column < lines[1].count else { return nil }
    return Int(lines[1][column])
}
