import Foundation
import Testing

/// The ticket workflow on a fresh recording: pcap, slice and redact of dropped pings, checked against the
/// DROP rule's counter and read back by tshark. Not part of the kernel matrix (the analyzer is the same
/// on every kernel; the matrix's time goes to the recorder).
/// The lines of a command's output (CSV ends its lines with CRLF).
private func lines(_ text: String) -> [String] { text.split(whereSeparator: \.isNewline).map(String.init) }

@Suite("Tickets from a fresh recording (root, BPF)", .serialized, .enabled(if: Machine.canRecord, Machine.skipComment))
struct TicketRecordingTests {
    @Test("pcap, slice and redact of a recording of dropped pings agree with the DROP rule's counter")
    func pcapSliceRedactAgreeWithTheRuleCounter() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let (hosts, bundle) = try recordDroppedPings(lab, subnet: 17, pings: 4)
        let counter = try iptablesPackets(ns: hosts.b, chain: "INPUT", target: "DROP")
        #expect(counter == 4, "the DROP rule counted \(counter) packets for 4 pings")
        let skbtrail = try analyzerPath()
        let dir = lab.dir.path

        // pcap: each dropped packet once, the ping's addresses, a comment naming the drop
        let pcap = dir + "/drops.pcapng"
        let written = try Shell.run([skbtrail, "pcap", bundle, "-o", pcap, "--dropped", "--first-only"])
        #expect(written.ok, "skbtrail pcap exited \(written.status): \(written.stderr)")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") {
            let fields = try Shell.must(["/usr/bin/tshark", "-r", pcap, "-T", "fields", "-E", "separator=|",
                                         "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type", "-e", "frame.comment"])
            let frames = fields.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
            // the dropped packets once each, and their clones (an inferred clone of a dropped ping is selected with it)
            let dropped = Set(lines(try Shell.must([skbtrail, "sql", "--format", "csv", bundle, "SELECT id FROM packet WHERE fate = 'dropped'"])).dropFirst())
            let pings = frames.filter { $0.count >= 4 && $0[2] == "8" && dropped.contains(String($0[3].split(separator: " ")[2])) }
            #expect(pings.count == counter, "tshark reads \(pings.count) dropped echo requests, the rule counted \(counter):\n\(fields)")
            for f in frames {
                #expect(f.count >= 4 && f[0] == hosts.addrA && f[1] == hosts.addrB && f[2] == "8", "\(f)")
            }
            let all = try Shell.must(["/usr/bin/tshark", "-r", pcap, "-T", "fields", "-e", "frame.comment"])
            #expect(all.split(separator: "\n").allSatisfy { $0.hasPrefix("skbtrail packet ") })
        } else {
            print("SKIP the tshark checks: tshark is not installed (apt-get install tshark)")
        }

        // slice: the dropped packets, as many as the rule counted
        let slice = dir + "/drops.skbt"
        let sliced = try Shell.run([skbtrail, "slice", bundle, "-o", slice, "--dropped"])
        #expect(sliced.ok, "skbtrail slice exited \(sliced.status): \(sliced.stderr)")
        let drops = try Shell.run([skbtrail, "sql", "--format", "csv", slice,
                                   "SELECT count(*) FROM packet WHERE fate = 'dropped' AND saddr = '\(hosts.addrA)' AND proto = 'ICMP'"])
        #expect(lines(drops.stdout).last == "\(counter)", "the slice holds \(drops.stdout) dropped pings")
        #expect(try Shell.must([skbtrail, "info", slice]).contains("sliced      from recording"))

        // redact: the same drops, under other addresses that still share their /30
        let shared = dir + "/share.skbt"
        let redacted = try Shell.run([skbtrail, "redact", bundle, "-o", shared])
        #expect(redacted.ok && redacted.stderr.contains("redaction key"), "skbtrail redact exited \(redacted.status): \(redacted.stderr)")
        let rows = try Shell.must([skbtrail, "sql", "--format", "csv", shared,
                                   "SELECT saddr, daddr, count(*) FROM packet WHERE fate = 'dropped' AND proto = 'ICMP' GROUP BY 1, 2"])
        let pairs = lines(rows).dropFirst().map { $0.split(separator: ",").map(String.init) }
        #expect(pairs.count == 1 && pairs.first?[2] == "\(counter)", "the redacted drops: \(rows)")
        if let l = pairs.first, l.count == 3 {
            #expect(l[0] != hosts.addrA && l[1] != hosts.addrB)
            #expect(l[0].hasPrefix("10.") && l[1].hasPrefix("10."))
            func v4(_ s: String) -> UInt32 { s.split(separator: ".").reduce(0) { $0 << 8 | (UInt32($1) ?? 0) } }
            #expect((v4(l[0]) ^ v4(l[1])).leadingZeroBitCount == (v4(hosts.addrA) ^ v4(hosts.addrB)).leadingZeroBitCount)
        }
        let everything = try Shell.must([skbtrail, "sql", "--format", "csv", shared,
                                         "SELECT group_concat(content, ' ') FROM bundle_snapshot"])
        #expect(!everything.contains(hosts.addrA) && !everything.contains(hosts.addrB), "an original address is left in the snapshots")
    }
}
