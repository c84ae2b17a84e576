import CZstd
import Foundation

/// zstd through libzstd: one compression context reused for every chunk.
public final class ZstdCompressor {
    private let context: OpaquePointer
    public let level: Int32

    public init(level: Int32) {
        self.level = level
        context = ZSTD_createCCtx()
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `bytes` into one zstd frame that records its content size.
    public func compress(_ bytes: UnsafeRawBufferPointer) throws -> Data {
        let bound = ZSTD_compressBound(bytes.count)
        var out = Data(count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            ZSTD_compressCCtx(context, dst.baseAddress, bound, bytes.baseAddress, bytes.count, level)
        }
        if ZSTD_isError(written) != 0 {
            throw BundleError.codec("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
        }
        out.count = written
        return out
    }
}

public enum Zstd {
    /// Decompresses one frame. `expected` is the size the chunk row says; the frame must agree.
    public static func decompress(_ data: Data, expected: Int, into buffer: inout [UInt8]) throws {
        if buffer.count < expected { buffer = [UInt8](repeating: 0, count: expected) }
        let size = data.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN / ERROR are the two largest UInt64 values.
        guard size < UInt64.max - 1, Int(size) == expected else {
            throw BundleError.corruptChunk("the zstd frame says \(size) bytes, the chunk row says \(expected)")
        }
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
