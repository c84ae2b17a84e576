import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing

/// A fresh path in a temporary directory, removed with its directory by the caller's `defer`.
func temporaryBundlePath(_ name: String = "test.skbt") -> (dir: URL, path: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skbtrail-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return (dir, dir.appendingPathComponent(name).path)
}

func sampleRecording(codec: String = "zstd") -> Recording {
    Recording(formatVersion: BundleFormat.version, recorderVersion: "test", uuid: UUID().uuidString, commandLine: "[]",
              filters: "{}", host: "h", kernelRelease: "6.18", kernelVersion: "#1", machine: "x86_64", byteOrder: "little",
              bootToUnixNs: 1_700_000_000_000_000_000, codec: codec, codecLevel: codec.hasPrefix("zstd") ? 1 : 0, snaplen: 128,
              eventSize: BundleFormat.eventSize, startedNs: 1000)
}

/// Bytes of one ST_REC_EVENT record with `snap` packet bytes, as the BPF side lays it out.
func eventRecord(probe: UInt32, ts: UInt64, skb: UInt64, packet: [UInt8], cpu: UInt32 = 0, flags: UInt8 = 0) -> [UInt8] {
    var event = st_event()
    event.cpu = cpu
    event.flags = flags
    let padded = (packet.count + 7) & ~7
    event.type = UInt16(ST_REC_EVENT.rawValue)
    event.size = UInt16(BundleFormat.eventSize + padded)
    event.probe = UInt16(probe)
    event.snap = UInt16(packet.count)
    event.ts = ts
    event.skb = skb
    var bytes = withUnsafeBytes(of: event) { [UInt8]($0) }
    bytes += packet + [UInt8](repeating: 0, count: padded - packet.count)
    return bytes
}

@Suite struct BundleRoundTrip {
    @Test(arguments: ["zstd-split", "zstd", "none"])
    func chunksComeBackByteForByte(codec: String) throws {
        let (dir, path) = temporaryBundlePath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try BundleWriter(path: path, recording: sampleRecording(codec: codec))
        var raw: [UInt8] = []
        for i in 0..<100 {
            raw += eventRecord(probe: ST_P_KFREE_SKB.rawValue, ts: UInt64(2000 + i), skb: 0xffff_8880_0000_0000 + UInt64(i),
                               packet: [0x45, 0, 0, 84] + [UInt8](repeating: UInt8(i), count: i % 30))
        }
        try raw.withUnsafeBytes { try writer.appendChunk($0, records: 100, firstTs: 2000, lastTs: 2099) }
        try writer.finish(endedNs: 5000, reason: "test")
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "finish leaves one self-contained file")

        let reader = try BundleReader(path: path)
        #expect(reader.recording.stopReason == "test")
        #expect(reader.recording.endedNs == 5000)
        var seen: [UInt64] = []
        var walker = RecordWalker()
        try reader.forEachChunk { info, bytes, count in
            #expect(info.records == 100)
            #expect(Array(bytes[0..<count]) == raw)
            try walker.walk(bytes, count: count, chunk: info.id) { event, packet in
                seen.append(event.ts)
                #expect(packet.count == Int(event.snap))
                #expect(packet.first == 0x45)
            }
        }
        #expect(seen == (0..<100).map { UInt64(2000 + $0) })
        #expect(walker.unknownRecords == 0)
    }

    @Test func splitCodecStoresLessAndFallsBackForShortRecords() throws {
        let (dir, path) = temporaryBundlePath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try BundleWriter(path: path, recording: sampleRecording(codec: SplitCodec.name))
        var raw: [UInt8] = []
        for i in 0..<2000 {
            raw += eventRecord(probe: ST_P_NET_DEV_QUEUE.rawValue, ts: UInt64(1_000_000 + i * 1000), skb: 0xffff_8880_1000_0000 + UInt64(i % 50) << 8,
                               packet: [0x45, 0, 0, 84, UInt8(i & 0xff), UInt8(i >> 8)] + [UInt8](repeating: 7, count: i % 40))
        }
        try raw.withUnsafeBytes { try writer.appendChunk($0, records: 2000, firstTs: 1_000_000, lastTs: 3_000_000) }
        // an unknown record type shorter than the fixed header: this chunk falls back to plain zstd
        var short = [UInt8](repeating: 0, count: 16)
        short[0] = 99; short[2] = 16
        try short.withUnsafeBytes { try writer.appendChunk($0, records: 1, firstTs: 1, lastTs: 1) }
        let split = writer.storedBytes
        try writer.finish(endedNs: 5, reason: "test")

        let db = try DatabaseQueue(path: path)
        let codecs = try db.read { try String.fetchAll($0, sql: "SELECT codec FROM chunk ORDER BY id") }
        try db.close()
        #expect(codecs == [SplitCodec.name, "zstd"])
        var back: [[UInt8]] = []
        try BundleReader(path: path).forEachChunk { _, bytes, count in back.append(Array(bytes[0..<count])) }
        #expect(back == [raw, short])
        // the reshuffle is what makes it small: plain zstd of the same records is larger
        let plain = try raw.withUnsafeBytes { try ZstdCompressor(level: 1).compress($0) }.count
        #expect(split - 30 < plain, "split \(split) bytes, plain zstd \(plain)")
    }

    @Test(arguments: [0, 1, 7, 8, 9, 64, 1001])
    func splitCodecPlanesAreTheHeadersTransposed(records: Int) throws {
        // records of varying tails, with arbitrary header bytes
        var rng = SystemRandomNumberGenerator()
        var raw: [UInt8] = []
        var starts: [Int] = []
        for _ in 0..<records {
            starts.append(raw.count)
            let tail = 8 * Int.random(in: 0...4, using: &rng)
            var record = (0..<(192 + tail)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            record[2] = UInt8((192 + tail) & 0xFF); record[3] = UInt8((192 + tail) >> 8)
            raw += record
        }
        let payload = try #require(raw.withUnsafeBytes { SplitCodec.split($0, records: records, fixed: 192) })
        // plane i holds byte i of every header, in record order
        for (j, start) in starts.enumerated() {
            for i in [0, 2, 3, 7, 8, 100, 191] {
                #expect(payload[8 + i * records + j] == raw[start + i], "record \(j) byte \(i)")
            }
        }
        var back: [UInt8] = []
        try SplitCodec.join(payload, count: payload.count, into: &back)
        #expect(Array(back.prefix(raw.count)) == raw)
    }

    @Test func damagedSplitPayloadIsACorruptChunk() throws {
        var payload = [UInt8](repeating: 0, count: 8 + 192)
        payload[0] = 1; payload[4] = 192   // one record of 192 bytes...
        payload[8 + 2 * 1] = 0xFF          // ...whose size field (plane 2) says 255
        var out: [UInt8] = []
        #expect(throws: BundleError.self) { try SplitCodec.join(payload, count: payload.count, into: &out) }
    }

    @Test func unknownRecordTypesAreSkippedAndCounted() throws {
        var raw = eventRecord(probe: ST_P_CONSUME_SKB.rawValue, ts: 1, skb: 1, packet: [])
        var unknown = [UInt8](repeating: 0xAB, count: 24)
        unknown[0] = 99; unknown[1] = 0; unknown[2] = 24; unknown[3] = 0
        raw += unknown
        raw += eventRecord(probe: ST_P_CONSUME_SKB.rawValue, ts: 2, skb: 2, packet: [1, 2, 3])
        var walker = RecordWalker()
        var count = 0
        try walker.walk(raw, count: raw.count, chunk: 1) { _, _ in count += 1 }
        #expect(count == 2)
        #expect(walker.unknownRecords == 1)
    }

    @Test func sameBytesComeFromTheSameCPUsPreviousRecordOfTheSkb() throws {
        let same = UInt8(ST_F_SAME_BYTES.rawValue)
        let probe = ST_P_NET_DEV_QUEUE.rawValue
        var raw = eventRecord(probe: probe, ts: 1, skb: 7, packet: [0x45, 1, 2, 3], cpu: 0)
        raw += eventRecord(probe: probe, ts: 2, skb: 7, packet: [], cpu: 0, flags: same)  // -> 0x45 1 2 3
        raw += eventRecord(probe: probe, ts: 3, skb: 7, packet: [], cpu: 1, flags: same)  // other CPU: none
        raw += eventRecord(probe: probe, ts: 4, skb: 8, packet: [0x60, 9], cpu: 0)
        raw += eventRecord(probe: probe, ts: 5, skb: 7, packet: [], cpu: 0, flags: same)  // slot now skb 8: none
        var walker = RecordWalker()
        var got: [[UInt8]] = []
        try walker.walk(raw, count: raw.count, chunk: 1) { _, packet in got.append(Array(packet)) }
        #expect(got == [[0x45, 1, 2, 3], [0x45, 1, 2, 3], [], [0x60, 9], []])
    }

    @Test func impossibleRecordSizeIsACorruptChunk() throws {
        var raw = eventRecord(probe: ST_P_CONSUME_SKB.rawValue, ts: 1, skb: 1, packet: [])
        raw[2] = 0xFF; raw[3] = 0x7F // size far past the end
        var walker = RecordWalker()
        #expect(throws: BundleError.self) { try walker.walk(raw, count: raw.count, chunk: 7) { _, _ in } }
    }
}

@Suite struct BundleErrors {
    @Test func newerFormatIsRefusedWithItsVersion() throws {
        let (dir, path) = temporaryBundlePath()
        defer { try? FileManager.default.removeItem(at: dir) }
        try BundleWriter(path: path, recording: sampleRecording()).finish(endedNs: 1, reason: "t")
        let db = try DatabaseQueue(path: path)
        try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA user_version = \(BundleFormat.version + 1)") }
        try db.close()
        #expect(throws: BundleError.tooNew(path, found: BundleFormat.version + 1, supported: BundleFormat.version)) {
            _ = try BundleReader(path: path)
        }
        let message = BundleError.tooNew(path, found: 2, supported: 1).description
        #expect(message.contains(path) && message.contains("Upgrade skbtrail"))
    }

    @Test func missingAndForeignFilesSayWhatTheyAre() throws {
        let (dir, path) = temporaryBundlePath()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: BundleError.notFound(path)) { _ = try BundleReader(path: path) }
        try Data("not sqlite at all, just text".utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try BundleReader(path: path)
            Issue.record("a text file opened as a bundle")
        } catch let error as BundleError {
            #expect(error.description.contains("is not an skbtrail bundle"))
        }
    }

    @Test func writerRefusesToOverwrite() throws {
        let (dir, path) = temporaryBundlePath()
        defer { try? FileManager.default.removeItem(at: dir) }
        FileManager.default.createFile(atPath: path, contents: Data())
        #expect(throws: BundleError.self) { _ = try BundleWriter(path: path, recording: sampleRecording()) }
    }
}
