import Foundation
import GRDB
import GRDBSQLite

/// An address or a network as a filter gives it: `10.0.0.1`, `10.199.1.0/24`, `fd00::/8`, `fe80::1`.
/// Bits past the prefix may be set (`10.199.1.2/24` is the network 10.199.1.0/24, as `ip route` reads it).
public struct IPNetwork: Equatable, Sendable {
    /// 4 or 16 bytes, host bits cleared.
    public let bytes: [UInt8]
    public let prefix: Int
    public var isHost: Bool { prefix == bytes.count * 8 }

    /// Nil when `text` is not an address, or its prefix is out of range.
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = parts.first.map(String.init), let raw = IPNetwork.parseAddress(address) else { return nil }
        var prefix = raw.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...raw.count * 8).contains(p) else { return nil }
            prefix = p
        }
        var b = raw
        for i in prefix..<(b.count * 8) { b[i / 8] &= ~(0x80 >> UInt8(i % 8)) }
        bytes = b
        self.prefix = prefix
    }

    /// The address as the analysis database writes it (`10.0.0.1`, `fd00::1`), for equality matches.
    public var text: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return Redactor.v6Text(bytes)
    }

    /// `10.199.1.0/24`; the bare address when it is a host.
    public var description: String { isHost ? text : "\(text)/\(prefix)" }

    /// Whether the address `text` is in this network (false for text that is not an address).
    public func contains(_ text: String) -> Bool {
        guard let a = IPNetwork.parseAddress(text), a.count == bytes.count else { return false }
        let whole = prefix / 8
        for i in 0..<whole where a[i] != bytes[i] { return false }
        let rest = prefix % 8
        if rest == 0 { return true }
        let mask: UInt8 = 0xFF << UInt8(8 - rest)
        return a[whole] & mask == bytes[whole]
    }

    /// 4 bytes for IPv4, 16 for IPv6 (an IPv4 address in IPv6 form stays IPv6).
    static func parseAddress(_ s: String) -> [UInt8]? {
        if let v4 = Redactor.parseIPv4(s) { return [UInt8(v4 >> 24), UInt8((v4 >> 16) & 0xFF), UInt8((v4 >> 8) & 0xFF), UInt8(v4 & 0xFF)] }
        return s.contains(":") ? Redactor.parseIPv6(s) : nil
    }
}

/// The SQL function `in_net(address, network)`: 1 when the address text is in the network
/// (`in_net(saddr, '10.199.0.0/16')`), 0 when not, NULL when either is NULL; an error for a network
/// that is not one. Registered on every connection to an analysis database.
enum NetworkFunction {
    /// Networks parsed once per text (queries pass the same constant for every row).
    final class Cache {
        var text = ""
        var network: IPNetwork?
    }

    static func register(connection: OpaquePointer) {
        let cache = Unmanaged.passRetained(Cache()).toOpaque()
        sqlite3_create_function_v2(connection, "in_net", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, cache, { ctx, argc, argv in
            guard let ctx, let argv, argc == 2,
                  let a = argv[0], let n = argv[1],
                  sqlite3_value_type(a) != SQLITE_NULL, sqlite3_value_type(n) != SQLITE_NULL else {
                if let ctx { sqlite3_result_null(ctx) }
                return
            }
            let cache = Unmanaged<Cache>.fromOpaque(sqlite3_user_data(ctx)).takeUnretainedValue()
            let netText = String(cString: sqlite3_value_text(n))
            if netText != cache.text || cache.network == nil {
                cache.text = netText
                cache.network = IPNetwork(netText)
            }
            guard let network = cache.network else {
                sqlite3_result_error(ctx, "in_net: '\(netText)' is not an address or network (give 10.0.0.0/8 or fd00::/8)", -1)
                return
            }
            guard let at = sqlite3_value_text(a) else { sqlite3_result_int(ctx, 0); return }
            sqlite3_result_int(ctx, network.contains(String(cString: at)) ? 1 : 0)
        }, nil, nil, { p in if let p { Unmanaged<Cache>.fromOpaque(p).release() } })
    }
}
