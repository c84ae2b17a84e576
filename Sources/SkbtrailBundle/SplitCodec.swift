import Foundation

/// The `zstd-split` chunk codec: a reversible reshuffle of a chunk's raw records before zstd.
///
/// Every record starts with the fixed `struct st_event` (192 bytes): time, addresses, CPU, PID... The
/// same byte of consecutive headers changes little, the neighbouring bytes of one header a lot. So the
/// fixed parts go first, byte plane by byte plane (byte 0 of every header, then byte 1, ...), then the
/// records' variable tails (packet bytes) in order. zstd then finds long runs: measured on a recorded
/// flood, 4.2 instead of 9.9 bytes per event at level 1. Decoding gives back the raw records byte for
/// byte. A chunk with a record shorter than the fixed part is stored with plain `zstd` instead.
///
/// Layout of the decompressed payload: u32 record count N (little-endian), u32 fixed size F, then N*F
/// bytes of planes (plane i holds byte i of each header), then the tails.
public enum SplitCodec {
    public static let name = "zstd-split"

    /// The payload for `raw` (concatenated records), or nil when a record is shorter than `fixed`.
    public static func split(_ raw: UnsafeRawBufferPointer, records: Int, fixed: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 8 + raw.count)
        var offsets: [Int] = []
        offsets.reserveCapacity(records)
        var offset = 0
        while offset + 4 <= raw.count {
            let size = Int(raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
            guard size >= fixed, offset + size <= raw.count else { return nil }
            offsets.append(offset)
            offset += size
        }
        guard offset == raw.count else { return nil }
        let n = offsets.count
        out.withUnsafeMutableBytes { dst in
            dst.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 0, as: UInt32.self)
            dst.storeBytes(of: UInt32(fixed).littleEndian, toByteOffset: 4, as: UInt32.self)
            let planes = dst.baseAddress! + 8
            let src = raw.baseAddress!
            // 8 records x 8 header bytes at a time: a byte-matrix transpose in registers
            let blocks = fixed % 8 == 0 ? n / 8 * 8 : 0
            for j in stride(from: 0, to: blocks, by: 8) {
                for i in stride(from: 0, to: fixed, by: 8) {
                    moveBlock(from: { UnsafeRawPointer(src + offsets[j + $0] + i) }, to: { planes + (i + $0) * n + j })
                }
            }
            for j in blocks..<n {
                let header = src + offsets[j]
                for i in 0..<fixed { planes.storeBytes(of: header.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i * n + j, as: UInt8.self) }
            }
            var tail = 8 + n * fixed
            for (j, start) in offsets.enumerated() {
                let end = j + 1 < n ? offsets[j + 1] : raw.count
                let length = end - start - fixed
                if length > 0 {
                    (dst.baseAddress! + tail).copyMemory(from: src + start + fixed, byteCount: length)
                    tail += length
                }
            }
        }
        return out
    }

    /// The raw records back from a payload. Throws on a payload that cannot be one.
    public static func join(_ payload: [UInt8], count: Int, into raw: inout [UInt8], fixed expected: Int? = nil) throws {
        guard count >= 8 else { throw BundleError.corruptChunk("split payload of \(count) bytes") }
        let (n, fixed) = payload.withUnsafeBytes {
            (Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
             Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self))))
        }
        if let expected, fixed != expected {
            throw BundleError.corruptChunk("split payload says its fixed headers are \(fixed) bytes, not \(expected)")
        }
        // n <= count and fixed <= 65536 keep n * fixed far from overflow
        guard fixed >= 4, fixed <= 1 << 16, n <= count, n * fixed <= count - 8 else {
            throw BundleError.corruptChunk("split payload says \(n) records of \(fixed) bytes in \(count) bytes")
        }
        let rawSize = count - 8
        if raw.count < rawSize { raw = [UInt8](repeating: 0, count: rawSize) }
        try payload.withUnsafeBytes { src in
            try raw.withUnsafeMutableBytes { dst in
                let planes = src.baseAddress! + 8
                // Record sizes are header bytes 2 and 3 (little-endian): the offsets come first, then the
                // headers go back in place 8 records x 8 bytes at a time, then the tails.
                var offsets = [Int](repeating: 0, count: n)
                var out = 0
                var tail = 8 + n * fixed
                for j in 0..<n {
                    let size = Int(planes.load(fromByteOffset: 2 * n + j, as: UInt8.self))
                        | Int(planes.load(fromByteOffset: 3 * n + j, as: UInt8.self)) << 8
                    let length = size - fixed
                    guard length >= 0, tail + length <= count, out + size <= rawSize else {
                        throw BundleError.corruptChunk("split payload: record \(j) of \(n) claims \(size) bytes")
                    }
                    offsets[j] = out
                    if length > 0 { (dst.baseAddress! + out + fixed).copyMemory(from: src.baseAddress! + tail, byteCount: length) }
                    tail += length
                    out += size
                }
                guard out == rawSize, tail == count else {
                    throw BundleError.corruptChunk("split payload: \(count - tail) stray bytes")
                }
                let base = dst.baseAddress!
                let blocks = fixed % 8 == 0 ? n / 8 * 8 : 0
                for j in stride(from: 0, to: blocks, by: 8) {
                    for i in stride(from: 0, to: fixed, by: 8) {
                        moveBlock(from: { planes + (i + $0) * n + j }, to: { base + offsets[j + $0] + i })
                    }
                }
                for j in blocks..<n {
                    for i in 0..<fixed {
                        dst.storeBytes(of: planes.load(fromByteOffset: i * n + j, as: UInt8.self), toByteOffset: offsets[j] + i, as: UInt8.self)
                    }
                }
            }
        }
    }

    /// Moves an 8x8 block of bytes transposed: word r read at `from(r)` gives byte r of each word
    /// written at `to(k)`.
    @inline(__always)
    static func moveBlock(from: (Int) -> UnsafeRawPointer, to: (Int) -> UnsafeMutableRawPointer) {
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &words) { w in
            for r in 0..<8 { w.storeBytes(of: from(r).loadUnaligned(as: UInt64.self), toByteOffset: r * 8, as: UInt64.self) }
        }
        transpose8x8(&words)
        withUnsafeBytes(of: &words) { w in
            for k in 0..<8 { to(k).storeBytes(of: w.load(fromByteOffset: k * 8, as: UInt64.self), as: UInt64.self) }
        }
    }

    /// Transposes an 8x8 byte matrix held as eight little-endian words (byte b of word r is row r,
    /// column b): three rounds of swapping 4x4, 2x2 and 1x1 blocks.
    @inline(__always)
    static func transpose8x8(_ x: inout (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
        @inline(__always) func swap(_ a: inout UInt64, _ b: inout UInt64, _ shift: UInt64, _ mask: UInt64) {
            let t = ((a >> shift) ^ b) & mask
            a ^= t << shift
            b ^= t
        }
        swap(&x.0, &x.4, 32, 0x0000_0000_FFFF_FFFF)
        swap(&x.1, &x.5, 32, 0x0000_0000_FFFF_FFFF)
        swap(&x.2, &x.6, 32, 0x0000_0000_FFFF_FFFF)
        swap(&x.3, &x.7, 32, 0x0000_0000_FFFF_FFFF)
        swap(&x.0, &x.2, 16, 0x0000_FFFF_0000_FFFF)
        swap(&x.1, &x.3, 16, 0x0000_FFFF_0000_FFFF)
        swap(&x.4, &x.6, 16, 0x0000_FFFF_0000_FFFF)
        swap(&x.5, &x.7, 16, 0x0000_FFFF_0000_FFFF)
        swap(&x.0, &x.1, 8, 0x00FF_00FF_00FF_00FF)
        swap(&x.2, &x.3, 8, 0x00FF_00FF_00FF_00FF)
        swap(&x.4, &x.5, 8, 0x00FF_00FF_00FF_00FF)
        swap(&x.6, &x.7, 8, 0x00FF_00FF_00FF_00FF)
    }
}
