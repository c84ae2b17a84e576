/// The protocol names both programs take (`skbtrail-record --proto` and the analyzer's `--proto`):
/// link-layer names match the skb's protocol (ethertype), the others the IP protocol number.
public enum ProtocolNames {
    /// Names of ethertypes.
    public static let l3: [String: UInt16] = ["ip": 0x0800, "ipv4": 0x0800, "ipv6": 0x86DD, "ip6": 0x86DD,
                                              "arp": 0x0806, "8021q": 0x8100, "vlan": 0x8100]
    /// Names of IP protocols.
    public static let l4: [String: UInt8] = ["tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "icmp6": 58,
                                             "gre": 47, "esp": 50, "ah": 51, "sctp": 132, "igmp": 2]

    /// What a `--proto` value names.
    public enum Selection: Equatable, Sendable {
        case ethertype(UInt16)
        case ipProtocol(UInt8)
    }

    /// The selection a `--proto` value names (a name above, or an IP protocol number 0-255), or nil.
    public static func parse(_ text: String) -> Selection? {
        let key = text.lowercased()
        if let e = l3[key] { return .ethertype(e) }
        if let p = l4[key] { return .ipProtocol(p) }
        if let n = UInt8(key) { return .ipProtocol(n) }
        return nil
    }

    /// The sentence for a value `parse` refuses.
    public static func refusal(_ text: String) -> String {
        "--proto \(text): unknown protocol. Use one of \((l3.keys.sorted() + l4.keys.sorted()).joined(separator: ", ")), or an IP protocol number (0-255)."
    }
}

/// Times as both programs take them: "5ms", "200us", "200µs", "1.5s", "800ns", "2m", "1h"; a bare
/// number is seconds.
public enum TimeText {
    /// Nanoseconds, or nil when `text` is not a time.
    public static func nanoseconds(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        // longest suffix first: "ms" before "m" and "s"
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        var number = Substring(t), scale = 1e9
        if let (suffix, s) = units.first(where: { t.hasSuffix($0.0) }) {
            number = t.dropLast(suffix.count)
            scale = s
        }
        guard let v = Double(number), v >= 0, v.isFinite, v * scale < 9e18 else { return nil }
        return Int64((v * scale).rounded())
    }
}
