import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Header parsing and packet building on records written here, byte for byte as the kernel side does.
@Suite struct DecodeTests {
    struct HeaderCase: CustomTestStringConvertible, Sendable {
        var name: String
        var ethertype: UInt16
        var bytes: [UInt8]
        var tuple: String
        var testDescription: String { name }
    }

    static let a: [UInt8] = [10, 0, 1, 1], b: [UInt8] = [10, 0, 2, 2]
    static let v6a: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    static let v6b: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    static let syn: [UInt8] = [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff]

    static let headerCases: [HeaderCase] = [
        HeaderCase(name: "IPv4 TCP SYN", ethertype: 0x0800, bytes: ipv4(src: a, dst: b, proto: 6, l4: syn),
                   tuple: "TCP 10.0.1.1:40000 > 10.0.2.2:80 [S]"),
        HeaderCase(name: "IPv4 UDP", ethertype: 0x0800, bytes: ipv4(src: a, dst: b, proto: 17, l4: [0x13, 0x88, 0, 53, 0, 8, 0, 0]),
                   tuple: "UDP 10.0.1.1:5000 > 10.0.2.2:53"),
        HeaderCase(name: "IPv4 ICMP echo", ethertype: 0x0800, bytes: ipv4(src: a, dst: b, proto: 1, l4: [8, 0, 0, 0, 0, 7, 0, 1]),
                   tuple: "ICMP 10.0.1.1 > 10.0.2.2 echo-request id 7 seq 1"),
        HeaderCase(name: "IPv4 ICMP port unreachable", ethertype: 0x0800, bytes: ipv4(src: b, dst: a, proto: 1, l4: [3, 3, 0, 0, 0, 0, 0, 0]),
                   tuple: "ICMP 10.0.2.2 > 10.0.1.1 port-unreachable"),
        HeaderCase(name: "IPv6 TCP", ethertype: 0x86DD,
                   bytes: [0x60, 0, 0, 0, 0, 16, 6, 64] + v6a + v6b + [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 0xff, 0xff],
                   tuple: "TCP [fd00::1]:40000 > [fd00::2]:80 [S.]"),
        HeaderCase(name: "IPv6 ICMPv6 echo", ethertype: 0x86DD,
                   bytes: [0x60, 0, 0, 0, 0, 8, 58, 64] + v6a + v6b + [128, 0, 0, 0, 0, 9, 0, 3],
                   tuple: "ICMPv6 fd00::1 > fd00::2 echo-request id 9 seq 3"),
        HeaderCase(name: "ARP request", ethertype: 0x0806,
                   bytes: [0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1] + a + [0, 0, 0, 0, 0, 0] + b,
                   tuple: "ARP who-has 10.0.2.2 tell 10.0.1.1"),
        HeaderCase(name: "802.1Q VLAN", ethertype: 0x8100, bytes: [0, 42, 0x08, 0x00] + ipv4(src: a, dst: b, proto: 17, l4: [0, 1, 0, 2, 0, 8, 0, 0]),
                   tuple: "UDP 10.0.1.1:1 > 10.0.2.2:2 vlan 42"),
        HeaderCase(name: "GRE around ICMP", ethertype: 0x0800,
                   bytes: ipv4(src: [192, 168, 0, 1], dst: [192, 168, 0, 2], proto: 47, l4: [0, 0, 0x08, 0x00] + ipv4(src: a, dst: b, proto: 1, l4: [8, 0, 0, 0, 0, 1, 0, 1])),
                   tuple: "GRE 192.168.0.1 > 192.168.0.2 (gre: ICMP 10.0.1.1 > 10.0.2.2 echo-request id 1 seq 1)"),
        HeaderCase(name: "truncated IPv4", ethertype: 0x0800, bytes: [0x45, 0, 0, 20], tuple: ""),
        // found by scripts/fuzz-libfuzzer.sh: IP options longer than the bytes recorded, around IPIP
        HeaderCase(name: "IPv4 options past the snap", ethertype: 0x0800,
                   bytes: [0x4f] + Array(ipv4(src: a, dst: b, proto: 4, l4: []).dropFirst()), tuple: "IPIP 10.0.1.1 > 10.0.2.2"),
        // no skb->protocol: a locally built IPv4 packet is recognized by its header, a netlink message of
        // 72 bytes (nlmsg_len 0x48, little-endian) is not taken for IPv4 with a total length of 0
        HeaderCase(name: "no protocol, IPv4 header", ethertype: 0, bytes: ipv4(src: a, dst: b, proto: 1, l4: [8, 0, 0, 0, 0, 7, 0, 1]),
                   tuple: "ICMP 10.0.1.1 > 10.0.2.2 echo-request id 7 seq 1"),
        HeaderCase(name: "no protocol, netlink message", ethertype: 0,
                   bytes: [0x48, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0], tuple: ""),
        HeaderCase(name: "IPv6 extension header past the snap", ethertype: 0x86DD,
                   bytes: [0x60, 0, 0, 0, 0, 8, 0, 64] + v6a + v6b + [41, 200, 0, 0, 0, 0, 0, 0], tuple: "IPv6 fd00::1 > fd00::2"),
    ]

    @Test(arguments: headerCases)
    func parsesHeaders(_ c: HeaderCase) {
        let h = c.bytes.withUnsafeBytes { PacketHeaders.parse($0, ethertype: c.ethertype) }
        #expect(h.tupleText == c.tuple)
    }

    @Test(arguments: [
        ("0:0:0:0:0:0:0:1", "::1"), ("fe80:0:0:0:1:0:0:2", "fe80::1:0:0:2"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("0:0:0:0:0:ffff:a00:1", "::ffff:10.0.0.1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func formatsIPv6(_ input: String, _ expected: String) {
        var bytes: [UInt8] = []
        for word in input.split(separator: ":") {
            let v = UInt16(word, radix: 16) ?? 0
            bytes += [UInt8(v >> 8), UInt8(v & 0xFF)]
        }
        let address = bytes.withUnsafeBytes { IPAddress($0, at: 0, v6: true) }
        #expect(address.text == expected)
    }

    /// A small synthetic bundle: two ICMP packets (one dropped in netfilter, one delivered), the same
    /// skb address reused, records out of time order across two chunks, and an unknown record type.
    static func writeSynthetic(at path: String) throws {
        let w = try BundleWriter(path: path, recording: recording())
        let skb: UInt64 = 0xffff_8881_0000_0100
        let req = ipv4(src: a, dst: b, proto: 1, l4: [8, 0, 0, 0, 0, 7, 0, 1])
        let req2 = ipv4(src: a, dst: b, proto: 1, l4: [8, 0, 0, 0, 0, 7, 0, 2], id: 2)
        let t0: UInt64 = 1_000_000_000 + 500_000
        var rx = event(probe: 1, ts: t0, skb: skb)
        rx.l3_from = UInt8(ST_L3_DATA.rawValue)
        var pre = event(probe: 64, ts: t0 + 2_000, skb: skb)
        pre.args.nf.pf = 2; pre.args.nf.hook = 1; pre.args.nf.bracket = 0; pre.args.nf.priority = -1000; pre.args.nf.in_ifindex = 2
        var drop = event(probe: 10, ts: t0 + 5_000, skb: skb)
        drop.args.free.reason = 6; drop.args.free.location = 0xffff_ffff_8100_0010
        drop.flags = UInt8(ST_F_NF_LAST.rawValue); drop.args.free.nf_pf = 2; drop.args.free.nf_hook = 1; drop.args.free.nf_bracket = 4
        var rx2 = event(probe: 1, ts: t0 + 1_000_000, skb: skb, head: 0xffff_8880_0000_2000, cpu: 1)
        rx2.l3_from = UInt8(ST_L3_DATA.rawValue)
        var copy = event(probe: 12, ts: t0 + 1_004_000, skb: skb, head: 0xffff_8880_0000_2000, cpu: 1)
        copy.args.misc.a = 84
        let consume = event(probe: 11, ts: t0 + 1_006_000, skb: skb, head: 0xffff_8880_0000_2000, cpu: 1)

        var c1 = RecordBuilder()
        c1.add(drop, packet: req)   // out of order inside the chunk
        c1.add(rx, packet: req)
        c1.add(rx2, packet: req2)
        c1.addUnknown(type: 99, size: 32)
        try c1.bytes.withUnsafeBytes { try w.appendChunk($0, records: c1.count, firstTs: c1.firstTs, lastTs: c1.lastTs) }
        var c2 = RecordBuilder()
        c2.add(pre, packet: req)    // earlier than records of the first chunk
        c2.add(consume, packet: req2)
        c2.add(copy, packet: req2)
        try c2.bytes.withUnsafeBytes { try w.appendChunk($0, records: c2.count, firstTs: c2.firstTs, lastTs: c2.lastTs) }
        try w.writeProbes([
            ProbeRow(probe: 1, name: "netif_receive_skb", tier: 1, kind: "tp_btf", target: "netif_receive_skb", attached: true),
            ProbeRow(probe: 10, name: "kfree_skb", tier: 1, kind: "tp_btf", target: "kfree_skb", attached: true),
            ProbeRow(probe: 11, name: "consume_skb", tier: 1, kind: "tp_btf", target: "consume_skb", attached: true),
            ProbeRow(probe: 12, name: "skb_copy_datagram_iovec", tier: 1, kind: "tp_btf", target: "skb_copy_datagram_iovec", attached: true),
            ProbeRow(probe: 64, name: "nf:ipv4:input:-1000", tier: 2, kind: "netfilter", target: "ipv4 input", family: 2, hook: 1, priority: -1000, attached: true),
            ProbeRow(probe: 20, name: "tcp_retransmit_skb", tier: 1, kind: "tp_btf", target: "tcp_retransmit_skb", attached: false, error: "EPERM at load"),
        ])
        try w.writeEnum(table: "drop_reason", [EnumName(value: 6, name: "NETFILTER_DROP"), EnumName(value: 2, name: "NOT_SPECIFIED")])
        try w.writeSymbols([SymbolRow(address: 0xffff_ffff_8100_0010, name: "nf_hook_slow", offset: 0x10)])
        var snap = MachineSnapshot()
        snap.netns = [NetnsRow(inode: 4026531840, name: "server", isRoot: false)]
        snap.interfaces = [InterfaceRow(netns: 4026531840, ifindex: 2, name: "eth0", kind: "veth", mac: nil, mtu: 1500, flags: nil, master: nil)]
        try w.writeSnapshot(snap)
        try w.finish(endedNs: 3_000_000_000, reason: "command exited 0")
    }

    @Test func buildsPacketsFromUnorderedRecords() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = (dir as NSString).appendingPathComponent("synthetic.skbt")
        try Self.writeSynthetic(at: path)
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        #expect(a.decodeStats?.unknownRecords == 1)
        #expect(try rows(a, "SELECT unknown_records FROM recording")[0]["unknown_records"] as Int == 1)
        let packets = try rows(a, "SELECT id, fate, drop_reason, drop_symbol, nf_hook, nf_table, events, tuple FROM packet ORDER BY id")
        #expect(packets.count == 2)
        #expect(packets[0]["fate"] as String == "dropped")
        #expect(packets[0]["drop_reason"] as String? == "NETFILTER_DROP")
        #expect(packets[0]["drop_symbol"] as String? == "nf_hook_slow+0x10")
        #expect(packets[0]["nf_hook"] as String? == "INPUT")
        #expect(packets[0]["nf_table"] as String? == "filter")
        #expect(packets[0]["events"] as Int == 3)
        #expect(packets[1]["fate"] as String == "delivered")
        #expect(packets[1]["tuple"] as String? == "ICMP 10.0.1.1 > 10.0.2.2 echo-request id 7 seq 2")
        let probes = try rows(a, "SELECT name, attached, error, events FROM probe ORDER BY probe")
        #expect(probes.map { $0["events"] as Int } == [2, 1, 1, 1, 0, 1])
    }

    /// Layout matters here: the lifecycle view as people read it.
    @Test func pathsTextSnapshot() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = (dir as NSString).appendingPathComponent("synthetic.skbt")
        try Self.writeSynthetic(at: path)
        let a = try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
        let text = try a.pathsReport(filter: PacketFilter(), options: PathsOptions(detail: true))
        #expect(text == """
            # packet ID  TUPLE  FATE, then a line per step: TIME (s since the packet's first step)  PROBE  INTERFACE  NETNS  CPU  PID  COMM  SKB  DETAIL
            packet 1  ICMP 10.0.1.1 > 10.0.2.2 echo-request id 7 seq 1  dropped: NETFILTER_DROP at nf_hook_slow+0x10 (netfilter ipv4 INPUT, filter table)
              +0.000000s  netif_receive_skb    eth0  server  cpu 0  pid 1234  ping  ffff888100000100
              +0.000002s  nf:ipv4:input:-1000  eth0  server  cpu 0  pid 1234  ping  ffff888100000100  ipv4 INPUT -1000 in eth0
              +0.000005s  kfree_skb            eth0  server  cpu 0  pid 1234  ping  ffff888100000100  NETFILTER_DROP at nf_hook_slow+0x10 (netfilter ipv4 INPUT, filter table)

            packet 2  ICMP 10.0.1.1 > 10.0.2.2 echo-request id 7 seq 2  delivered
              +0.000000s  netif_receive_skb        eth0  server  cpu 1  pid 1234  ping  ffff888100000100
              +0.000004s  skb_copy_datagram_iovec  eth0  server  cpu 1  pid 1234  ping  ffff888100000100  len 84
              +0.000006s  consume_skb              eth0  server  cpu 1  pid 1234  ping  ffff888100000100


            """)
        let drops = try a.dropsReport(json: false)
        #expect(drops == """
            COUNT  REASON          LOCATION           NETFILTER          IFACE  NETNS       FIRST       LAST  PACKET
                1  NETFILTER_DROP  nf_hook_slow+0x10  ipv4 INPUT filter  eth0   server  0.000505s  0.000505s  1
            (FIRST and LAST: the first and last drop, in seconds since the recording's start)

            """)
    }

    @Test func cacheIsReused() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = (dir as NSString).appendingPathComponent("synthetic.skbt")
        try Self.writeSynthetic(at: path)
        let cache = (dir as NSString).appendingPathComponent("cache")
        let first = try AnalysisDatabase(bundlePath: path, cache: .directory(cache), progress: nil)
        #expect(first.decodeStats != nil)
        let second = try AnalysisDatabase(bundlePath: path, cache: .directory(cache), progress: nil)
        #expect(second.decodeStats == nil)
        #expect(second.path == first.path)
    }
}
