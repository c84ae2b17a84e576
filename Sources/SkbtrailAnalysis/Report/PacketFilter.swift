import Foundation
import GRDB

/// Which packets a report shows (paths, diag, latency). A packet matches an address or port filter when any of its
/// steps does (so a packet is followed through NAT, as nettrace does).
public struct PacketFilter: Sendable {
    public var saddr: String?
    public var daddr: String?
    public var addr: String?
    public var sport: Int?
    public var dport: Int?
    public var port: Int?
    /// tcp, udp, icmp, icmpv6, arp, ip, ipv4, ipv6, or an IP protocol number.
    public var proto: String?
    /// A namespace name or inode.
    public var netns: String?
    public var ifname: String?
    public var pid: Int?
    public var packet: Int?
    public var droppedOnly = false
    /// Seconds from the recording's start: packets first seen in [since, until].
    public var since: Double?
    public var until: Double?

    public init() {}

    /// SQL condition on `pkt p` and its arguments.
    func sql() throws -> (String, [DatabaseValueConvertible?]) {
        var conds: [String] = []
        var args: [DatabaseValueConvertible?] = []
        func onEvent(_ cond: String, _ values: [DatabaseValueConvertible?]) {
            conds.append("EXISTS (SELECT 1 FROM ev e WHERE e.packet_id = p.id AND (\(cond)))")
            args += values
        }
        if let saddr { onEvent("e.saddr = ?", [saddr]) }
        if let daddr { onEvent("e.daddr = ?", [daddr]) }
        if let addr { onEvent("e.saddr = ? OR e.daddr = ?", [addr, addr]) }
        if let sport { onEvent("e.sport = ?", [sport]) }
        if let dport { onEvent("e.dport = ?", [dport]) }
        if let port { onEvent("e.sport = ? OR e.dport = ?", [port, port]) }
        if let pid { onEvent("e.pid = ?", [pid]) }
        if let proto {
            let p = proto.lowercased()
            switch p {
            case "tcp", "udp", "icmp", "icmpv6", "gre", "esp", "ah", "sctp", "igmp":
                conds.append("lower(p.proto) = ?"); args.append(p)
            case "arp": conds.append("p.l3 = 'arp'")
            case "ip", "ipv4": conds.append("p.l3 = 'ipv4'")
            case "ipv6", "ip6": conds.append("p.l3 = 'ipv6'")
            default:
                guard let n = Int(p) else {
                    throw AnalysisError.message("--proto \(proto): not a protocol skbtrail knows. Use tcp, udp, icmp, icmpv6, arp, ipv4, ipv6 or an IP protocol number.")
                }
                onEvent("e.l4 = ?", [n])
            }
        }
        if let netns {
            if let inode = Int64(netns) {
                onEvent("e.netns = ?", [inode])
            } else {
                onEvent("e.netns IN (SELECT inode FROM bundle_netns WHERE name = ?)", [netns])
            }
        }
        if let ifname {
            onEvent("EXISTS (SELECT 1 FROM bundle_interface i WHERE i.netns = e.netns AND i.ifindex = e.ifindex AND i.name = ?)", [ifname])
        }
        if let packet { conds.append("p.id = ?"); args.append(packet) }
        if droppedOnly { conds.append("p.fate = 'dropped'") }
        if let since {
            conds.append("p.first_ts >= (SELECT started_ns FROM bundle_recording) + ?"); args.append(Int64(since * 1e9))
        }
        if let until {
            conds.append("p.first_ts <= (SELECT started_ns FROM bundle_recording) + ?"); args.append(Int64(until * 1e9))
        }
        return (conds.isEmpty ? "1" : conds.joined(separator: " AND "), args)
    }
}
