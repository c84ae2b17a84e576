import Foundation
import GRDB
import SkbtrailBundle
import Testing
@testable import SkbtrailAnalysis

/// Every committed bundle under fixtures/ (the lab scenarios, the faults, TCP, the kernel matrix's).
let everyFixtureBundle: [String] = {
    let root = packageRoot.appendingPathComponent("fixtures").path
    let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
    return files.filter { $0.hasSuffix(".skbt") }.sorted()
}()

private func open(_ path: String) throws -> AnalysisDatabase {
    try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
}

/// Each line's " | "-separated list sorted.
private func sortedLists(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        guard let colon = line.range(of: "started: "), line.contains(" | ") else { return String(line) }
        return String(line[..<colon.upperBound]) + line[colon.upperBound...].components(separatedBy: " | ").sorted().joined(separator: " | ")
    }.joined(separator: "\n")
}

private func fixturePath(_ relative: String) -> String { packageRoot.appendingPathComponent("fixtures/\(relative)").path }

/// "packet 12" and "[packet 12]" without their numbers (a slice numbers its packets from 1 again), and
/// without the note of why a packet is incomplete: a packet whose free was not traced ends where the next
/// packet takes its address, and that packet may not be in the slice.
private func withoutPacketIDs(_ text: String) -> String {
    text.replacingOccurrences(of: #"packet \d+"#, with: "packet #", options: .regularExpression)
        .replacingOccurrences(of: #"  \[(its free was not traced|reached local delivery)[^\]]*\]"#, with: "", options: .regularExpression)
}

/// Runs tshark on `file` with `fields`, one array per packet; nil when tshark is not installed.
private func tshark(_ file: String, _ fields: [String], options: [String] = []) throws -> [[String]]? {
    guard let path = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        return nil
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = options + ["-r", file, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"] + fields.flatMap { ["-e", $0] }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "tshark could not read \(file)")
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
}

@Suite struct TicketTests {
    // MARK: pcap

    @Test func pcapReadsBackInTshark() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Fixture(name: "nat-router").open()
        let file = dir + "/nat.pcapng"
        var bytes: [UInt8] = []
        let summary = try a.pcapReport(filter: PacketFilter(), options: PcapOptions()) { bytes += $0 }
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        let expected = try rows(a, """
            SELECT e.id, e.ts + r.boot_to_unix_ns AS unix_ns, e.saddr, e.daddr, e.packet_id, e.step, e.probe_name
            FROM ev e CROSS JOIN bundle_recording r WHERE e.data IS NOT NULL AND e.packet_id IS NOT NULL ORDER BY e.id
            """)
        #expect(summary.blocks == expected.count)
        #expect(expected.count > 100)
        guard let got = try tshark(file, ["frame.time_epoch", "ip.src", "ip.dst", "frame.comment", "frame.interface_name"]) else {
            print("SKIP pcapReadsBackInTshark: tshark is not installed (apt-get install tshark); the file's layout was not checked by Wireshark")
            return
        }
        #expect(got.count == expected.count)
        for (g, e) in zip(got, expected) {
            // nanosecond times, as recorded
            let ns = e.int("unix_ns")
            #expect(g[0] == "\(ns / 1_000_000_000).\(String(format: "%09lld", ns % 1_000_000_000))")
            #expect(g[1] == e.text("saddr"))
            #expect(g[2] == e.text("daddr"))
            #expect(g[3].hasPrefix("skbtrail packet \(e.int("packet_id")) step \(e.int("step")) \(e.text("probe_name"))"))
        }
        let comments = got.map { $0[3] }
        #expect(comments.contains { $0.contains("drop NO_SOCKET at ping_rcv+0x") })
        #expect(comments.contains { $0.contains("NAT DNAT 10.199.3.254 -> 10.199.4.2") })
        let interfaces = Set(got.map { $0[4] })
        #expect(interfaces.isSuperset(of: ["st-nc/st-nc0", "st-nr/st-nr0", "st-nr/st-nr1", "st-ns/st-ns0"]))

        // redacted: the same packets under the mapped addresses, the IP checksums still right
        let redactor = try #require(Redactor(hexKey: TicketTests.key))
        var shared: [UInt8] = []
        _ = try a.pcapReport(filter: PacketFilter(), options: PcapOptions(redactor: redactor)) { shared += $0 }
        FileManager.default.createFile(atPath: dir + "/shared.pcapng", contents: Data(shared))
        let mapped = try #require(try tshark(dir + "/shared.pcapng", ["ip.src", "ip.dst", "frame.comment"]))
        #expect(mapped.count == got.count)
        for (m, g) in zip(mapped, got) {
            #expect(m[0] == redactor.redactText(g[1]) && m[1] == redactor.redactText(g[2]) && m[0] != g[1])
            #expect(m[2] == redactor.redactText(g[3]))
        }
        let checked = try #require(try tshark(dir + "/shared.pcapng", ["ip.checksum.status"], options: ["-o", "ip.check_checksum:TRUE"]))
        #expect(checked.allSatisfy { $0 == ["1"] || $0 == [""] }, "IP checksums tshark finds wrong after redaction: \(checked.filter { $0 != ["1"] }.count)")

        // each packet once, and a filter
        var first: [UInt8] = []
        _ = try a.pcapReport(filter: PacketFilter(), options: PcapOptions(firstOnly: true)) { first += $0 }
        FileManager.default.createFile(atPath: dir + "/first.pcapng", contents: Data(first))
        let packets = try rows(a, "SELECT count(DISTINCT packet_id) AS n FROM ev WHERE data IS NOT NULL")[0].int("n")
        #expect(try tshark(dir + "/first.pcapng", ["frame.comment"])?.count == Int(packets))
        var dropped: [UInt8] = []
        var filter = PacketFilter()
        filter.droppedOnly = true
        _ = try a.pcapReport(filter: filter, options: PcapOptions()) { dropped += $0 }
        FileManager.default.createFile(atPath: dir + "/dropped.pcapng", contents: Data(dropped))
        let droppedIDs = Set(try rows(a, "SELECT id FROM pkt WHERE fate = 'dropped'").map { $0.int("id") })
        let droppedComments = try #require(try tshark(dir + "/dropped.pcapng", ["frame.comment"]))
        #expect(!droppedComments.isEmpty)
        for c in droppedComments {
            let id = Int64(c[0].split(separator: " ")[2]) ?? -1
            // a dropped packet, or a clone of one
            let parent = try rows(a, "SELECT parent_id FROM clone_edge WHERE child_id = \(id)").first?.optInt("parent_id")
            #expect(droppedIDs.contains(id) || parent.map(droppedIDs.contains) == true, "packet \(id) is not a dropped packet or its clone")
        }
    }

    // MARK: slice

    @Test(arguments: ["nat-router.skbt", "netfilter-drop.skbt", "faults/noisy-host.skbt", "faults/bridge-nft-drop.skbt", "tcp/tcp-loss.skbt"])
    func sliceShowsTheSelectedPacketsAsTheWholeBundleDoes(name: String) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try open(fixturePath(name))
        // the packets of the first connection or flow that has a dropped packet, else of the first packet
        let tuple = try rows(a, "SELECT saddr, daddr FROM packet WHERE saddr IS NOT NULL ORDER BY fate = 'dropped' DESC, id LIMIT 1")[0]
        var filter = PacketFilter()
        filter.addr = tuple.text("daddr")
        let path = dir + "/slice.skbt"
        let summary = try a.copyBundle(filter: filter, options: BundleCopyOptions(kind: "slice", selection: "test"), to: path)
        #expect(summary.records > 0 && summary.records < summary.sourceRecords)
        let s = try open(path)
        #expect(s.damage.isEmpty)
        // paths of the slice = paths of the selected packets in the original
        let original = try a.pathsReport(filter: filter, options: PathsOptions())
        let sliced = try s.pathsReport(filter: PacketFilter(), options: PathsOptions())
        #expect(withoutPacketIDs(sliced) == withoutPacketIDs(original))
        // the same findings on them
        let od = try a.diagReport(try a.diagnose(), filter: filter)
        let sd = try s.diagReport(try s.diagnose(), filter: filter)
        let findings = { (t: String) in t.split(separator: "\n").filter { $0.contains(" ^ ") || $0.hasPrefix("packet") || $0.contains("└─") }.map(String.init) }
        #expect(findings(withoutPacketIDs(sd)) == findings(withoutPacketIDs(od)))
        // metadata and the note of how it was made
        let p = try rows(s, "SELECT kind, source_uuid, records, source_records FROM provenance")
        #expect(p.count == 1)
        #expect(p.first?.text("kind") == "slice")
        #expect(p.first?.text("source_uuid") == a.bundle.recording.uuid)
        #expect(p.first?.int("records") == Int64(summary.records))
        #expect(try rows(s, "SELECT count(*) AS n FROM bundle_snapshot")[0].int("n") == (try rows(a, "SELECT count(*) AS n FROM bundle_snapshot")[0].int("n")))
        #expect(try s.infoReport(json: false).contains("sliced      from recording \(a.bundle.recording.uuid)"))
        #expect(s.bundle.recording.formatVersion == BundleFormat.version)
    }

    // MARK: redact

    static let key = String(repeating: "5a", count: 32)

    @Test(arguments: everyFixtureBundle)
    func redactedDiagnosisIsTheOriginalsUpToTheMapping(name: String) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try open(fixturePath(name))
        let redactor = try #require(Redactor(hexKey: TicketTests.key))
        let path = dir + "/shared.skbt"
        let summary = try a.copyBundle(filter: PacketFilter(), options: BundleCopyOptions(kind: "redact", selection: "test", redactor: redactor), to: path)
        let r = try open(path)
        #expect(summary.records == summary.sourceRecords)
        #expect(r.damage.isEmpty)
        let original = try a.diagReport(try a.diagnose())
        let redacted = try r.diagReport(try r.diagnose())
        // equal up to the mapping, and the order of listed routes (they are listed in text order)
        #expect(sortedLists(redacted) == sortedLists(redactor.redactText(original)))
        if let dump = ProcessInfo.processInfo.environment["SKBTRAIL_TEST_DUMP"], sortedLists(redacted) != sortedLists(redactor.redactText(original)) {
            let stem = dump + "/" + name.replacingOccurrences(of: "/", with: "_")
            try redacted.write(toFile: stem + ".redacted", atomically: true, encoding: .utf8)
            try redactor.redactText(original).write(toFile: stem + ".mapped", atomically: true, encoding: .utf8)
        }

        // no address of the original is left, in the records or the metadata (the ones kept by design aside)
        let addresses = Set(try rows(a, "SELECT DISTINCT saddr AS x FROM ev WHERE saddr IS NOT NULL UNION SELECT DISTINCT daddr FROM ev WHERE daddr IS NOT NULL UNION SELECT address FROM bundle_address")
            .map { $0.text("x") })
        let private_ = addresses.filter { redactor.redactText($0) != $0 }
        let leftInEvents = Set(try rows(r, "SELECT DISTINCT saddr AS x FROM ev WHERE saddr IS NOT NULL UNION SELECT DISTINCT daddr FROM ev WHERE daddr IS NOT NULL").map { $0.text("x") })
        #expect(leftInEvents.isDisjoint(with: private_), "addresses left in the records: \(leftInEvents.intersection(private_).sorted())")
        let metadata = try rows(r, "SELECT content AS x FROM bundle_snapshot UNION ALL SELECT address FROM bundle_address UNION ALL SELECT value FROM bundle_sysctl UNION ALL SELECT filters FROM bundle_recording UNION ALL SELECT command_line FROM bundle_recording").map { $0.text("x") }.joined(separator: "\n")
        for address in private_ where address.count >= 7 {
            for form in [" \(address)/", " \(address) ", "\"\(address)\""] {
                #expect(!metadata.contains(form), "\(address) is left in the metadata: ...\(metadata.components(separatedBy: form).first?.suffix(80) ?? "")")
            }
        }
        let macs = try rows(a, "SELECT mac FROM bundle_interface WHERE mac IS NOT NULL AND mac != '00:00:00:00:00:00'").map { $0.text("mac") }
        for mac in macs { #expect(!metadata.contains(mac), "\(mac) is left in the metadata") }
        #expect(r.bundle.recording.host == "redacted")
        #expect(try rows(r, "SELECT count(*) AS n FROM ev WHERE comm != ''")[0].int("n") == 0)
        // the key is not in the file
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file.range(of: Data(TicketTests.key.utf8)) == nil)
        #expect(file.range(of: Data(redactor.key)) == nil)
    }

    @Test func redactionMapsAddressesPreservingPrefixes() throws {
        let r = try #require(Redactor(hexKey: TicketTests.key))
        let other = try #require(Redactor(hexKey: String(repeating: "a5", count: 32)))
        func v4(_ s: String) -> UInt32 { Redactor.parseIPv4(s)! }
        func common(_ x: UInt32, _ y: UInt32) -> Int { (x ^ y).leadingZeroBitCount }
        let pairs = [("198.51.100.7", "198.51.100.200"), ("198.51.100.7", "198.51.101.7"), ("203.0.113.1", "8.8.8.8"), ("10.1.2.3", "10.1.2.4")]
        for (x, y) in pairs {
            #expect(common(r.map(v4: v4(x)), r.map(v4: v4(y))) == common(v4(x), v4(y)), "\(x) and \(y)")
        }
        #expect(r.map(v4: v4("198.51.100.7")) != v4("198.51.100.7"))
        #expect(r.map(v4: v4("198.51.100.7")) != other.map(v4: v4("198.51.100.7")))
        // kept: loopback, multicast, broadcast; ranges kept: private, link-local
        for kept in ["127.0.0.1", "224.0.0.22", "255.255.255.255", "0.0.0.0"] { #expect(r.map(v4: v4(kept)) == v4(kept)) }
        #expect(r.map(v4: v4("10.1.2.3")) >> 24 == 10)
        #expect(r.map(v4: v4("192.168.7.1")) >> 16 == 0xC0A8)
        // text: the same mapping, networks stay networks, times and versions are not addresses
        let text = r.redactText("10.1.2.0/24 via 10.1.2.1 dev eth0; 10.1.2.3:80 at +0.000012, v1.8.9, fe80::1/64, aa:bb:cc:dd:ee:01.")
        let mapped = r.map(v4: v4("10.1.2.1"))
        #expect(text.contains("\(mapped >> 24).\((mapped >> 16) & 0xFF).\((mapped >> 8) & 0xFF).0/24 via "))
        #expect(text.contains("+0.000012, v1.8.9, fe80::"))
        #expect(!text.contains("10.1.2.3") && !text.contains("aa:bb:cc:dd:ee:01"))
        #expect(text.hasSuffix("."))
        // packet bytes: addresses mapped, payload replaced, the checksums still right
        var udp = ipv4(src: [198, 51, 100, 7], dst: [203, 0, 113, 9], proto: 17, l4: [0x30, 0x39, 0x00, 0x35, 0x00, 0x0C, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF])
        udp[10] = 0; udp[11] = 0
        let sum = ipChecksum(Array(udp[0..<20]))
        udp[10] = UInt8(sum >> 8); udp[11] = UInt8(sum & 0xFF)
        let u = udpChecksum(udp)
        udp[26] = UInt8(u >> 8); udp[27] = UInt8(u & 0xFF)
        #expect(udpChecksum(udp) == 0)
        r.redactPacket(&udp, ethertype: 0x0800)
        #expect(Array(udp[12..<16]) != [198, 51, 100, 7])
        #expect(ipChecksum(Array(udp[0..<20])) == 0)
        #expect(Array(udp[28...]) != [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(udpChecksum(udp) == 0 || (udp[26] == 0 && udp[27] == 0))
    }

    /// The UDP checksum over the pseudo-header and datagram of an IPv4 packet: 0 when it is right.
    private func udpChecksum(_ p: [UInt8]) -> UInt16 {
        let udp = Array(p[20...])
        var pseudo = Array(p[12..<20]) + [0, 17, UInt8(udp.count >> 8), UInt8(udp.count & 0xFF)] + udp
        if pseudo.count % 2 == 1 { pseudo.append(0) }
        return ipChecksum(pseudo)
    }

    private func ipChecksum(_ b: [UInt8]) -> UInt16 {
        var s: UInt32 = 0
        for i in stride(from: 0, to: b.count, by: 2) { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]) }
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }
}
