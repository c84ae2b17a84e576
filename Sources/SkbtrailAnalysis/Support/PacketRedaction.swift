import Foundation

/// The packet bytes of a record, redacted: addresses mapped wherever a header holds one (IPv4, IPv6,
/// ARP, the inner packets of tunnels and of ICMP errors), MACs of inner Ethernet headers mapped, the
/// bytes after the innermost transport header replaced by keyed noise. Checksums are updated for the change (RFC 1624),
/// so a checksum that was right stays right and one that was wrong stays wrong.
extension Redactor {
    /// The ethertype of bytes recorded with skb->protocol `proto` (host order): where it is 0 (a local skb
    /// before the stack set it), IPv4 or IPv6 when the analyzer's parser takes them for one.
    static func ethertype(_ bytes: [UInt8], protocol proto: UInt16) -> UInt16 {
        guard proto == 0 else { return proto }
        let h = bytes.withUnsafeBytes { PacketHeaders.parse($0, ethertype: 0) }
        return h.l3 == .ipv4 ? 0x0800 : h.l3 == .ipv6 ? 0x86DD : 0
    }

    public func redactPacket(_ d: inout [UInt8], ethertype: UInt16) {
        network(&d, at: 0, ethertype: ethertype, depth: 0)
    }

    private func network(_ d: inout [UInt8], at off: Int, ethertype: UInt16, depth: Int) {
        var type = ethertype, off = off
        while (type == 0x8100 || type == 0x88A8) && d.count >= off + 4 {
            type = UInt16(d[off + 2]) << 8 | UInt16(d[off + 3])
            off += 4
        }
        guard depth < 4 else { zero(&d, from: off, checksumAt: nil, base: off); return }
        switch type {
        case 0x0800 where d.count > off && d[off] >> 4 == 4: ipv4(&d, at: off, depth: depth)
        case 0x86DD where d.count > off && d[off] >> 4 == 6: ipv6(&d, at: off, depth: depth)
        case 0x0806: arp(&d, at: off)
        default: scramble(&d, from: off)
        }
    }

    private func ipv4(_ d: inout [UInt8], at off: Int, depth: Int) {
        guard d.count >= off + 20, d[off] >> 4 == 4 else { zero(&d, from: off, checksumAt: nil, base: off); return }
        let ihl = max(20, Int(d[off] & 0x0F) * 4)
        let before = Array(d[min(d.count, off + 12)..<min(d.count, off + 20)])
        mapAddress(&d, at: off + 12, v6: false)
        mapAddress(&d, at: off + 16, v6: false)
        let after = Array(d[(off + 12)..<(off + 20)])
        adjust(&d, checksumAt: off + 10, old: before, new: after)
        let fragmentOffset = (Int(d[off + 6]) & 0x1F) << 8 | Int(d[off + 7])
        guard fragmentOffset == 0 else { zero(&d, from: off + ihl, checksumAt: nil, base: off + ihl); return }
        transport(&d, at: off + ihl, proto: d[off + 9], pseudo: (before, after), depth: depth)
    }

    private func ipv6(_ d: inout [UInt8], at off: Int, depth: Int) {
        guard d.count >= off + 40, d[off] >> 4 == 6 else { zero(&d, from: off, checksumAt: nil, base: off); return }
        let before = Array(d[(off + 8)..<(off + 40)])
        mapAddress(&d, at: off + 8, v6: true)
        mapAddress(&d, at: off + 24, v6: true)
        let after = Array(d[(off + 8)..<(off + 40)])
        var next = d[off + 6]
        var at = off + 40
        // extension headers: hop-by-hop, routing, destination options, fragment, AH
        while [0, 43, 60, 44, 51].contains(next) {
            guard d.count >= at + 8 else { return }
            if next == 44 {
                let fragmentOffset = (Int(d[at + 2]) << 8 | Int(d[at + 3])) >> 3
                if fragmentOffset != 0 { zero(&d, from: at + 8, checksumAt: nil, base: at + 8); return }
                next = d[at]; at += 8; continue
            }
            let len = next == 51 ? (Int(d[at + 1]) + 2) * 4 : (Int(d[at + 1]) + 1) * 8
            if next == 43 { zero(&d, from: at + 8, upTo: at + len) }  // a routing header's addresses
            next = d[at]; at += len
        }
        transport(&d, at: at, proto: next, pseudo: (before, after), depth: depth)
    }

    private func arp(_ d: inout [UInt8], at off: Int) {
        guard d.count >= off + 8 else { return }
        let hlen = Int(d[off + 4]), plen = Int(d[off + 5])
        let sha = off + 8, spa = sha + hlen, tha = spa + plen, tpa = tha + hlen
        if hlen == 6 { mapMAC(&d, at: sha); mapMAC(&d, at: tha) } else { zero(&d, from: sha, upTo: spa); zero(&d, from: tha, upTo: tpa) }
        if plen == 4 || plen == 16 { mapAddress(&d, at: spa, v6: plen == 16); mapAddress(&d, at: tpa, v6: plen == 16) }
        zero(&d, from: tpa + plen, checksumAt: nil, base: off)
    }

    /// The transport header at `off`: its checksum follows the pseudo-header's change; tunnels and ICMP
    /// errors go on into their inner packet; what follows the header is replaced by keyed noise.
    private func transport(_ d: inout [UInt8], at off: Int, proto: UInt8, pseudo: ([UInt8], [UInt8]), depth: Int) {
        switch proto {
        case 6:  // TCP
            guard d.count >= off + 13 else { return }
            let header = max(20, Int(d[off + 12] >> 4) * 4)
            adjust(&d, checksumAt: off + 16, old: pseudo.0, new: pseudo.1)
            zero(&d, from: off + header, checksumAt: off + 16, base: off)
        case 17, 136:  // UDP, UDP-Lite
            guard d.count >= off + 8 else { return }
            let udpChecksum = d[off + 6] != 0 || d[off + 7] != 0
            if udpChecksum { adjust(&d, checksumAt: off + 6, old: pseudo.0, new: pseudo.1, udp: true) }
            let dport = Int(d[off + 2]) << 8 | Int(d[off + 3])
            if (dport == 4789 || dport == 8472) && d.count >= off + 8 + 8 + 14 {
                // VXLAN: its header, then an Ethernet frame (the inner packet's checksums are its own)
                let eth = off + 16
                mapMAC(&d, at: eth); mapMAC(&d, at: eth + 6)
                let inner = UInt16(d[eth + 12]) << 8 | UInt16(d[eth + 13])
                network(&d, at: eth + 14, ethertype: inner, depth: depth + 1)
                return
            }
            if dport == 6081 && d.count >= off + 16 {
                // Geneve: options, then a packet of the protocol it names
                let optionBytes = Int(d[off + 8] & 0x3F) * 4
                let inner = UInt16(d[off + 10]) << 8 | UInt16(d[off + 11])
                zero(&d, from: off + 16, upTo: off + 16 + optionBytes)
                if inner == 0x6558 && d.count >= off + 16 + optionBytes + 14 {
                    let eth = off + 16 + optionBytes
                    mapMAC(&d, at: eth); mapMAC(&d, at: eth + 6)
                    network(&d, at: eth + 14, ethertype: UInt16(d[eth + 12]) << 8 | UInt16(d[eth + 13]), depth: depth + 1)
                } else {
                    network(&d, at: off + 16 + optionBytes, ethertype: inner, depth: depth + 1)
                }
                return
            }
            zero(&d, from: off + 8, checksumAt: udpChecksum ? off + 6 : nil, base: off, udp: true)
        case 1:  // ICMP: errors carry the packet they are about
            guard d.count >= off + 8 else { return }
            let type = d[off]
            if type == 5 {  // redirect: the gateway
                let before = Array(d[(off + 4)..<(off + 8)])
                mapAddress(&d, at: off + 4, v6: false)
                adjust(&d, checksumAt: off + 2, old: before, new: Array(d[(off + 4)..<(off + 8)]))
            }
            if [3, 4, 5, 11, 12].contains(type) {
                innerPacket(&d, at: off + 8, checksumAt: off + 2, base: off) { self.network(&$0, at: off + 8, ethertype: 0x0800, depth: depth + 1) }
            } else {
                zero(&d, from: off + 8, checksumAt: off + 2, base: off)
            }
        case 58:  // ICMPv6: the pseudo-header counts, and errors carry the packet
            guard d.count >= off + 8 else { return }
            adjust(&d, checksumAt: off + 2, old: pseudo.0, new: pseudo.1)
            if (1...4).contains(d[off]) {
                innerPacket(&d, at: off + 8, checksumAt: off + 2, base: off) { self.network(&$0, at: off + 8, ethertype: 0x86DD, depth: depth + 1) }
            } else {
                zero(&d, from: off + 8, checksumAt: off + 2, base: off)
            }
        case 4: network(&d, at: off, ethertype: 0x0800, depth: depth + 1)   // IP in IP
        case 41: network(&d, at: off, ethertype: 0x86DD, depth: depth + 1)  // IPv6 in IP
        case 47:  // GRE
            guard d.count >= off + 4 else { return }
            let flags = d[off]
            let header = 4 + (flags & 0x80 != 0 ? 4 : 0) + (flags & 0x20 != 0 ? 4 : 0) + (flags & 0x10 != 0 ? 4 : 0)
            let inner = UInt16(d[off + 2]) << 8 | UInt16(d[off + 3])
            if inner == 0x6558 && d.count >= off + header + 14 {
                mapMAC(&d, at: off + header); mapMAC(&d, at: off + header + 6)
                network(&d, at: off + header + 14, ethertype: UInt16(d[off + header + 12]) << 8 | UInt16(d[off + header + 13]), depth: depth + 1)
            } else {
                network(&d, at: off + header, ethertype: inner, depth: depth + 1)
            }
        default:
            // ESP, SCTP, ...: the first 8 bytes (SPI and sequence, or ports) stay
            zero(&d, from: off + 8, checksumAt: nil, base: off)
        }
    }

    /// Rewrites an ICMP error's inner packet with `body` and updates the outer checksum, which covers it.
    private func innerPacket(_ d: inout [UInt8], at start: Int, checksumAt: Int, base: Int, _ body: (inout [UInt8]) -> Void) {
        guard start < d.count else { return }
        let before = Array(d[start...])
        body(&d)
        let after = Array(d[start...])
        // keep the words aligned to the ICMP header
        adjust(&d, checksumAt: checksumAt, old: before, new: after, aligned: (start - base) % 2 == 0)
    }

    /// Replaces `d[from...]` of a protocol that is not parsed (a local skb: netlink, vsock) with keyed
    /// noise drawn from its content, with a version nibble of 0 (never taken for an IP header).
    private func scramble(_ d: inout [UInt8], from: Int) {
        guard from < d.count else { return }
        fillWithNoise(&d, from: from)
        d[from] &= 0x0F
    }

    /// Keyed noise in place of `d[from...]`, drawn from those bytes: equal payloads stay equal and
    /// different ones different (the clone inference compares a packet's bytes; zeros would make two
    /// MLD reports, or two datagrams with the same headers, look like one packet's clones), and nothing
    /// of the content is left.
    private func fillWithNoise(_ d: inout [UInt8], from: Int) {
        var h = stream(Array(d[from...]))
        for i in from..<d.count {
            if (i - from) % 8 == 0 && i > from { h = h &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
            d[i] = UInt8(truncatingIfNeeded: h >> (8 * UInt64((i - from) % 8)))
        }
    }

    /// Replaces the payload `d[from...]` (see `fillWithNoise`), updating the checksum at `checksumAt`
    /// (whose words start at `base`).
    private func zero(_ d: inout [UInt8], from: Int, checksumAt: Int?, base: Int, udp: Bool = false) {
        guard from < d.count else { return }
        let before = Array(d[from...])
        fillWithNoise(&d, from: from)
        if let checksumAt {
            adjust(&d, checksumAt: checksumAt, old: before, new: Array(d[from...]), udp: udp, aligned: (from - base) % 2 == 0)
        }
    }

    private func zero(_ d: inout [UInt8], from: Int, upTo: Int) {
        var i = max(0, from)
        while i < min(upTo, d.count) { d[i] = 0; i += 1 }
    }

    /// RFC 1624's incremental update of the one's complement checksum at `at` for `old` becoming `new`.
    private func adjust(_ d: inout [UInt8], checksumAt at: Int, old: [UInt8], new: [UInt8], udp: Bool = false, aligned: Bool = true) {
        guard at + 2 <= d.count, old != new else { return }
        func sum(_ b: [UInt8]) -> UInt32 {
            var s: UInt32 = 0
            var i = 0
            if !aligned && !b.isEmpty { s += UInt32(b[0]); i = 1 }
            while i + 1 < b.count { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
            if i < b.count { s += UInt32(b[i]) << 8 }
            return s
        }
        let checksum = UInt32(d[at]) << 8 | UInt32(d[at + 1])
        // HC' = ~(~HC + ~m + m'), with ~m summed as the complement of m's sum
        var s = (~checksum & 0xFFFF) + fold(~fold(sum(old)) & 0xFFFF) + fold(sum(new))
        s = fold(s)
        var result = UInt16(~s & 0xFFFF)
        if udp && result == 0 { result = 0xFFFF }
        d[at] = UInt8(result >> 8)
        d[at + 1] = UInt8(result & 0xFF)
    }

    private func fold(_ x: UInt32) -> UInt32 {
        var x = x
        while x >> 16 != 0 { x = (x & 0xFFFF) + (x >> 16) }
        return x
    }
}
