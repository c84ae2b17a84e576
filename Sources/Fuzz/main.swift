import Foundation
import SkbtrailAnalysis
import SkbtrailBundle
import SkbtrailEvents

// skbtrail-fuzz: one input through what a bundle's chunk goes through before any SQL sees it: the chunk
// codec, the record walker and the packet header parser; and the split codec's round trip. Built with
// libFuzzer by scripts/fuzz-libfuzzer.sh (-sanitize=fuzzer, -D SKBTRAIL_LIBFUZZER); built plainly, it
// runs the inputs given as files or directories once each (a saved crash, the corpus) and says so.
//
// Input: byte 0 picks the target, the rest is its bytes.
//   0  stored chunk, codec none      1  stored chunk, codec zstd      2  stored chunk, codec zstd-split
//   3  raw records: walked, then split and joined back (must give the same bytes)
//   4  packet bytes from the L3 header (byte 1 picks IPv4, IPv6 or ARP)

/// One input; traps (the fuzzer's finding) only on a broken invariant, never on damaged input.
func fuzzOne(_ input: UnsafeRawBufferPointer) {
    guard let target = input.first else { return }
    let body = Data(input.dropFirst())
    switch target % 5 {
    case 0, 1, 2:
        let codec = ["none", "zstd", SplitCodec.name][Int(target % 5)]
        // the chunk row's raw_size: what the frame says, capped as the reader caps it
        let said = body.withUnsafeBytes { Zstd.frameContentSize($0) } ?? body.count
        let rawSize = codec == SplitCodec.name ? said - 8 : said
        guard rawSize >= 0, rawSize <= 1 << 22 else { return }
        var buffer: [UInt8] = [], scratch: [UInt8] = []
        do {
            try ChunkCodec.decompress(body, codec: codec, rawSize: rawSize, into: &buffer, scratch: &scratch, chunk: 1)
        } catch {
            return
        }
        walk(buffer, count: rawSize)
    case 3:
        let raw = [UInt8](body)
        walk(raw, count: raw.count)
        let records = raw.withUnsafeBytes { countRecords($0) }
        guard let payload = raw.withUnsafeBytes({ SplitCodec.split($0, records: records, fixed: BundleFormat.eventSize) }) else { return }
        var back: [UInt8] = []
        do {
            try SplitCodec.join(payload, count: payload.count, into: &back, fixed: BundleFormat.eventSize)
        } catch {
            fatalError("split gave a payload that join refuses: \(error)")
        }
        precondition(Array(back.prefix(raw.count)) == raw, "split and join do not give the records back")
    default:
        let ethertype: UInt16 = [0x0800, 0x86DD, 0x0806][Int((body.first ?? 0) % 3)]
        let bytes = body.dropFirst()
        _ = bytes.withUnsafeBytes { PacketHeaders.parse($0, ethertype: ethertype) }
    }
}

/// Walks records as the decoder does, parsing each one's packet bytes.
func walk(_ buffer: [UInt8], count: Int) {
    var walker = RecordWalker()
    try? walker.walk(buffer, count: count, chunk: 1) { ev, snap in
        let ethertype = UInt16(bigEndian: ev.protocol)
        _ = snap.withUnsafeBytes { PacketHeaders.parse($0, ethertype: ethertype) }
    }
}

/// Records in `raw` by their size fields, as the writer counts them (0 when a size cannot be right).
func countRecords(_ raw: UnsafeRawBufferPointer) -> Int {
    var offset = 0, n = 0
    while offset + 4 <= raw.count {
        let size = Int(raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
        guard size > 0 else { return 0 }
        offset += size
        n += 1
    }
    return n
}

#if SKBTRAIL_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
})
#else
var inputs: [String] = []
for arg in CommandLine.arguments.dropFirst() {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else {
        FileHandle.standardError.write(Data("skbtrail-fuzz: \(arg): no such file or directory\n".utf8))
        exit(2)
    }
    if isDir.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []
        inputs += names.sorted().map { (arg as NSString).appendingPathComponent($0) }
    } else {
        inputs.append(arg)
    }
}
if inputs.isEmpty {
    FileHandle.standardError.write(Data("usage: skbtrail-fuzz FILE|DIR...  (runs each input once; scripts/fuzz-libfuzzer.sh fuzzes)\n".utf8))
    exit(2)
}
for path in inputs {
    guard let data = FileManager.default.contents(atPath: path) else { continue }
    data.withUnsafeBytes { fuzzOne($0) }
}
print("skbtrail-fuzz: \(inputs.count) inputs ran")
#endif
