import CZstd
import Foundation

/// zstd through libzstd: one compression context reused for every chunk. Every frame carries zstd's
/// checksum of its content, which decompression verifies: a damaged chunk is found, not decoded into
/// other packets.
public final class ZstdCompressor {
    private let context: OpaquePointer
    public let level: Int32

    public init(level: Int32) {
        self.level = level
        context = ZSTD_createCCtx()
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `bytes` into one zstd frame that records its content size.
    public func compress(_ bytes: UnsafeRawBufferPointer) throws -> Data {
        let bound = ZSTD_compressBound(bytes.count)
        var out = Data(count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            ZSTD_compress2(context, dst.baseAddress, bound, bytes.baseAddress, bytes.count)
        }
        if ZSTD_isError(written) != 0 {
            throw BundleError.codec("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
        }
        out.count = written
        return out
    }
}

public enum Zstd {
    /// The largest frame skbtrail decompresses: a recorder chunk is at most 64 MiB (--chunk-size).
    public static let maxFrame = 256 << 20

    /// Whether a frame carries a content checksum (bit 2 of its frame header descriptor).
    public static func hasChecksum(_ data: Data) -> Bool {
        guard data.count >= 5 else { return false }
        return data.withUnsafeBytes { p in
            p.loadUnaligned(fromByteOffset: 0, as: UInt32.self) == 0xFD2F_B528 && p[4] & 0x04 != 0
        }
    }

    /// The decompressed size a frame records, or nil when it records none (or is not a frame).
    public static func frameContentSize(_ raw: UnsafeRawBufferPointer) -> Int? {
        let size = ZSTD_getFrameContentSize(raw.baseAddress, raw.count)
        return size < UInt64.max - 1 && size <= UInt64(maxFrame) ? Int(size) : nil
    }

    /// Decompresses one frame. `expected` is the size the chunk row says; the frame must agree, and both
    /// are checked before anything is allocated.
    public static func decompress(_ data: Data, expected: Int, into buffer: inout [UInt8]) throws {
        guard expected >= 0, expected <= maxFrame else {
            throw BundleError.corruptChunk("the chunk row says \(expected) bytes, more than the \(maxFrame >> 20) MiB a chunk can hold")
        }
        let size = data.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN / ERROR are the two largest UInt64 values.
        guard size < UInt64.max - 1, size == UInt64(expected) else {
            throw BundleError.corruptChunk("the zstd frame says \(size) bytes, the chunk row says \(expected)")
        }
        if buffer.count < expected { buffer = [UInt8](repeating: 0, count: expected) }
        let got = data.withUnsafeBytes { src in
            buffer.withUnsafeMutableBytes { dst in
                ZSTD_decompress(dst.baseAddress, expected, src.baseAddress, src.count)
            }
        }
        if ZSTD_isError(got) != 0 {
            throw BundleError.corruptChunk("zstd: \(String(cString: ZSTD_getErrorName(got)))")
        }
        guard got == expected else {
            throw BundleError.corruptChunk("decompressed \(got) bytes, expected \(expected)")
        }
    }
}
