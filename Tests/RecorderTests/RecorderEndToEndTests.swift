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

/// A pings B `pings` times, which B's filter INPUT drops (iptables -p icmp -j DROP), recorded with --addr B.
func recordDroppedPings(_ lab: Lab, subnet: Int, pings: Int) throws -> (hosts: TwoHosts, bundle: String) {
    let hosts = try TwoHosts(lab, subnet: subnet)
    try Shell.must(["ip", "netns", "exec", hosts.b, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-j", "DROP"])
    let bundle = lab.dir.appendingPathComponent("pings-\(subnet).skbt").path
    let run = try record(lab, bundle, ["--addr", hosts.addrB], command: [
        "ip", "netns", "exec", hosts.a, "bash", "-c", "ping -c \(pings) -i 0.2 -W 1 \(hosts.addrB) >/dev/null; exit 0",
    ])
    try #require(run.status == 0, "skbtrail-record failed: \(run.stderr)")
    return (hosts, bundle)
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
    @Test("iptables DROP: the drops recorded equal the rule's counter; names resolve through the bundle")
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
        let run = try record(lab, bundle, ["--addr", hosts.addrB, "--drop-stack"], command: [
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
        let symbols = Dictionary(try reader.symbols().map { (UInt64(bitPattern: $0.address), $0) }, uniquingKeysWith: { a, _ in a })
        // iptables-nft drops in nft_do_chain (NF_DROP_REASON), iptables-legacy in nf_hook_slow.
        let netfilterFunctions: Set = ["nf_hook_slow", "nft_do_chain", "ipt_do_table", "nf_hook_slow_list"]
        // A netfilter drop: by its reason where kfree_skb has one (5.17+), else by where it was freed.
        let isNetfilterDrop: (Event) -> Bool
        if KernelFeatures.dropReasons {
            let reasons = try reader.enumNames(table: "drop_reason")
            let netfilterDrop = try #require(reasons.first { $0.value == "NETFILTER_DROP" }?.key,
                                             "the bundle's drop_reason table has no NETFILTER_DROP")
            isNetfilterDrop = { $0.probe == Int(ST_P_KFREE_SKB.rawValue) && Int64($0.args.free.reason) == netfilterDrop }
        } else {
            isNetfilterDrop = { event in
                event.probe == Int(ST_P_KFREE_SKB.rawValue)
                    && netfilterFunctions.contains(symbols[event.args.free.location]?.name ?? "")
            }
        }

        let drops = events.filter { $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB) && isNetfilterDrop($0) }
        // The kernel's own count of dropped packets and the bundle's agree.
        #expect(drops.count == counter, "\(drops.count) netfilter kfree_skb events, the rule counted \(counter)")

        let interfaces = try reader.interfaces()
        let namespaces = try reader.netns()
        let inodeB = try lab.inode(of: hosts.b)
        #expect(namespaces.contains { $0.inode == inodeB && $0.name == hosts.b },
                "netns table \(namespaces) lacks \(hosts.b) = \(inodeB)")
        #expect(namespaces.contains { $0.inode == (try? lab.inode(of: hosts.a)) && $0.name == hosts.a })
        let stacks = try reader.stacks()
        let kallsyms = try Kallsyms()
        #expect(kallsyms.count > 10_000, "only \(kallsyms.count) text symbols in /proc/kallsyms")
        for drop in drops {
            let location = drop.args.free.location
            let symbol = symbols[location]
            let kernel = kallsyms.resolve(location)
            #expect(symbol?.name == kernel?.name && symbol.map { UInt64($0.offset) } == kernel?.offset,
                    "drop location \(String(location, radix: 16)) is \(String(describing: kernel)) in /proc/kallsyms, the bundle says \(String(describing: symbol))")
            #expect(netfilterFunctions.contains(kernel?.name ?? ""), "drop location is \(String(describing: kernel)), not in netfilter")
            // --drop-stack: the drop's kernel stack holds the free's caller (the location is its return
            // address) below the tracing frames, and the netfilter hook that ran the table
            let stack = try #require(stacks[drop.args.free.stack], "drop at \(String(describing: kernel)) has no stack (id \(drop.args.free.stack))")
            #expect(stack.contains(location), "the stack \(stack.map { kallsyms.resolve($0)?.name ?? "?" }) lacks the location")
            #expect(stack.contains { kallsyms.resolve($0)?.name == "nf_hook_slow" }, "no nf_hook_slow in \(stack.map { kallsyms.resolve($0)?.name ?? "?" })")
            #expect(stack.drop { $0 != location }.allSatisfy { symbols[$0] != nil }, "a frame below the free without a symbol in the bundle")
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
        let wronglyDropped = (udp + tcp).filter(isNetfilterDrop)
        #expect(wronglyDropped.isEmpty)
        // The kernel delivered the datagram and accepted the connection: its counters in B say so.
        let snmp = try Shell.must(["ip", "netns", "exec", hosts.b, "cat", "/proc/net/snmp"])
        #expect(snmpCounter(snmp, "Udp", "InDatagrams") == 1)
        #expect(snmpCounter(snmp, "Tcp", "PassiveOpens") == 1)

        // drops --stack: the pings' drops by stack add up to the rule's count, each with its frames
        let grouped = try Shell.run([try analyzerPath(), "drops", bundle, "--stack", "--format", "jsonl", "-p", "icmp", "--netns", hosts.b])
        #expect(grouped.ok, "skbtrail drops --stack: \(grouped.stderr)")
        let groups = grouped.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(groups.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == counter, "\(grouped.stdout)")
        #expect(groups.allSatisfy { ($0["stack"] as? [String])?.contains { $0.hasPrefix("nf_hook_slow+") } == true }, "\(grouped.stdout)")

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

    @Test("netfilter brackets: a drop's record names the hook it was dropped after",
          .enabled(if: KernelFeatures.netfilterLinks, KernelFeatures.noNetfilterLinks))
    func netfilterBracketNamesTheHook() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let pings = 2
        let (hosts, bundle) = try recordDroppedPings(lab, subnet: 14, pings: pings)
        #expect(try iptablesPackets(ns: hosts.b, chain: "INPUT", target: "DROP") == pings)
        let reader = try BundleReader(path: bundle)
        let inodeB = try lab.inode(of: hosts.b)
        #expect(try reader.probes().contains { $0.kind == "netfilter" && $0.attached && $0.netns == Int64(inodeB) },
                "no netfilter bracket attached in \(hosts.b)")
        let drops = try reader.events().filter {
            $0.probe == Int(ST_P_KFREE_SKB.rawValue) && $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB) && $0.netns == inodeB
        }
        #expect(drops.count == pings, "\(drops.count) kfree_skb events of the pings in \(hosts.b), \(pings) pings dropped")
        for drop in drops {
            #expect(drop.flags & UInt8(ST_F_NF_LAST.rawValue) != 0, "the drop carries no bracket")
            #expect(drop.args.free.nf_pf == 2 && drop.args.free.nf_hook == 1, "dropped after IPv4 INPUT hook")
        }
    }

    @Test("kernel functions: nft_do_chain's DROP verdicts equal the rule's counter, with hook, table and chain",
          .enabled(if: KernelFeatures.functionProbes, KernelFeatures.noFunctionProbes))
    func functionVerdictNamesTableAndChain() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let pings = 3
        // Debian's iptables is iptables-nft: the rule is in nft table ip filter, base chain INPUT
        let (hosts, bundle) = try recordDroppedPings(lab, subnet: 15, pings: pings)
        let counter = try iptablesPackets(ns: hosts.b, chain: "INPUT", target: "DROP")
        #expect(counter == pings, "the DROP rule counted \(counter) packets for \(pings) pings")

        let reader = try BundleReader(path: bundle)
        let row = try #require(try reader.probes().first { $0.name == "nft_do_chain" }, "no probe row for nft_do_chain")
        // fexit where the module has BTF (6.1, 6.12), the kprobe pair where not (5.10)
        let names = KernelFeatures.moduleBTF("nf_tables")
        #expect(row.attached && row.tier == 3 && row.kind == (names ? "fexit" : "kretprobe"),
                "nft_do_chain: \(row.kind) attached \(row.attached): \(row.error ?? "")")
        #expect(row.target == "nft_do_chain [nf_tables]", "\(row.target)")
        let inodeB = try lab.inode(of: hosts.b)
        let events = try reader.events()
        let pingsToB = events.filter { $0.isIPv4(1, from: hosts.addrA, to: hosts.addrB) && $0.netns == inodeB }
        let verdicts = pingsToB.filter { $0.probe == Int(ST_P_NFT_DO_CHAIN.rawValue) }
        let drops = verdicts.filter { $0.args.fn.ret & Int64(ST_NF_VERDICT_MASK) == Int64(ST_NF_DROP) }
        // each dropped ping: a DROP verdict that nf_hook_slow acts on, or (6.7+, NF_DROP_REASON) a free
        // inside nft_do_chain, whose record names the chain (the function then returns NF_STOLEN)
        let frees = pingsToB.filter { $0.probe == Int(ST_P_KFREE_SKB.rawValue) }
        let freedInside = frees.filter { $0.args.free.nf_fn & UInt8(ST_FN_NF_INSIDE.rawValue) != 0 }
        #expect(drops.count + freedInside.count == counter,
                "\(drops.count) DROP verdicts of nft_do_chain and \(freedInside.count) frees inside it in \(hosts.b), the rule counted \(counter)")
        #expect(!verdicts.contains { $0.args.fn.ret & Int64(ST_NF_VERDICT_MASK) == 2 }, "an NF_STOLEN exit recorded for a packet freed inside")
        func text<T>(_ chars: T) -> String { withUnsafeBytes(of: chars) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        for free in freedInside where names {
            let f = free.args.free
            #expect(text(f.nf_table) == "filter" && text(f.nf_chain) == "INPUT",
                    "freed inside table '\(text(f.nf_table))' chain '\(text(f.nf_chain))'")
        }
        for drop in drops {
            let fn = drop.args.fn
            #expect(fn.nf & UInt8(ST_FN_NF_HOOK.rawValue) != 0 && fn.pf == 2 && fn.hook == 1,
                    "the DROP verdict is not at ipv4 INPUT: pf \(fn.pf) hook \(fn.hook) (nf \(fn.nf))")
            if names {
                #expect(text(fn.table) == "filter" && text(fn.chain) == "INPUT" && fn.priority == 0,
                        "DROP verdict in table '\(text(fn.table))' chain '\(text(fn.chain))' priority \(fn.priority)")
            }
        }
        // each dropped ping's free carries the verdict's hook, and says it came from a function
        #expect(frees.count == counter, "\(frees.count) kfree_skb of the pings in \(hosts.b), the rule counted \(counter)")
        for free in frees {
            // ST_F_NF_FN alone where no bracket was passed (ST_F_NF_LAST says one was)
            #expect(free.flags & UInt8(ST_F_NF_FN.rawValue) != 0 && free.args.free.nf_pf == 2 && free.args.free.nf_hook == 1,
                    "the free carries no function verdict at ipv4 INPUT (flags \(free.flags))")
        }

        // and the analyzer names the table and hook, on a kernel without netfilter links too
        let diag = try Shell.run([try analyzerPath(), "diag", bundle])
        #expect(diag.ok, "skbtrail diag exited \(diag.status): \(diag.stderr)")
        #expect(diag.stdout.contains("netfilter-drop") && diag.stdout.contains("filter table") && diag.stdout.contains("INPUT"),
                "skbtrail diag does not name the filter table and INPUT:\n\(diag.stdout)")
        let paths = try Shell.run([try analyzerPath(), "paths", bundle, "--addr", hosts.addrA])
        #expect(paths.stdout.contains("nft_do_chain") && (drops.isEmpty || paths.stdout.contains("= DROP")),
                "skbtrail paths shows no nft_do_chain step with its verdict:\n\(paths.stdout.prefix(3000))")
    }

    @Test("a forwarded, masqueraded ping: the rewrite is found, and the functions' steps show each chain's verdict")
    func forwardedNATPing() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let a = try lab.netns("a"), r = try lab.netns("r"), b = try lab.netns("b")
        let (addrA, addrRA, addrRB, addrB) = ("10.198.16.1", "10.198.16.2", "10.198.17.1", "10.198.17.2")
        try lab.veth(a, "\(lab.tag)a", addrA + "/24", r, "\(lab.tag)ra", addrRA + "/24")
        try lab.veth(r, "\(lab.tag)rb", addrRB + "/24", b, "\(lab.tag)b", addrB + "/24")
        try Shell.must(["ip", "netns", "exec", a, "ip", "route", "add", "default", "via", addrRA])
        try Shell.must(["ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        try Shell.must(["ip", "netns", "exec", r, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "\(lab.tag)rb", "-j", "MASQUERADE"])
        try Shell.must(["ip", "netns", "exec", r, "iptables", "-w", "-A", "FORWARD", "-p", "icmp", "-j", "ACCEPT"])
        let pings = 3
        let bundle = lab.dir.appendingPathComponent("nat.skbt").path
        // with the functions of the packet's path (nettrace's lifecycle view): ip and routing
        let run = try record(lab, bundle, ["--addr", addrB, "--probes", "default,ip-fn,route-fn,ct-fn"], command: [
            "ip", "netns", "exec", a, "ping", "-c", "\(pings)", "-i", "0.2", "-W", "1", "-q", addrB,
        ])
        try #require(run.status == 0, "skbtrail-record failed (the pings must be answered): \(run.stderr)")
        // the kernel's counters: every ping forwarded, one conntrack entry masqueraded
        #expect(try iptablesPackets(ns: r, chain: "FORWARD", target: "ACCEPT") == 2 * pings)
        #expect(try iptablesPackets(ns: r, table: "nat", chain: "POSTROUTING", target: "MASQUERADE") == 1)

        let reader = try BundleReader(path: bundle)
        let inodeA = try lab.inode(of: a), inodeB = try lab.inode(of: b)
        let events = try reader.events()
        #expect(events.contains { $0.isIPv4(1, from: addrA, to: addrB) && $0.netns == inodeA }, "no request of A recorded in A")
        #expect(events.contains { $0.isIPv4(1, from: addrRB, to: addrB) && $0.netns == inodeB },
                "no request in B from the router's address \(addrRB): the masquerade was not recorded")

        let analyzer = try analyzerPath()
        let snat = try Shell.run([analyzer, "sql", bundle,
                                  "SELECT count(DISTINCT packet_id) FROM nat WHERE kind = 'SNAT' AND before_saddr = '\(addrA)' AND after_saddr = '\(addrRB)'"])
        #expect(snat.ok, "skbtrail sql exited \(snat.status): \(snat.stderr)")
        #expect(snat.stdout.contains("\(pings)"), "SNAT rewrites \(addrA) -> \(addrRB) found: \(snat.stdout)")
        let paths = try Shell.run([analyzer, "paths", bundle, "--addr", addrA])
        #expect(paths.ok, "skbtrail paths exited \(paths.status): \(paths.stderr)")
        #expect(paths.stdout.contains("SNAT \(addrA) -> \(addrRB)"), "paths shows no SNAT:\n\(paths.stdout.prefix(3000))")
        // forwarded: seen at R's FORWARD hook, by a netfilter bracket (6.4+) or a chain's verdict (tier 3)
        if KernelFeatures.netfilterLinks || KernelFeatures.functionProbes {
            let forwarded = try Shell.run([analyzer, "sql", bundle, "SELECT count(*) FROM packet WHERE forwarded = 1 AND saddr = '\(addrA)'"])
            #expect(forwarded.stdout.contains("\(pings)"), "forwarded requests: \(forwarded.stdout) \(forwarded.stderr)")
            #expect(paths.stdout.contains("FORWARD"), "paths shows no FORWARD step:\n\(paths.stdout.prefix(3000))")
        }
        if KernelFeatures.functionProbes {
            // nettrace's lifecycle view: each chain the request passed, with its verdict
            #expect(paths.stdout.contains("nft_do_chain") && paths.stdout.contains("FORWARD") && paths.stdout.contains("= ACCEPT"),
                    "paths shows no nft_do_chain FORWARD step with its verdict:\n\(paths.stdout.prefix(3000))")
            if KernelFeatures.moduleBTF("nf_tables") {
                #expect(paths.stdout.contains("filter/FORWARD") && paths.stdout.contains("nat/POSTROUTING"),
                        "paths names no filter/FORWARD and nat/POSTROUTING chains:\n\(paths.stdout.prefix(3000))")
            }
            // the path's functions: every attached one says how; ip_forward ran once per forwarded
            // packet, as the FORWARD rule counted; route input returned 0 (routed) for each
            let rows = try reader.probes().filter { ProbeTable.role($0.probe) == .function }
            #expect(Set(rows.map(\.name)).isSuperset(of: ["ip_rcv", "ip_forward", "ip_output", "ip_route_input_noref"]), "\(rows.map(\.name))")
            for row in rows where ["ip_rcv", "ip_forward", "ip_output", "ip_route_input_noref"].contains(row.name) {
                #expect(row.attached, "\(row.name) not attached: \(row.error ?? "")")
                #expect(["fentry", "kprobe", "fexit", "kretprobe"].contains(row.kind), "\(row.name): \(row.kind)")
            }
            // csv: a header line, then the row
            func row(_ query: String) throws -> [Int] {
                let out = try Shell.must([analyzer, "sql", bundle, "--format", "csv", query])
                return out.split(whereSeparator: \.isNewline).last.map { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } } ?? []
            }
            let counted = try row("SELECT count(*) FROM ev WHERE probe_name = 'ip_forward'").first ?? -1
            #expect(counted == (try iptablesPackets(ns: r, chain: "FORWARD", target: "ACCEPT")), "ip_forward records: \(counted)")
            let routed = try row("SELECT count(*), count(*) FILTER (WHERE rc = 0) FROM ev WHERE probe_name = 'ip_route_input_noref' AND netns = \(try lab.inode(of: r))")
            #expect(routed.count == 2 && routed[0] >= 2 * pings && routed[0] == routed[1], "route input in R (all, = 0): \(routed)")
            // NAT rewrote each forwarded packet once (the request's source, the reply's destination), accepted
            let manips = try row("SELECT count(*), count(*) FILTER (WHERE rc = 1 AND detail = '= ACCEPT') FROM ev WHERE probe_name = 'nf_nat_manip_pkt' AND netns = \(try lab.inode(of: r))")
            #expect(manips.count == 2 && manips[0] == counted && manips[1] == manips[0], "nf_nat_manip_pkt in R (all, ACCEPT): \(manips), forwarded \(counted)")
            let probeColumn = Set(paths.stdout.split(separator: "\n").compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init) })
            for step in ["ip_rcv", "ip_forward", "ip_forward_finish", "ip_output", "ip_route_input_noref"] {
                #expect(probeColumn.contains(step), "paths shows no \(step) step:\n\(paths.stdout.prefix(4000))")
            }
            #expect(paths.stdout.split(separator: "\n").contains { $0.contains("ip_route_input_noref") && $0.hasSuffix("= 0") },
                    "paths shows no route input step with its return value:\n\(paths.stdout.prefix(4000))")
        }
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
        let reader = try BundleReader(path: bundle)
        let events = try reader.events()
        let ofFlow = events.filter { $0.involves(hosts.addrA) || $0.involves(hosts.addrB) }
        #expect(ofFlow.isEmpty, "\(ofFlow.count) events of the excluded flow were recorded")

        // The snapshot's `ip` texts (three ip processes a namespace, one of them a batch split at
        // marks) are what ip prints for each alone, with nothing of the marks left in them.
        let inodeB = Int64(try lab.inode(of: hosts.b))
        let snapshots = try reader.snapshots()
        for (source, command) in [("ip-route", "route show table all"), ("ip6-route", "-6 route show table all"),
                                  ("ip-rule", "rule show"), ("ip-link", "-d link show")] {
            let stored = snapshots.first { $0.netns == inodeB && $0.phase == "end" && $0.source == source }?.content
            let now = try Shell.must(["ip", "-n", hosts.b] + command.split(separator: " ").map(String.init))
            #expect(stored == now, "\(source) of \(hosts.b) in the bundle:\n\(stored ?? "nothing")\nip \(command) now:\n\(now)")
        }
        let leftovers = snapshots.filter { row in
            row.source.hasPrefix("ip") && ["RTNETLINK answers", "Command failed", "Error: "].contains { row.content.contains($0) }
        }
        #expect(leftovers.isEmpty, "the marks of the ip batch left text in \(leftovers.map { "\($0.netns) \($0.source)" })")
        #expect(Set(snapshots.filter { $0.netns == inodeB }.map(\.source)).isSuperset(of: ["ip-link", "ip-addr", "ip-route", "ip6-route", "ip-rule", "ip-neigh"]))
    }

    @Test("--check: every BPF program passes this kernel's verifier, but those the kernel cannot have")
    func verifierAcceptsEveryProgram() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let result = try Shell.run([try recorderPath(), "--check", "-o", lab.dir.appendingPathComponent("unused.skbt").path])
        #expect(result.ok, "--check exited \(result.status): \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let summary = try #require(lines.last, "--check printed nothing")
        let verdicts = lines.dropLast()
        let passed = verdicts.filter { $0.hasPrefix("ok ") }
        let skipped = verdicts.filter { $0.hasPrefix("SKIPPED ") }
        let rejected = verdicts.filter { !$0.hasPrefix("ok ") && !$0.hasPrefix("SKIPPED ") }
        #expect(rejected.isEmpty, "rejected or unexpected lines:\n\(rejected.joined(separator: "\n"))")
        #expect(verdicts.count > 50, "only \(verdicts.count) programs checked")
        var want = "\(passed.count) of \(passed.count) BPF programs passed the verifier"
        if !skipped.isEmpty { want += "; \(skipped.count) not for this kernel (SKIPPED)" }
        #expect(summary == want, "\(summary)")
        // A program is skipped only where the kernel truly lacks what it needs, by the kernel's own word.
        let btf = try Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/btf/vmlinux"))
        let hasNetfilterLinks = btf.range(of: Data("BPF_PROG_TYPE_NETFILTER".utf8)) != nil
        let events = "/sys/kernel/tracing/events"
        let groups = (try? FileManager.default.contentsOfDirectory(atPath: events)) ?? []
        let kallsymsText = String(decoding: (try? FileHandle(forReadingAtPath: "/proc/kallsyms")?.readToEnd()) ?? Data(), as: UTF8.self)
        for line in skipped {
            let parts = line.dropFirst("SKIPPED ".count).trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1)
            let program = String(parts[0]), why = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            if program.hasPrefix("nf_bracket_") {
                #expect(!hasNetfilterLinks, "\(program) skipped on a kernel with BPF_PROG_TYPE_NETFILTER: \(why)")
                #expect(why == "needs BPF netfilter links, kernel 6.4+", "\(line)")
            } else if why.hasSuffix("is not in this kernel") {
                let tracepoint = String(program.drop { $0 != "_" }.dropFirst())
                #expect(why == "tracepoint \(tracepoint) is not in this kernel", "\(line)")
                #expect(!groups.isEmpty, "tracefs is not mounted at /sys/kernel/tracing")
                #expect(!groups.contains { FileManager.default.fileExists(atPath: "\(events)/\($0)/\(tracepoint)") },
                        "\(program) skipped but tracefs has the tracepoint \(tracepoint)")
            } else if let function = ["fentry_", "fexit_", "kprobe_", "kretprobe_"].first(where: program.hasPrefix).map({ String(program.dropFirst($0.count)) }) {
                // a kernel function: absent, without BTF, or the kind of probe refused, each by the kernel's word
                if why.hasPrefix("function \(function) is not in this kernel") {
                    #expect(!kallsymsText.contains(" \(function)\t") && !kallsymsText.contains(" \(function)\n"), "\(line), but /proc/kallsyms has it")
                } else if why.hasPrefix("this kernel has no kprobes") {
                    #expect(program.hasPrefix("k") && !KernelFeatures.functionProbes, "\(line)")
                } else if why.hasPrefix("this kernel refuses fentry and fexit programs") {
                    #expect(program.hasPrefix("f"), "\(line)")
                } else if why.hasPrefix("module "), let module = why.split(separator: " ").dropFirst().first {
                    #expect(program.hasPrefix("f") && !KernelFeatures.moduleBTF(String(module)), "\(line)")
                } else {
                    Issue.record("skipped for no reason this kernel lacks: \(line)")
                }
            } else {
                #expect(program.hasPrefix("btf_") && why.contains("raw_"), "skipped for no reason this kernel lacks: \(line)")
            }
        }
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
        (["--pid", "2147483646"], "--pid 2147483646"),
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

    @Test("COMMAND's exit status is the recorder's; a command that cannot run leaves no bundle; an empty recording says so")
    func commandStatusAndEmptyRecordings() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let failed = lab.dir.appendingPathComponent("failed.skbt").path
        let run = try Shell.run([try recorderPath(), "-q", "-o", failed, "--addr", "10.198.250.251", "--", "sh", "-c", "exit 3"])
        #expect(run.status == 3, "exited \(run.status) for a command that exited 3: \(run.stderr)")
        let reader = try BundleReader(path: failed)
        #expect(reader.recording.stopReason?.contains("command exited 3") == true, "\(reader.recording.stopReason ?? "no stop reason")")
        let killed = try Shell.run([try recorderPath(), "-q", "-o", lab.dir.appendingPathComponent("killed.skbt").path,
                                    "--addr", "10.198.250.251", "--", "sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + SIGTERM, "exited \(killed.status) for a command killed by SIGTERM")

        let missing = lab.dir.appendingPathComponent("missing.skbt").path
        let none = try Shell.run([try recorderPath(), "-q", "-o", missing, "--", "/nonexistent-skbtrail-command"])
        #expect(none.status != 0)
        #expect(none.stderr.split(separator: "\n").first?.contains("/nonexistent-skbtrail-command") == true, "\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing), "a bundle was left behind for a command that could not run")

        // a filter that can match nothing now is said at the start, an empty recording at the end
        let empty = try Shell.run([try recorderPath(), "-q", "-o", lab.dir.appendingPathComponent("empty.skbt").path,
                                   "--ifname", "skbtrail-nope0", "--", "true"])
        #expect(empty.status == 0, "\(empty.stderr)")
        #expect(empty.stderr.contains("--ifname skbtrail-nope0: no interface has that name now"), "\(empty.stderr)")
        #expect(empty.stderr.contains("no events recorded: nothing matched the capture filters"), "\(empty.stderr)")
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
