import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
@testable import SkbtrailAnalysis

/// The package root, found from this file's path (Tests/AnalyzerTests/Support.swift).
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A committed fixture bundle and the scenario facts recorded beside it (NAME.skbt.expect).
struct Fixture {
    let name: String
    var path: String { packageRoot.appendingPathComponent("fixtures/\(name).skbt").path }

    /// key=value lines of NAME.skbt.expect.
    func expect() throws -> [String: String] {
        let text = try String(contentsOfFile: path + ".expect", encoding: .utf8)
        var facts: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            facts[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return facts
    }

    func open() throws -> AnalysisDatabase {
        try AnalysisDatabase(bundlePath: path, cache: .none, progress: nil)
    }

    static let all = ["netfilter-drop", "closed-port", "nat-router", "afpacket"]
}

/// The fixture `name` written again into `dir` by this build's BundleWriter (whose chunks carry zstd
/// checksums), under a new recording id: each record passes through `change` (which may alter it, or
/// return false to leave it out).
func rewriteFixture(_ name: String, into dir: String, _ change: (inout st_event, Int) -> Bool = { _, _ in true }) throws -> String {
    let source = try BundleReader(path: Fixture(name: name).path)
    let path = (dir as NSString).appendingPathComponent("\(name)-rewritten.skbt")
    var rec = source.recording
    rec.uuid = UUID().uuidString
    let writer = try BundleWriter(path: path, recording: rec)
    var walker = RecordWalker()
    var index = 0
    try source.forEachChunk { info, buffer, count in
        var out = RecordBuilder()
        try walker.walk(buffer, count: count, chunk: info.id) { ev, snap in
            var e = ev
            defer { index += 1 }
            if change(&e, index) { out.add(e, packet: Array(snap)) }
        }
        try out.bytes.withUnsafeBytes { try writer.appendChunk($0, records: out.count, firstTs: out.firstTs, lastTs: out.lastTs) }
    }
    try writer.writeProbes(try source.probes())
    try writer.writeEnum(table: "drop_reason", try source.enumNames(table: "drop_reason").map { EnumName(value: $0.key, name: $0.value) })
    var snapshot = MachineSnapshot()
    snapshot.netns = try source.netns()
    snapshot.interfaces = try source.interfaces()
    try writer.writeSnapshot(snapshot)
    try writer.finish(endedNs: UInt64(rec.endedNs ?? rec.startedNs), reason: rec.stopReason ?? "test")
    return path
}

/// A scratch directory removed by the caller.
func scratchDirectory() throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("skbtrail-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Runs a query on the analysis and returns its rows.
func rows(_ a: AnalysisDatabase, _ sql: String) throws -> [Row] {
    try a.reader.read { try Row.fetchAll($0, sql: sql) }
}

/// Builds raw records the way the BPF programs do: st_event + packet bytes padded to 8.
struct RecordBuilder {
    var bytes: [UInt8] = []
    var count = 0
    var firstTs = UInt64.max
    var lastTs: UInt64 = 0

    mutating func add(_ event: st_event, packet: [UInt8] = []) {
        var e = event
        e.type = UInt16(ST_REC_EVENT.rawValue)
        e.snap = UInt16(packet.count)
        if !packet.isEmpty && e.l3_from == 0 { e.l3_from = UInt8(ST_L3_NETWORK.rawValue) }
        let padded = (packet.count + 7) & ~7
        e.size = UInt16(MemoryLayout<st_event>.size + padded)
        withUnsafeBytes(of: &e) { bytes += $0 }
        bytes += packet + [UInt8](repeating: 0, count: padded - packet.count)
        count += 1
        firstTs = min(firstTs, e.ts)
        lastTs = max(lastTs, e.ts)
    }

    /// Appends raw bytes of a record of another type (skipped by readers that do not know it).
    mutating func addUnknown(type: UInt16, size: Int) {
        var header = [UInt8](repeating: 0, count: size)
        header[0] = UInt8(type & 0xFF); header[1] = UInt8(type >> 8)
        header[2] = UInt8(size & 0xFF); header[3] = UInt8(size >> 8)
        bytes += header
        count += 1
    }
}

func event(probe: Int, ts: UInt64, skb: UInt64, head: UInt64 = 0xffff_8880_0000_1000, netns: UInt32 = 4026531840,
           ifindex: UInt32 = 2, cpu: UInt32 = 0, ethertype: UInt16 = 0x0800) -> st_event {
    var e = st_event()
    e.probe = UInt16(probe)
    e.ts = ts
    e.skb = skb
    e.head = head
    e.netns = netns
    e.ifindex = ifindex
    e.cpu = cpu
    e.`protocol` = ethertype.bigEndian
    e.pid = 1234
    e.tid = 1234
    withUnsafeMutableBytes(of: &e.comm) { raw in
        for (i, b) in "ping".utf8.enumerated() { raw[i] = b }
    }
    return e
}

/// An IPv4 header (20 bytes) and the L4 bytes given.
func ipv4(src: [UInt8], dst: [UInt8], proto: UInt8, l4: [UInt8], id: UInt16 = 1, ttl: UInt8 = 64) -> [UInt8] {
    let total = UInt16(20 + l4.count)
    return [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(id >> 8), UInt8(id & 0xFF), 0x40, 0, ttl, proto, 0, 0]
        + src + dst + l4
}

func recording(uuid: String = "00000000-0000-0000-0000-000000000001") -> Recording {
    Recording(formatVersion: BundleFormat.version, recorderVersion: "test", uuid: uuid, commandLine: "[\"skbtrail-record\",\"-o\",\"t.skbt\"]",
              filters: "{}", host: "testhost", kernelRelease: "6.18.0", kernelVersion: "#1", machine: "x86_64",
              byteOrder: "little", bootToUnixNs: 1_700_000_000_000_000_000, codec: "zstd", codecLevel: 3, snaplen: 128,
              eventSize: MemoryLayout<st_event>.size, startedNs: 1_000_000_000)
}
