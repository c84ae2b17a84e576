import Foundation

/// Rewrites what identifies hosts and people in a bundle, the same way everywhere, from a 32-byte key
/// that is never stored: IPv4 and IPv6 addresses by a prefix-preserving keyed permutation (two
/// addresses that share a prefix of n bits map to two that share one of n bits, as Crypto-PAn does, so
/// routes, subnets and rules still match), MAC addresses by a keyed hash, the payload beyond the
/// transport header replaced by keyed noise (equal payloads stay equal: the clone inference compares
/// bytes), process names and command lines scrubbed. Addresses that say what kind
/// they are, not whose (loopback, multicast, broadcast, unspecified), are kept; the private, link-local
/// and IPv4-mapped ranges keep their range prefix and map the rest.
public final class Redactor: @unchecked Sendable {
    let key: [UInt8]
    private let addressKey: (UInt64, UInt64)
    private let macKey: (UInt64, UInt64)
    private var v4Cache: [UInt32: UInt32] = [:]
    private var v6Cache: [[UInt8]: [UInt8]] = [:]
    private var macCache: [[UInt8]: [UInt8]] = [:]
    private let lock = NSLock()

    init(key: [UInt8]) {
        precondition(key.count == 32)
        self.key = key
        func word(_ i: Int) -> UInt64 { key[i..<(i + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        addressKey = (word(0), word(8))
        macKey = (word(16), word(24))
    }

    /// A key given as 64 hex digits.
    public convenience init?(hexKey: String) {
        let hex = Array(hexKey.utf8)
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let b = UInt8(String(decoding: hex[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(b)
        }
        self.init(key: bytes)
    }

    /// A new random key.
    public static func generated() -> Redactor {
        var g = SystemRandomNumberGenerator()
        return Redactor(key: (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    public var hexKey: String { key.map { String(format: "%02x", $0) }.joined() }

    // MARK: addresses

    /// The mapped IPv4 address (network order bytes as a big-endian number).
    func map(v4 a: UInt32) -> UInt32 {
        lock.lock(); defer { lock.unlock() }
        if let m = v4Cache[a] { return m }
        let keep: Int
        switch a >> 24 {
        case 0, 127: keep = 32                        // unspecified, loopback
        case 224...255: keep = 32                     // multicast, reserved, broadcast
        case 10: keep = 8
        case 172 where (a >> 20) & 0xF == 1: keep = 12  // 172.16.0.0/12
        case 192 where (a >> 16) & 0xFF == 168: keep = 16
        case 169 where (a >> 16) & 0xFF == 254: keep = 16
        default: keep = 0
        }
        var out = a
        if keep < 32 {
            for i in keep..<32 {
                let prefix = i == 0 ? 0 : (a >> (32 - i)) << (32 - i)
                if prf(addressKey, 4, UInt64(i), UInt64(prefix), 0) & 1 == 1 { out ^= 1 << (31 - i) }
            }
        }
        if v4Cache.count < 4_000_000 { v4Cache[a] = out }
        return out
    }

    /// The mapped IPv6 address, 16 bytes.
    func map(v6 a: [UInt8]) -> [UInt8] {
        lock.lock()
        if let m = v6Cache[a] { lock.unlock(); return m }
        lock.unlock()
        var keep = 0
        if a[0] == 0xFF || a[0..<15].allSatisfy({ $0 == 0 }) {
            keep = 128                                               // multicast, ::, ::1
        } else if a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xFF && a[11] == 0xFF {
            // IPv4-mapped: the IPv4 address maps as it does alone
            let v4 = UInt32(a[12]) << 24 | UInt32(a[13]) << 16 | UInt32(a[14]) << 8 | UInt32(a[15])
            let m = map(v4: v4)
            return Array(a[0..<12]) + [UInt8(m >> 24), UInt8((m >> 16) & 0xFF), UInt8((m >> 8) & 0xFF), UInt8(m & 0xFF)]
        } else if a[0] == 0xFE && a[1] & 0xC0 == 0x80 {
            keep = 64                                                // link-local fe80::/10: the interface id maps
        } else if a[0] & 0xFE == 0xFC {
            keep = 8                                                 // unique local fc00::/7
        }
        var out = a
        if keep < 128 {
            for i in keep..<128 {
                // the first i bits of a
                var hi: UInt64 = 0, lo: UInt64 = 0
                for b in 0..<16 {
                    let bitsBefore = b * 8
                    guard bitsBefore < i else { break }
                    let take = min(8, i - bitsBefore)
                    let byte = UInt64((a[b] >> (8 - take)) << (8 - take))
                    if b < 8 { hi |= byte << (56 - 8 * b) } else { lo |= byte << (56 - 8 * (b - 8)) }
                }
                if prf(addressKey, 6, UInt64(i), hi, lo) & 1 == 1 { out[i / 8] ^= 0x80 >> (i % 8) }
            }
        }
        lock.lock()
        if v6Cache.count < 1_000_000 { v6Cache[a] = out }
        lock.unlock()
        return out
    }

    /// The mapped MAC address: a keyed hash, locally administered; group addresses (multicast,
    /// broadcast) and all zeros are kept.
    func map(mac m: [UInt8]) -> [UInt8] {
        guard m.count == 6, m[0] & 1 == 0, m.contains(where: { $0 != 0 }) else { return m }
        lock.lock(); defer { lock.unlock() }
        if let r = macCache[m] { return r }
        let v = m.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let h = prf(macKey, 48, v, 0, 0)
        var out = (0..<6).map { UInt8(truncatingIfNeeded: h >> (8 * UInt64($0))) }
        out[0] = out[0] & 0xFC | 0x02
        if macCache.count < 1_000_000 { macCache[m] = out }
        return out
    }

    /// Maps the address in `bytes[at..<at+count]` (4 or 16 bytes) in place.
    func mapAddress(_ bytes: inout [UInt8], at: Int, v6: Bool) {
        if v6 {
            guard at + 16 <= bytes.count else { return }
            let m = map(v6: Array(bytes[at..<(at + 16)]))
            bytes.replaceSubrange(at..<(at + 16), with: m)
        } else {
            guard at + 4 <= bytes.count else { return }
            let a = UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
            let m = map(v4: a)
            bytes[at] = UInt8(m >> 24); bytes[at + 1] = UInt8((m >> 16) & 0xFF)
            bytes[at + 2] = UInt8((m >> 8) & 0xFF); bytes[at + 3] = UInt8(m & 0xFF)
        }
    }

    func mapMAC(_ bytes: inout [UInt8], at: Int) {
        guard at + 6 <= bytes.count else { return }
        bytes.replaceSubrange(at..<(at + 6), with: map(mac: Array(bytes[at..<(at + 6)])))
    }

    // MARK: text

    /// Rewrites every IPv4, IPv6 and MAC address in `text` as the bytes are rewritten. A network written
    /// as ADDRESS/LEN with no host bits stays a network: its mapped address with the host bits cleared,
    /// which holds the mapped addresses of its hosts (the mapping preserves prefixes).
    public func redactText(_ text: String) -> String {
        let u = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        func isRunByte(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 58) || c == 46 || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)  // 0-9 : . A-F a-f
        }
        func isWordByte(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }
        while i < u.count {
            guard isRunByte(u[i]), i == 0 || !isWordByte(u[i - 1]) || u[i - 1] == 58 else {
                out.append(u[i]); i += 1; continue
            }
            var j = i
            while j < u.count && isRunByte(u[j]) { j += 1 }
            // a run that ends inside a word (e.g. "fe80abc" then "x") is a word, not an address
            if j < u.count && isWordByte(u[j]) && !(u[j] >= 48 && u[j] <= 57) {
                while j < u.count && isWordByte(u[j]) { j += 1 }
                out += u[i..<j]; i = j; continue
            }
            // a sentence's full stop is not part of an address
            var end = j
            while end > i && u[end - 1] == 46 { end -= 1 }
            if end == i { out += u[i..<j]; i = j; continue }
            let run = String(decoding: u[i..<end], as: UTF8.self)
            var prefix: Int?
            if end == j && j < u.count && u[j] == 47 {  // "/LEN"
                var k = j + 1
                while k < u.count && u[k] >= 48 && u[k] <= 57 { k += 1 }
                if k > j + 1 && k - j <= 4 { prefix = Int(String(decoding: u[(j + 1)..<k], as: UTF8.self)) }
            }
            out += Array(redactRun(run, prefix: prefix).utf8)
            out += u[end..<j]
            i = j
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// One run of hex digits, dots and colons: an IPv6 address, a MAC, or parts (split at ':') that may be
    /// IPv4 addresses ("10.0.0.1:80").
    private func redactRun(_ run: String, prefix: Int?) -> String {
        if run.contains(":") {
            if let mac = Redactor.parseMAC(run) { return Redactor.macText(map(mac: mac)) }
            if let v6 = Redactor.parseIPv6(run) {
                var m = map(v6: v6)
                if let prefix, prefix <= 128, Redactor.hostBitsZero(v6, prefix) { Redactor.clearHostBits(&m, prefix) }
                return Redactor.v6Text(m)
            }
            let parts = run.split(separator: ":", omittingEmptySubsequences: false)
            if parts.contains(where: { Redactor.parseIPv4(String($0)) != nil }) {
                return parts.enumerated().map { n, p in
                    redactRun(String(p), prefix: n == parts.count - 1 ? prefix : nil)
                }.joined(separator: ":")
            }
            // a bridge id, PRIORITY.MAC ("8000.86:ba:3c:b1:e5:1f")
            if let colon = run.firstIndex(of: ":"), let dot = run[..<colon].lastIndex(of: ".") {
                return String(run[...dot]) + redactRun(String(run[run.index(after: dot)...]), prefix: prefix)
            }
            return run
        }
        guard let v4 = Redactor.parseIPv4(run) else { return run }
        var m = map(v4: v4)
        if let prefix, prefix <= 32 {
            let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
            if v4 & ~mask == 0 { m &= mask }
        }
        return "\(m >> 24).\((m >> 16) & 0xFF).\((m >> 8) & 0xFF).\(m & 0xFF)"
    }

    static func parseIPv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    static func parseIPv6(_ s: String) -> [UInt8]? {
        var a = in6_addr()
        guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    static func parseMAC(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 }) else { return nil }
        let bytes = parts.compactMap { UInt8($0, radix: 16) }
        return bytes.count == 6 ? bytes : nil
    }

    static func macText(_ m: [UInt8]) -> String { m.map { String(format: "%02x", $0) }.joined(separator: ":") }

    static func v6Text(_ b: [UInt8]) -> String {
        let hi = b[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let lo = b[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return IPAddress(family: 6, hi: hi, lo: lo).text
    }

    private static func hostBitsZero(_ a: [UInt8], _ prefix: Int) -> Bool {
        (prefix..<128).allSatisfy { a[$0 / 8] & (0x80 >> ($0 % 8)) == 0 }
    }

    private static func clearHostBits(_ a: inout [UInt8], _ prefix: Int) {
        for i in prefix..<128 { a[i / 8] &= ~(0x80 >> (i % 8)) }
    }

    // MARK: PRF

    /// A keyed hash of `bytes`.
    func stream(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0
        var i = 0
        while i < bytes.count {
            var w: UInt64 = 0
            for j in 0..<min(8, bytes.count - i) { w |= UInt64(bytes[i + j]) << (8 * UInt64(j)) }
            h = prf(macKey, 0x5354, UInt64(i), w, h)
            i += 8
        }
        return h
    }

    /// SipHash-2-4 of four words under `k`: the keyed function the mappings draw their bits from.
    private func prf(_ k: (UInt64, UInt64), _ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k.0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k.1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k.0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k.1
        @inline(__always) func round() {
            v0 &+= v1; v1 = v1 << 13 | v1 >> 51; v1 ^= v0; v0 = v0 << 32 | v0 >> 32
            v2 &+= v3; v3 = v3 << 16 | v3 >> 48; v3 ^= v2
            v0 &+= v3; v3 = v3 << 21 | v3 >> 43; v3 ^= v0
            v2 &+= v1; v1 = v1 << 17 | v1 >> 47; v1 ^= v2; v2 = v2 << 32 | v2 >> 32
        }
        for m in [a, b, c, d] {
            v3 ^= m; round(); round(); v0 ^= m
        }
        let last: UInt64 = 32 << 56
        v3 ^= last; round(); round(); v0 ^= last
        v2 ^= 0xFF
        round(); round(); round(); round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}
