import Foundation
import GRDB
import SkbtrailBundle

/// How `skbtrail pcap` writes.
public struct PcapOptions: Sendable {
    /// Each packet once, at its first step with bytes, instead of once per step.
    public var firstOnly = false
    /// Addresses and payload rewritten as `skbtrail redact` does.
    public var redactor: Redactor?
    public init(firstOnly: Bool = false, redactor: Redactor? = nil) {
        self.firstOnly = firstOnly
        self.redactor = redactor
    }
}

/// What `skbtrail pcap` wrote.
public struct PcapSummary: Sendable {
    public var blocks = 0
    public var packets = 0
    public var interfaces = 0
}

extension AnalysisDatabase {
    /// The packets `filter` selects and their clones (a clone carries its parent's bytes); nil when it
    /// selects every packet.
    func selectedPackets(_ db: Database, _ filter: PacketFilter) throws -> Set<Int64>? {
        let (cond, args) = try filter.sql(db)
        if cond == "1" && filter.bound == nil { return nil }
        let clones = try CloneTree(db)
        var selected = Set<Int64>()
        let cursor = try Int64.fetchCursor(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id", arguments: StatementArguments(args))
        var roots = 0
        while let id = try cursor.next() {
            try Sandbox.checkInterrupt("the selection")
            if selected.contains(id) { continue }  // a clone of a packet taken before
            if let limit = filter.bound, roots >= limit { break }
            roots += 1
            selected.formUnion(clones.tree(id))
        }
        return selected
    }

    /// `skbtrail pcap`: the selected packets' recorded bytes as pcapng, one enhanced packet block per
    /// step that carries bytes (or per packet with `firstOnly`), in time order, each with a comment that
    /// names the packet, the probe and what happened there. `write` receives the file in pieces.
    public func pcapReport(filter: PacketFilter, options: PcapOptions, write: ([UInt8]) throws -> Void) throws -> PcapSummary {
        try reader.read { db in
            let selected = try selectedPackets(db, filter)
            let names = try PcapNames(db, redactor: options.redactor)
            let natPackets = Set(try Int64.fetchAll(db, sql: "SELECT id FROM pkt WHERE nat_count > 0"))
            let snaplen = UInt32(PcapngWriter.sll2HeaderSize + max(1, bundle.recording.snaplen))
            var pcap = PcapngWriter(application: "skbtrail \(SkbtrailAnalysisVersion.version)")
            var interfaces: [Int64: UInt32] = [:]  // netns << 32 | ifindex
            var summary = PcapSummary()
            var written = Set<Int64>()  // packets written, with firstOnly
            var packets = Set<Int64>()
            let bootToUnix = bundle.recording.bootToUnixNs
            let sql = """
                SELECT e.id, e.ts, e.netns, e.ifindex, e.probe, e.probe_name, e.protocol, e.data, e.packet_id, e.step,
                       e.detail, e.reason, e.location, e.nf_family, e.nf_hook, e.len
                FROM ev e WHERE e.data IS NOT NULL AND e.packet_id IS NOT NULL
                """
            let rows = try Row.fetchCursor(db, sql: sql)
            var n = 0
            while let row = try rows.next() {
                n += 1
                if n % 4096 == 0 { try Sandbox.checkInterrupt("pcap") }
                guard let packet = row.optInt(8), selected?.contains(packet) ?? true else { continue }
                if options.firstOnly {
                    if written.contains(packet) { continue }
                    written.insert(packet)
                }
                guard var data = row.optBlob(7), !data.isEmpty else { continue }
                let netns = row.optInt(2) ?? 0, ifindex = row.optInt(3) ?? 0
                let key = netns << 32 | (ifindex & 0xFFFF_FFFF)
                let interface: UInt32
                if let i = interfaces[key] {
                    interface = i
                } else {
                    let (name, description) = names.interface(netns: netns, ifindex: ifindex)
                    interface = pcap.addInterface(name: name, description: description, snaplen: snaplen)
                    interfaces[key] = interface
                }
                let ethertype = Redactor.ethertype(data, protocol: UInt16(truncatingIfNeeded: row.optInt(6) ?? 0))
                let wire = PcapReport.wireLength(data, ethertype: ethertype, skbLen: Int(row.optInt(15) ?? 0))
                options.redactor?.redactPacket(&data, ethertype: ethertype)
                let probe = Int(row.optInt(4) ?? 0)
                let role = ProbeTable.role(probe)
                let hook = row.optInt(14)
                let outgoing = role.isDeviceOutput || (role == .netfilter || role == .nfVerdict) && (hook == 3 || hook == 4)
                var comment = "skbtrail packet \(packet) step \(row.optInt(9) ?? 0) \(row.optText(5) ?? "?")"
                if role == .free || role == .consume {
                    // the kernel's name for the reason; where it has none (before 5.17), the packet's fate's
                    var reason: String?
                    if role == .free {
                        reason = try row.optInt(11).flatMap(names.knownReason)
                            ?? (try String.fetchOne(db, sql: "SELECT drop_reason_name FROM pkt WHERE id = ? AND last_event = ?",
                                                    arguments: [packet, row.optInt(0)]))
                            ?? row.optInt(11).map { "reason \($0)" }
                    }
                    comment += reason.map { ": drop \($0)" } ?? ": consumed"
                    if let at = row.optInt(12) { comment += " at \(try names.symbol(db, at))" }
                    if let hook, let family = row.optInt(13) {
                        let where_ = "\(KernelNames.family(Int(family))) \(KernelNames.hook(Int(hook)))"
                        comment += reason == "NETFILTER_DROP" ? " in netfilter \(where_)" : " (last netfilter hook: \(where_))"
                    }
                }
                if natPackets.contains(packet), let id = row.optInt(0),
                   let nat = try String.fetchOne(db, sql: "SELECT group_concat(text, '; ') FROM nat WHERE event_id = ?", arguments: [id]) {
                    comment += "; NAT \(options.redactor?.redactText(nat) ?? nat)"
                }
                if role != .free && role != .consume, let detail = row.optText(10), !detail.isEmpty {
                    comment += "; " + (options.redactor?.redactText(detail) ?? detail)
                }
                pcap.addPacket(interface: interface, unixNs: (row.optInt(1) ?? 0) &+ bootToUnix, ethertype: ethertype,
                               ifindex: UInt32(truncatingIfNeeded: ifindex), direction: outgoing ? .outgoing : .host,
                               data: data, originalLength: wire, comment: comment)
                packets.insert(packet)
                summary.blocks += 1
                if pcap.bytes.count >= 1 << 20 { try write(pcap.take()) }
            }
            try write(pcap.take())
            summary.packets = packets.count
            summary.interfaces = pcap.interfaces
            return summary
        }
    }
}

enum PcapReport {
    /// The packet's length from its network header on, as its IP header gives it (the bytes were cut at
    /// the snap length); else the skb's length.
    static func wireLength(_ d: [UInt8], ethertype: UInt16, skbLen: Int) -> Int {
        switch ethertype {
        case 0x0800 where d.count >= 4 && d[0] >> 4 == 4:
            return max(d.count, Int(d[2]) << 8 | Int(d[3]))
        case 0x86DD where d.count >= 6 && d[0] >> 4 == 6:
            let payload = Int(d[4]) << 8 | Int(d[5])
            return payload == 0 ? max(d.count, skbLen) : max(d.count, 40 + payload)
        default:
            return max(d.count, skbLen)
        }
    }
}

/// Interface, drop reason and symbol names for the comments of `skbtrail pcap`.
struct PcapNames {
    private var netns: [Int64: (name: String?, root: Bool)] = [:]
    private var ifnames: [Int64: String] = [:]
    private var reasons: [Int64: String] = [:]
    private final class Symbols { var byAddress: [Int64: String] = [:] }
    private let symbols = Symbols()

    init(_ db: Database, redactor: Redactor?) throws {
        for row in try Row.fetchAll(db, sql: "SELECT inode, name, is_root FROM bundle_netns") {
            if let inode = row.optInt(0) { netns[inode] = (row.optText(1), row.optInt(2) == 1) }
        }
        for row in try Row.fetchAll(db, sql: "SELECT netns, ifindex, name FROM bundle_interface") {
            if let ns = row.optInt(0), let i = row.optInt(1), let name = row.optText(2) { ifnames[ns << 32 | (i & 0xFFFF_FFFF)] = name }
        }
        for row in try Row.fetchAll(db, sql: "SELECT value, name FROM bundle_drop_reason") {
            if let v = row.optInt(0), let name = row.optText(1) { reasons[v] = name }
        }
    }

    /// "netns/ifname" and a longer description.
    func interface(netns ns: Int64, ifindex: Int64) -> (String, String) {
        let n = netns[ns]
        let nsName = n?.name ?? (n?.root == true ? "root" : "netns-\(ns)")
        let ifname = ifindex == 0 ? "-" : ifnames[ns << 32 | (ifindex & 0xFFFF_FFFF)] ?? "if\(ifindex)"
        return ("\(nsName)/\(ifname)", "network namespace \(nsName) (inode \(ns)), interface \(ifname) (ifindex \(ifindex))")
    }

    func knownReason(_ value: Int64) -> String? { reasons[value] }

    func symbol(_ db: Database, _ address: Int64) throws -> String {
        if let s = symbols.byAddress[address] { return s }
        var s = String(format: "0x%llx", UInt64(bitPattern: address))
        if let row = try Row.fetchOne(db, sql: "SELECT name, offset FROM bundle_symbol WHERE address = ?", arguments: [address]),
           let name = row.optText(0) {
            s = name + String(format: "+0x%llx", row.optInt(1) ?? 0)
        }
        symbols.byAddress[address] = s
        return s
    }
}
