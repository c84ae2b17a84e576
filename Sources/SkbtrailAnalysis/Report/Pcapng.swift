import Foundation

/// Writes a pcapng file (draft-ietf-opsawg-pcapng): a section header, an interface description block
/// per interface as it first appears, and an enhanced packet block per packet, in little-endian order.
/// Packets are written with a Linux cooked v2 header (LINKTYPE_LINUX_SLL2), which carries the protocol
/// (so IPv4, IPv6, ARP and VLAN-tagged bytes that start at the network header all dissect) and the
/// interface index, in front of the recorded bytes.
struct PcapngWriter {
    static let linkTypeSLL2: UInt16 = 276
    static let sll2HeaderSize = 20
    /// Packet directions of the cooked header (PACKET_HOST, PACKET_OUTGOING).
    enum Direction: UInt8 { case host = 0, outgoing = 4 }

    private(set) var bytes: [UInt8] = []
    private(set) var interfaces = 0
    private(set) var packets = 0

    init(application: String) {
        var options: [UInt8] = []
        PcapngWriter.option(4, Array(application.utf8), into: &options)  // shb_userappl
        var body: [UInt8] = []
        PcapngWriter.u32(0x1A2B_3C4D, into: &body)  // byte-order magic
        PcapngWriter.u16(1, into: &body)
        PcapngWriter.u16(0, into: &body)
        PcapngWriter.u64(UInt64.max, into: &body)  // section length: not given
        body += options
        block(0x0A0D_0D0A, body)
    }

    /// Adds an interface; its number is the order of adding, from 0.
    mutating func addInterface(name: String, description: String, snaplen: UInt32) -> UInt32 {
        var body: [UInt8] = []
        PcapngWriter.u16(PcapngWriter.linkTypeSLL2, into: &body)
        PcapngWriter.u16(0, into: &body)
        PcapngWriter.u32(snaplen, into: &body)
        PcapngWriter.option(2, Array(name.utf8), into: &body)         // if_name
        PcapngWriter.option(3, Array(description.utf8), into: &body)  // if_description
        PcapngWriter.option(9, [9], into: &body)                      // if_tsresol: nanoseconds
        PcapngWriter.u32(0, into: &body)                              // opt_endofopt
        block(1, body)
        interfaces += 1
        return UInt32(interfaces - 1)
    }

    /// Adds a packet: `data` from the network header, `originalLength` its length on the wire from there.
    mutating func addPacket(interface: UInt32, unixNs: Int64, ethertype: UInt16, ifindex: UInt32,
                            direction: Direction, data: [UInt8], originalLength: Int, comment: String) {
        var body: [UInt8] = []
        let ts = UInt64(max(0, unixNs))
        PcapngWriter.u32(interface, into: &body)
        PcapngWriter.u32(UInt32(truncatingIfNeeded: ts >> 32), into: &body)
        PcapngWriter.u32(UInt32(truncatingIfNeeded: ts), into: &body)
        let captured = PcapngWriter.sll2HeaderSize + data.count
        PcapngWriter.u32(UInt32(captured), into: &body)
        PcapngWriter.u32(UInt32(clamping: PcapngWriter.sll2HeaderSize + max(originalLength, data.count)), into: &body)
        // the cooked v2 header, in network order
        PcapngWriter.be16(ethertype, into: &body)
        PcapngWriter.be16(0, into: &body)
        PcapngWriter.be32(ifindex, into: &body)
        PcapngWriter.be16(1, into: &body)  // ARPHRD_ETHER
        body.append(direction.rawValue)
        body.append(0)  // no link-layer address: the bytes start at the network header
        body += [UInt8](repeating: 0, count: 8)
        body += data
        PcapngWriter.pad(&body)
        if !comment.isEmpty {
            PcapngWriter.option(1, Array(comment.utf8), into: &body)  // opt_comment
            PcapngWriter.u32(0, into: &body)
        }
        block(6, body)
        packets += 1
    }

    /// Takes what was written so far (to write it out and go on).
    mutating func take() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    private mutating func block(_ type: UInt32, _ body: [UInt8]) {
        let total = UInt32(12 + body.count)
        PcapngWriter.u32(type, into: &bytes)
        PcapngWriter.u32(total, into: &bytes)
        bytes += body
        PcapngWriter.u32(total, into: &bytes)
    }

    private static func option(_ code: UInt16, _ value: [UInt8], into out: inout [UInt8]) {
        let value = value.count > 65_000 ? Array(value.prefix(65_000)) : value
        u16(code, into: &out)
        u16(UInt16(value.count), into: &out)
        out += value
        pad(&out)
    }

    private static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }

    private static func u16(_ v: UInt16, into out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    private static func u32(_ v: UInt32, into out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    private static func u64(_ v: UInt64, into out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    private static func be16(_ v: UInt16, into out: inout [UInt8]) { withUnsafeBytes(of: v.bigEndian) { out += $0 } }
    private static func be32(_ v: UInt32, into out: inout [UInt8]) { withUnsafeBytes(of: v.bigEndian) { out += $0 } }
}
