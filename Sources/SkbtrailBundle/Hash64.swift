/// skbtrail's one 64-bit hash (FNV-1a's offset basis and prime, fed a word at a time, with a fold of the
/// high half so later words cannot cancel earlier differences). It keys parsed headers by their bytes,
/// compares packet bytes for clone inference and names analysis caches by content. Not cryptographic.
public struct Hash64: Sendable {
    public private(set) var value: UInt64

    public init(seed: UInt64 = 0) {
        value = 0xcbf2_9ce4_8422_2325 ^ seed
    }

    /// Adds bytes: 8 at a time, then the tail one by one.
    @inline(__always) public mutating func add(_ raw: UnsafeRawBufferPointer) {
        var h = value
        var i = 0
        let n = raw.count
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 32
            i += 8
        }
        while i < n {
            h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3
            i += 1
        }
        value = h
    }

    /// Adds a string's UTF-8 bytes and a separator, so ("ab", "c") and ("a", "bc") differ.
    public mutating func add(_ text: String) {
        var s = text
        s.withUTF8 { add(UnsafeRawBufferPointer($0)) }
        add(UInt64(0xFF))
    }

    /// Adds one value.
    @inline(__always) public mutating func add(_ word: UInt64) {
        value = (value ^ word) &* 0x9E37_79B9_7F4A_7C15
        value ^= value >> 32
    }

    /// The hash of `raw` with `seed`, in one call.
    @inline(__always) public static func of(_ raw: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = Hash64(seed: seed)
        h.add(raw)
        return h.value
    }

    /// 16 hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
