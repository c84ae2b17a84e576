#if os(Linux)
import Foundation
import Glibc
import SkbtrailBundle
import SkbtrailEvents

/// Capture filters as the user gave them, turned into the kernel-side `st_config`.
struct CaptureFilters: Codable {
    var saddr: String?
    var daddr: String?
    var addr: String?
    var sport: UInt16?
    var dport: UInt16?
    var port: UInt16?
    var proto: String?
    var netns: String?
    var netnsInode: UInt32?
    var ifname: String?
    var pid: Int32?

    /// Parses an IPv4 or IPv6 address into 16 bytes (IPv4 in the first four) and its family.
    static func parseAddress(_ text: String, flag: String) throws -> (family: UInt8, bytes: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &bytes) == 1 { return (UInt8(AF_INET), bytes) }
        if inet_pton(AF_INET6, text, &bytes) == 1 { return (UInt8(AF_INET6), bytes) }
        throw RecorderError("\(flag) \(text): not an IPv4 or IPv6 address (for example 10.0.0.1 or fd00::1)")
    }

    /// Resolves --netns NAME|INODE|PATH to a namespace inode.
    static func resolveNetns(_ value: String) throws -> UInt32 {
        if let inode = UInt32(value) { return inode }
        let path = value.contains("/") ? value : "/run/netns/\(value)"
        guard let inode = Kernel.inode(of: path) else {
            throw RecorderError("--netns \(value): no network namespace at \(path). Give a name from `ip netns list`, a namespace file such as /proc/PID/ns/net, or an inode number.")
        }
        return inode
    }

    /// The kernel-side configuration for these filters.
    func config(snaplen: Int, wakeupBytes: UInt32) throws -> st_config {
        var c = st_config()
        c.snaplen = UInt32(snaplen)
        c.wakeup_bytes = wakeupBytes
        var bits: UInt32 = 0
        var family: UInt8 = 0
        func setAddress(_ text: String?, _ flag: String, _ bit: st_filter, _ store: (inout st_config, [UInt8]) -> Void) throws {
            guard let text else { return }
            let parsed = try Self.parseAddress(text, flag: flag)
            if family != 0 && family != parsed.family {
                throw RecorderError("\(flag) \(text): all address filters must be of one family (IPv4 or IPv6)")
            }
            family = parsed.family
            store(&c, parsed.bytes)
            bits |= bit.rawValue
        }
        try setAddress(saddr, "--saddr", ST_FLT_SADDR) { c, b in withUnsafeMutableBytes(of: &c.saddr) { $0.copyBytes(from: b) } }
        try setAddress(daddr, "--daddr", ST_FLT_DADDR) { c, b in withUnsafeMutableBytes(of: &c.daddr) { $0.copyBytes(from: b) } }
        try setAddress(addr, "--addr", ST_FLT_ADDR) { c, b in withUnsafeMutableBytes(of: &c.addr) { $0.copyBytes(from: b) } }
        c.family = family
        if let sport { c.sport = sport; bits |= ST_FLT_SPORT.rawValue }
        if let dport { c.dport = dport; bits |= ST_FLT_DPORT.rawValue }
        if let port { c.port = port; bits |= ST_FLT_PORT.rawValue }
        if let proto {
            switch ProtocolNames.parse(proto) {
            case .ethertype(let l3)?:
                c.l3proto = l3.bigEndian
                bits |= ST_FLT_L3PROTO.rawValue
            case .ipProtocol(let l4)?:
                c.l4proto = l4
                bits |= ST_FLT_L4PROTO.rawValue
            case nil:
                throw RecorderError(ProtocolNames.refusal(proto))
            }
        }
        if let netnsInode { c.netns = netnsInode; bits |= ST_FLT_NETNS.rawValue }
        if let ifname {
            let bytes = Array(ifname.utf8)
            guard !bytes.isEmpty, bytes.count < 16 else {
                throw RecorderError("--ifname \(ifname): interface names have 1 to 15 characters")
            }
            withUnsafeMutableBytes(of: &c.ifname) { $0.copyBytes(from: bytes) }
            bits |= ST_FLT_IFNAME.rawValue
        }
        if let pid { c.pid = UInt32(bitPattern: pid); bits |= ST_FLT_PID.rawValue }
        c.filters = bits
        return c
    }
}
#endif
