import Foundation
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Writes a large synthetic bundle for measuring decode speed (`SKBTRAIL_BENCH_OUT=/tmp/big.skbt
/// SKBTRAIL_BENCH_EVENTS=1000000 swift test --filter writeBenchmarkBundle`, then
/// `time skbtrail info --no-cache /tmp/big.skbt` on a release build). Skipped otherwise.
@Suite struct BenchTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SKBTRAIL_BENCH_OUT"] != nil))
    func writeBenchmarkBundle() throws {
        let env = ProcessInfo.processInfo.environment
        let path = try #require(env["SKBTRAIL_BENCH_OUT"])
        let total = Int(env["SKBTRAIL_BENCH_EVENTS"] ?? "") ?? 1_000_000
        try? FileManager.default.removeItem(atPath: path)
        let w = try BundleWriter(path: path, recording: recording(uuid: UUID().uuidString))
        var chunk = RecordBuilder()
        var ts: UInt64 = 1_000_000_000
        var n = 0
        var packet = 0
        // five steps per packet on two CPUs, interleaved: rx, nf, nf (DNAT), xmit, consume
        while n < total {
            let skb = 0xffff_8881_0000_0000 + UInt64(packet % 512) * 0x100
            let head = 0xffff_8880_1000_0000 + UInt64(packet % 509) * 0x800
            let cpu = UInt32(packet & 1)
            let dport = UInt16(80)
            let l4: [UInt8] = [0x9c, UInt8(packet & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff]
            let before = ipv4(src: [10, 0, 1, 1], dst: [10, 0, 9, 9], proto: 6, l4: l4, id: UInt16(packet & 0xFFFF))
            let after = ipv4(src: [10, 0, 1, 1], dst: [10, 0, 2, 2], proto: 6, l4: l4, id: UInt16(packet & 0xFFFF))
            var rx = event(probe: 1, ts: ts, skb: skb, head: head, cpu: cpu)
            rx.l3_from = UInt8(ST_L3_DATA.rawValue)
            var nf0 = event(probe: 64, ts: ts + 1000, skb: skb, head: head, cpu: cpu)
            nf0.args.nf.pf = 2; nf0.args.nf.hook = 0; nf0.args.nf.priority = -1000
            var nf4 = event(probe: 68, ts: ts + 2000, skb: skb, head: head, cpu: cpu)
            nf4.args.nf.pf = 2; nf4.args.nf.hook = 0; nf4.args.nf.bracket = 4; nf4.args.nf.priority = -50
            nf4.flags = UInt8(ST_F_CT.rawValue)
            var xmit = event(probe: 6, ts: ts + 3000, skb: skb, head: head, ifindex: 3, cpu: cpu)
            xmit.args.dev.rc = 0
            let consume = event(probe: 11, ts: ts + 4000, skb: skb, head: head, ifindex: 3, cpu: cpu)
            chunk.add(rx, packet: before)
            chunk.add(nf0, packet: before)
            chunk.add(nf4, packet: after)
            chunk.add(xmit)
            chunk.add(consume, packet: after)
            n += 5
            packet += 1
            ts += 5000
            if chunk.count >= 8192 {
                try chunk.bytes.withUnsafeBytes { try w.appendChunk($0, records: chunk.count, firstTs: chunk.firstTs, lastTs: chunk.lastTs) }
                chunk = RecordBuilder()
            }
        }
        if chunk.count > 0 {
            try chunk.bytes.withUnsafeBytes { try w.appendChunk($0, records: chunk.count, firstTs: chunk.firstTs, lastTs: chunk.lastTs) }
        }
        try w.finish(endedNs: ts, reason: "benchmark")
    }
}
