import Foundation
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Reports stream: what they print goes out while they read, not after (no timing involved).
@Suite struct StreamingTests {
    /// A bundle of `count` short UDP packets, each received and consumed.
    static func writeFlood(at path: String, count: Int) throws {
        let w = try BundleWriter(path: path, recording: recording())
        var chunk = RecordBuilder()
        for i in 0..<count {
            let skb = 0xffff_8881_0000_0000 + UInt64(i % 512) * 0x100
            let udp: [UInt8] = [0x9C, 0x40, 0x14, 0x51, 0, 16, 0, 0] + [UInt8](repeating: 0, count: 8)
            let bytes = ipv4(src: [10, 0, 0, 1], dst: [10, 0, 0, 2], proto: 17, l4: udp, id: UInt16(truncatingIfNeeded: i))
            let t = 1_000_000_000 + UInt64(i) * 10_000
            var rx = event(probe: Int(ST_P_NETIF_RECEIVE_SKB.rawValue), ts: t, skb: skb, head: skb << 4)
            rx.l3_from = UInt8(ST_L3_DATA.rawValue)
            chunk.add(rx, packet: bytes)
            chunk.add(event(probe: Int(ST_P_CONSUME_SKB.rawValue), ts: t + 5_000, skb: skb, head: skb << 4), packet: bytes)
            if chunk.count >= 4096 || i == count - 1 {
                try chunk.bytes.withUnsafeBytes { try w.appendChunk($0, records: chunk.count, firstTs: chunk.firstTs, lastTs: chunk.lastTs) }
                chunk = RecordBuilder()
            }
        }
        try w.finish(endedNs: 2_000_000_000_000, reason: "test")
    }

    @Test func pathsWritesItsFirstPacketsBeforeItHasReadTheRest() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/flood.skbt"
        let packets = 20_000
        try StreamingTests.writeFlood(at: path, count: packets)
        let a = try AnalysisDatabase(bundlePath: path, cache: .directory(dir + "/cache"), progress: nil)
        #expect(a.decodeStats?.packets == packets)
        // The sink hands on its first piece at 64 KiB: a report that built all its text first would
        // hand on every packet in that piece, or hand it on only at the end.
        var pieces: [Int] = []
        var all = ""
        let sink = TextSink { text in
            pieces.append(text.components(separatedBy: "\npacket ").count)
            all += text
        }
        try a.pathsReport(filter: PacketFilter(), options: PathsOptions(), to: sink)
        sink.flush()
        #expect(pieces.count > 10)
        #expect(pieces.first.map { $0 < packets / 10 } == true, "the first piece holds \(pieces.first ?? 0) of \(packets) packets")
        // the column line, then a block per packet, each after a line break
        #expect(all.hasPrefix("# packet ID"))
        #expect(all.components(separatedBy: "\npacket ").count == packets + 1, "every packet was written")
    }

    @Test func diagStreamsItsPacketsToo() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/flood.skbt"
        try StreamingTests.writeFlood(at: path, count: 20_000)
        let a = try AnalysisDatabase(bundlePath: path, cache: .directory(dir + "/cache"), progress: nil)
        let d = try a.diagnose()
        var pieces = 0
        var firstPiecePackets = 0
        let sink = TextSink { text in
            if pieces == 0 { firstPiecePackets = text.components(separatedBy: "\npacket ").count }
            pieces += 1
        }
        try a.diagReport(d, to: sink)
        sink.flush()
        #expect(pieces > 10)
        #expect(firstPiecePackets < 2_000)
    }
}

/// The `skbtrail` command as a user runs it (built by `swift build`).
@Suite struct StreamingCommandTests {
    static var binary: String? {
        let path = packageRoot.appendingPathComponent(".build/debug/skbtrail").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    @Test(.enabled(if: binary != nil, "needs .build/debug/skbtrail: run swift build first"))
    func pathsIntoAClosedPipeStopsThere() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/flood.skbt"
        try StreamingTests.writeFlood(at: path, count: 20_000)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(StreamingCommandTests.binary))
        p.arguments = ["paths", path]
        p.environment = ["SKBTRAIL_CACHE_DIR": dir + "/cache", "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        // read the column line and the first packet's, then close the pipe as `head -2` does
        var first = Data()
        while first.filter({ $0 == 0x0A }).count < 2 {
            let piece = out.fileHandleForReading.availableData
            if piece.isEmpty { break }
            first.append(piece)
        }
        try out.fileHandleForReading.close()
        p.waitUntilExit()
        let lines = String(decoding: first, as: UTF8.self).split(separator: "\n")
        #expect(lines.count >= 2 && lines[0].hasPrefix("# packet ID") && lines[1].hasPrefix("packet 1  UDP 10.0.0.1:40000 > 10.0.0.2:5201"))
        // killed by SIGPIPE while it still had packets to write: it did not write them all first
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGPIPE)
    }
}
