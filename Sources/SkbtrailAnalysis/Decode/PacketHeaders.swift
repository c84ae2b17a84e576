import Foundation

/// An IPv4 or IPv6 address as raw bytes (network order), compact enough for millions of events.
public struct IPAddress: Hashable, Sendable {
    /// 4 for IPv4, 6 for IPv6, 0 for none.
    public var family: UInt8
    /// Bytes 0..<8 (IPv4 uses the first 4).
    public var hi: UInt64
    /// Bytes 8..<16.
    public var lo: UInt64

    public static let none = IPAddress(family: 0, hi: 0, lo: 0)

    public init(family: UInt8, hi: UInt64, lo: UInt64) {
        self.family = family
        self.hi = hi
        self.lo = lo
    }

    /// Reads 4 (IPv4) or 16 (IPv6) bytes at `offset`.
    init(_ p: UnsafeRawBufferPointer, at offset: Int, v6: Bool) {
        if v6 {
            family = 6
            hi = p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            lo = p.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
        } else {
            family = 4
            hi = UInt64(p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            lo = 0
        }
    }

    /// Builds an address from a 16-byte kernel field (IPv4 in the first 4 bytes).
    init(kernelBytes t: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                         UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8), v6: Bool) {
        var copy = t
        let (h, l) = withUnsafeBytes(of: &copy) { p in
            (p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        if v6 {
            self.init(family: 6, hi: h, lo: l)
        } else {
            self.init(family: 4, hi: h & 0xFFFF_FFFF, lo: 0)
        }
    }

    /// Dotted quad or RFC 5952 text; empty for none.
    public var text: String {
        switch family {
        case 4:
            let v = UInt32(truncatingIfNeeded: hi)
            return "\(v & 0xFF).\((v >> 8) & 0xFF).\((v >> 16) & 0xFF).\(v >> 24)"
        case 6:
            return IPAddress.ipv6Text(hi: hi, lo: lo)
        default:
            return ""
        }
    }

    static func ipv6Text(hi: UInt64, lo: UInt64) -> String {
        var words = [UInt16](repeating: 0, count: 8)
        var h = hi, l = lo
        withUnsafeBytes(of: &h) { p in for i in 0..<4 { words[i] = UInt16(p[2 * i]) << 8 | UInt16(p[2 * i + 1]) } }
        withUnsafeBytes(of: &l) { p in for i in 0..<4 { words[4 + i] = UInt16(p[2 * i]) << 8 | UInt16(p[2 * i + 1]) } }
        // IPv4-mapped ::ffff:a.b.c.d
        if words[0..<5].allSatisfy({ $0 == 0 }) && words[5] == 0xFFFF {
            return "::ffff:\(words[6] >> 8).\(words[6] & 0xFF).\(words[7] >> 8).\(words[7] & 0xFF)"
        }
        // longest run of zeros (length >= 2) becomes "::"
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if words[i] == 0 {
                var j = i
                while j < 8 && words[j] == 0 { j += 1 }
                if j - i > bestLen { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        if bestLen < 2 { bestStart = -1 }
        var out = ""
        i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
            out += String(words[i], radix: 16)
            i += 1
        }
        return out
    }
}

/// What the analyzer reads from a record's packet bytes (which start at the L3 header).
public struct PacketHeaders: Sendable {
    public enum L3: UInt8, Sendable { case none = 0, ipv4 = 4, ipv6 = 6, arp = 1 }
    public var l3: L3 = .none
    /// IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), 0 when none.
    public var l4: UInt8 = 0
    /// 802.1Q VLAN id + 1 (0: no tag).
    public var vlan: UInt16 = 0
    public var src: IPAddress = .none
    public var dst: IPAddress = .none
    /// TCP/UDP ports; for ICMP echo, `sport` is the identifier (as conntrack keys it).
    public var sport: UInt16 = 0
    public var dport: UInt16 = 0
    public var hasPorts = false
    public var tcpFlags: UInt8 = 0
    public var tcpSeq: UInt32 = 0
    public var tcpAck: UInt32 = 0
    /// The TCP header's window field as sent (not scaled); -1 when the header is cut short.
    public var tcpWindow: Int32 = -1
    public var icmpType: Int16 = -1
    public var icmpCode: Int16 = -1
    public var icmpID: Int32 = -1
    public var icmpSeq: Int32 = -1
    public var ipID: Int32 = -1
    public var ttl: Int16 = -1
    /// ARP opcode (1 request, 2 reply), 0 when not ARP.
    public var arpOp: UInt16 = 0
    public var arpSenderMAC: UInt64 = 0
    /// Set when the L4 header could not be read (a non-first fragment, or too few bytes).
    public var fragment = false
    /// Tunnel seen around an inner IPv4/IPv6 header: "gre", "ipip", "vxlan", "geneve" (empty: none).
    public var tunnel: String = ""
    /// The inner packet's tuple text when a tunnel was parsed.
    public var inner: String = ""

    public init() {}

    /// Parses `bytes` that start at the network header of a packet whose skb->protocol is `ethertype`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, ethertype: UInt16, depth: Int = 0) -> PacketHeaders {
        var h = PacketHeaders()
        var type = ethertype
        var off = 0
        // 802.1Q / 802.1ad tags left in the data (a VLAN-aware path that did not strip the tag).
        while (type == 0x8100 || type == 0x88A8) && bytes.count >= off + 4 {
            let tci = UInt16(bytes[off]) << 8 | UInt16(bytes[off + 1])
            if h.vlan == 0 { h.vlan = (tci & 0x0FFF) + 1 }
            type = UInt16(bytes[off + 2]) << 8 | UInt16(bytes[off + 3])
            off += 4
        }
        // No protocol (a locally built skb before it is set): guess from the IP version nibble, where the
        // rest of the header agrees. Netlink and vsock skbs have no protocol either, and a netlink message
        // of 64 to 79 bytes starts with 0x4_ (its length, little-endian): its IPv4 total length would be 0.
        if type == 0 && bytes.count > off {
            switch bytes[off] >> 4 {
            case 4 where bytes.count >= off + 20:
                let ihl = Int(bytes[off] & 0x0F) * 4
                let total = Int(bytes[off + 2]) << 8 | Int(bytes[off + 3])
                if ihl >= 20 && total >= ihl { type = 0x0800 }
            case 6 where bytes.count >= off + 40:
                // a version-6 header with a next header IPv6 carries (hop-by-hop options, TCP, UDP, ICMPv6, ...)
                if [0, 4, 6, 17, 41, 43, 44, 47, 50, 51, 58, 59, 60, 132].contains(bytes[off + 6]) { type = 0x86DD }
            default: break
            }
        }
        switch type {
        case 0x0800: h.parseIPv4(bytes, at: off, depth: depth)
        case 0x86DD: h.parseIPv6(bytes, at: off, depth: depth)
        case 0x0806: h.parseARP(bytes, at: off)
        default: break
        }
        return h
    }

    private mutating func parseIPv4(_ b: UnsafeRawBufferPointer, at off: Int, depth: Int) {
        guard b.count >= off + 20, b[off] >> 4 == 4 else { return }
        let ihl = Int(b[off] & 0x0F) * 4
        guard ihl >= 20 else { return }
        l3 = .ipv4
        ipID = Int32(UInt16(b[off + 4]) << 8 | UInt16(b[off + 5]))
        ttl = Int16(b[off + 8])
        l4 = b[off + 9]
        src = IPAddress(b, at: off + 12, v6: false)
        dst = IPAddress(b, at: off + 16, v6: false)
        let frag = (UInt16(b[off + 6]) << 8 | UInt16(b[off + 7])) & 0x1FFF
        if frag != 0 { fragment = true; return }
        parseL4(b, at: off + ihl, depth: depth)
    }

    private mutating func parseIPv6(_ b: UnsafeRawBufferPointer, at off: Int, depth: Int) {
        guard b.count >= off + 40, b[off] >> 4 == 6 else { return }
        l3 = .ipv6
        ttl = Int16(b[off + 7])
        src = IPAddress(b, at: off + 8, v6: true)
        dst = IPAddress(b, at: off + 24, v6: true)
        var next = b[off + 6]
        var at = off + 40
        // extension headers: hop-by-hop, routing, fragment, destination options
        for _ in 0..<8 {
            switch next {
            case 0, 43, 60:
                guard b.count >= at + 2 else { l4 = next; fragment = true; return }
                let len = (Int(b[at + 1]) + 1) * 8
                next = b[at]
                at += len
            case 44:
                guard b.count >= at + 8 else { l4 = next; fragment = true; return }
                let fragOff = (UInt16(b[at + 2]) << 8 | UInt16(b[at + 3])) >> 3
                ipID = Int32(bitPattern: UInt32(b[at + 4]) << 24 | UInt32(b[at + 5]) << 16 | UInt32(b[at + 6]) << 8 | UInt32(b[at + 7]))
                next = b[at]
                at += 8
                if fragOff != 0 { l4 = next; fragment = true; return }
            default:
                l4 = next
                parseL4(b, at: at, depth: depth)
                return
            }
        }
        l4 = next
    }

    private mutating func parseL4(_ b: UnsafeRawBufferPointer, at off: Int, depth: Int) {
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        // IP options or extension headers longer than the bytes recorded: no transport header to read
        guard off <= b.count else { return }
        switch l4 {
        case 6: // TCP
            guard b.count >= off + 14 else { fragment = true; return }
            sport = u16(off); dport = u16(off + 2); hasPorts = true
            tcpSeq = u32(off + 4); tcpAck = u32(off + 8)
            tcpFlags = b[off + 13]
            if b.count >= off + 16 { tcpWindow = Int32(u16(off + 14)) }
        case 17, 136: // UDP, UDP-Lite
            guard b.count >= off + 8 else { fragment = true; return }
            sport = u16(off); dport = u16(off + 2); hasPorts = true
            if depth == 0 && (dport == 4789 || dport == 8472 || dport == 6081) && b.count >= off + 8 + 8 + 14 {
                // VXLAN (4789, Linux default 8472) or Geneve (6081): 8-byte header, then Ethernet.
                var hdr = 8
                if dport == 6081 { hdr += Int(b[off + 8] & 0x3F) * 4 }
                let eth = off + 8 + hdr
                guard b.count >= eth + 14 else { return }
                let etype = u16(eth + 12)
                let innerBytes = UnsafeRawBufferPointer(rebasing: b[(eth + 14)...])
                let inner = PacketHeaders.parse(innerBytes, ethertype: etype, depth: depth + 1)
                if inner.l3 != .none {
                    tunnel = dport == 6081 ? "geneve" : "vxlan"
                    self.inner = inner.tupleText
                }
            }
        case 1, 58: // ICMP, ICMPv6
            guard b.count >= off + 4 else { fragment = true; return }
            icmpType = Int16(b[off]); icmpCode = Int16(b[off + 1])
            let echo = l4 == 1 ? (icmpType == 8 || icmpType == 0) : (icmpType == 128 || icmpType == 129)
            if echo && b.count >= off + 8 {
                icmpID = Int32(u16(off + 4)); icmpSeq = Int32(u16(off + 6))
                sport = UInt16(icmpID); hasPorts = false
            }
        case 4, 41: // IPIP, IPv6-in-IP
            if depth == 0 {
                let innerBytes = UnsafeRawBufferPointer(rebasing: b[off...])
                let inner = PacketHeaders.parse(innerBytes, ethertype: l4 == 4 ? 0x0800 : 0x86DD, depth: depth + 1)
                if inner.l3 != .none { tunnel = l4 == 4 ? "ipip" : "ip6ip"; self.inner = inner.tupleText }
            }
        case 47: // GRE
            guard depth == 0, b.count >= off + 4 else { return }
            let flags = u16(off)
            let proto = u16(off + 2)
            var hdr = 4
            if flags & 0x8000 != 0 { hdr += 4 }
            if flags & 0x2000 != 0 { hdr += 4 }
            if flags & 0x1000 != 0 { hdr += 4 }
            guard b.count > off + hdr else { return }
            var innerBytes = UnsafeRawBufferPointer(rebasing: b[(off + hdr)...])
            var etype = proto
            if proto == 0x6558 { // transparent Ethernet bridging (gretap)
                guard innerBytes.count >= 14 else { return }
                etype = UInt16(innerBytes[12]) << 8 | UInt16(innerBytes[13])
                innerBytes = UnsafeRawBufferPointer(rebasing: innerBytes[14...])
            }
            let inner = PacketHeaders.parse(innerBytes, ethertype: etype, depth: depth + 1)
            if inner.l3 != .none { tunnel = "gre"; self.inner = inner.tupleText }
        default:
            break
        }
    }

    private mutating func parseARP(_ b: UnsafeRawBufferPointer, at off: Int) {
        guard b.count >= off + 8 else { return }
        l3 = .arp
        arpOp = UInt16(b[off + 6]) << 8 | UInt16(b[off + 7])
        let hlen = Int(b[off + 4]), plen = Int(b[off + 5])
        guard plen == 4, hlen == 6, b.count >= off + 8 + 2 * hlen + 2 * plen else { return }
        var mac: UInt64 = 0
        for i in 0..<6 { mac = mac << 8 | UInt64(b[off + 8 + i]) }
        arpSenderMAC = mac
        src = IPAddress(b, at: off + 8 + hlen, v6: false)
        dst = IPAddress(b, at: off + 8 + 2 * hlen + plen, v6: false)
    }

    /// "TCP", "UDP", "ICMP", "ICMPv6", "ARP", "IPv4", "IPv6" or the protocol number.
    public var protoName: String {
        switch l3 {
        case .none: return ""
        case .arp: return "ARP"
        case .ipv4, .ipv6:
            return PacketHeaders.protoName(l4, v6: l3 == .ipv6)
        }
    }

    public static func protoName(_ proto: UInt8, v6: Bool) -> String {
        switch proto {
        case 6: return "TCP"
        case 17: return "UDP"
        case 1: return "ICMP"
        case 58: return "ICMPv6"
        case 47: return "GRE"
        case 50: return "ESP"
        case 51: return "AH"
        case 132: return "SCTP"
        case 136: return "UDPLite"
        case 4: return "IPIP"
        case 41: return "IPv6"
        case 2: return "IGMP"
        default: return v6 ? "IPv6 proto \(proto)" : "IPv4 proto \(proto)"
        }
    }

    /// tcpdump's flag letters: F S R P . U E W (ACK shows as ".").
    public static func tcpFlagsText(_ f: UInt8) -> String {
        var s = ""
        if f & 0x01 != 0 { s += "F" }
        if f & 0x02 != 0 { s += "S" }
        if f & 0x04 != 0 { s += "R" }
        if f & 0x08 != 0 { s += "P" }
        if f & 0x10 != 0 { s += "." }
        if f & 0x20 != 0 { s += "U" }
        if f & 0x40 != 0 { s += "E" }
        if f & 0x80 != 0 { s += "W" }
        return s
    }

    static func icmpName(type: Int16, code: Int16, v6: Bool) -> String {
        if v6 {
            switch type {
            case 1: return "unreachable code \(code)"
            case 2: return "packet-too-big"
            case 3: return "time-exceeded"
            case 128: return "echo-request"
            case 129: return "echo-reply"
            case 133: return "router-solicitation"
            case 134: return "router-advertisement"
            case 135: return "neighbor-solicitation"
            case 136: return "neighbor-advertisement"
            case 143: return "mld2-report"
            default: return "type \(type) code \(code)"
            }
        }
        switch type {
        case 0: return "echo-reply"
        case 8: return "echo-request"
        case 3:
            let names = [0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable", 3: "port-unreachable",
                         4: "frag-needed", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"]
            return names[Int(code)] ?? "unreachable code \(code)"
        case 5: return "redirect"
        case 11: return "time-exceeded"
        case 12: return "parameter-problem"
        default: return "type \(type) code \(code)"
        }
    }

    static func macText(_ mac: UInt64) -> String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: mac >> UInt64(8 * (5 - i)))
            return byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined(separator: ":")
    }

    /// One line as the paths view shows it: `TCP 10.0.1.1:40000 > 10.0.2.2:80 [S]`.
    public var tupleText: String {
        switch l3 {
        case .none:
            return ""
        case .arp:
            switch arpOp {
            case 1: return "ARP who-has \(dst.text) tell \(src.text)"
            case 2: return "ARP reply \(src.text) is-at \(PacketHeaders.macText(arpSenderMAC))"
            default: return "ARP op \(arpOp) \(src.text) > \(dst.text)"
            }
        case .ipv4, .ipv6:
            let v6 = l3 == .ipv6
            let name = protoName
            var s: String
            if (l4 == 6 || l4 == 17 || l4 == 136) && !fragment {
                let a = v6 ? "[\(src.text)]" : src.text
                let b = v6 ? "[\(dst.text)]" : dst.text
                s = "\(name) \(a):\(sport) > \(b):\(dport)"
                if l4 == 6 { s += " [\(PacketHeaders.tcpFlagsText(tcpFlags))]" }
            } else {
                s = "\(name) \(src.text) > \(dst.text)"
                if (l4 == 1 || l4 == 58) && icmpType >= 0 {
                    s += " " + PacketHeaders.icmpName(type: icmpType, code: icmpCode, v6: v6)
                    if icmpID >= 0 { s += " id \(icmpID) seq \(icmpSeq)" }
                }
                if fragment { s += " fragment" }
            }
            if vlan != 0 { s += " vlan \(vlan - 1)" }
            if !tunnel.isEmpty { s += " (\(tunnel): \(inner))" }
            return s
        }
    }

    /// The address/port tuple compared to find NAT rewrites.
    var natKey: NatTuple { NatTuple(src: src, dst: dst, sport: sport, dport: dport) }
}

/// Source and destination as NAT sees them: addresses and ports (ICMP echo id as `sport`).
struct NatTuple: Equatable {
    var src: IPAddress
    var dst: IPAddress
    var sport: UInt16
    var dport: UInt16

    /// The other direction of the same flow: what a reply carries, never what NAT makes of a packet
    /// (NAT rewrites one side, or both to other addresses, but does not swap them).
    func isReverse(of o: NatTuple) -> Bool {
        src == o.dst && dst == o.src && sport == o.dport && dport == o.sport && src != dst
    }
}
