import Foundation
import GRDB
import SkbtrailBundle
#if canImport(Glibc)
import Glibc
#endif

/// Which packets a command selects: every analysis command takes the same filter (`skbtrail paths`,
/// `diag`, `drops`, `latency`, `tcp`, `info`, `pcap`, `slice`, `redact`), with the names of the
/// recorder's capture filters. A packet matches an address, port, namespace, interface or pid filter
/// when any of its steps does (so a packet is followed through NAT, as nettrace does).
public struct PacketFilter: Sendable {
    /// An address or a network (`10.0.0.1`, `10.199.1.0/24`, `fd00::/8`).
    public var saddr: String?
    public var daddr: String?
    public var addr: String?
    public var sport: Int?
    public var dport: Int?
    public var port: Int?
    /// A name of `ProtocolNames` (the recorder's), or an IP protocol number.
    public var proto: String?
    /// A namespace: its name, a path (/run/netns/NAME, or a namespace file of this machine such as
    /// /proc/PID/ns/net), or its inode.
    public var netns: String?
    public var ifname: String?
    public var pid: Int?
    /// Only these packets (and the clones of each).
    public var packets: [Int] = []
    public var droppedOnly = false
    /// Nanoseconds from the recording's start: packets first seen in [sinceNs, untilNs].
    public var sinceNs: Int64?
    public var untilNs: Int64?
    /// At most this many packets (a packet with its clones counts once); in `drops`, groups; in `tcp`,
    /// connections. Nil or 0: all.
    public var limit: Int?

    /// `limit` as a bound: nil when there is none.
    var bound: Int? { limit.flatMap { $0 > 0 ? $0 : nil } }

    public init() {}

    /// One packet id (the common case of `packets`).
    public var packet: Int? {
        get { packets.first }
        set { packets = newValue.map { [$0] } ?? [] }
    }

    /// Whether any filter is set (`limit` aside): with none, every packet is selected.
    public var isEmpty: Bool {
        saddr == nil && daddr == nil && addr == nil && sport == nil && dport == nil && port == nil && proto == nil
            && netns == nil && ifname == nil && pid == nil && packets.isEmpty && !droppedOnly && sinceNs == nil && untilNs == nil
    }

    /// The sentence for the first value that is not one, checked without a bundle (the command line's
    /// validation), or nil.
    public func invalidValue() -> String? {
        for (flag, value) in [("--saddr", saddr), ("--daddr", daddr), ("--addr", addr)] {
            if let value, IPNetwork(value) == nil {
                return "\(flag) \(value) is not an IPv4 or IPv6 address or network: give one such as 10.0.0.1, 10.199.1.0/24 or fd00::/8."
            }
        }
        for (flag, value) in [("--sport", sport), ("--dport", dport), ("--port", port)] {
            if let value, !(0...65535).contains(value) { return "\(flag) \(value) is not a port: give a number from 0 to 65535." }
        }
        if let proto, ProtocolNames.parse(proto) == nil { return ProtocolNames.refusal(proto) }
        if let ifname, ifname.isEmpty || ifname.utf8.count > 15 { return "--ifname \(ifname): interface names have 1 to 15 characters." }
        if let pid, pid < 0 { return "--pid \(pid) is not a process id: give a positive number." }
        if let bad = packets.first(where: { $0 < 1 }) { return "--packet \(bad) is not a packet id: ids start at 1 (skbtrail paths shows them)." }
        if let sinceNs, let untilNs, sinceNs > untilNs {
            return "--since \(TextLayout.seconds(sinceNs))s is after --until \(TextLayout.seconds(untilNs))s: the time window is empty."
        }
        if let limit, limit < 0 { return "--limit \(limit): give a number of packets (0: all)." }
        return nil
    }

    /// SQL condition on `pkt p` and its arguments; a name the bundle does not know (namespace,
    /// interface) is refused with the names it has.
    func sql(_ db: Database) throws -> (String, [DatabaseValueConvertible?]) {
        if let bad = invalidValue() { throw AnalysisError.message(bad) }
        var conds: [String] = []
        var args: [DatabaseValueConvertible?] = []
        func onEvent(_ cond: String, _ values: [DatabaseValueConvertible?]) {
            conds.append("EXISTS (SELECT 1 FROM ev e WHERE e.packet_id = p.id AND (\(cond)))")
            args += values
        }
        /// `e.saddr = ?` for an address, `in_net(e.saddr, ?)` for a network.
        func address(_ columns: [String], _ text: String) {
            guard let n = IPNetwork(text) else { return }
            if n.isHost {
                onEvent(columns.map { "e.\($0) = ?" }.joined(separator: " OR "), columns.map { _ in n.text })
            } else {
                onEvent(columns.map { "in_net(e.\($0), ?)" }.joined(separator: " OR "), columns.map { _ in n.description })
            }
        }
        if let saddr { address(["saddr"], saddr) }
        if let daddr { address(["daddr"], daddr) }
        if let addr { address(["saddr", "daddr"], addr) }
        if let sport { onEvent("e.sport = ?", [sport]) }
        if let dport { onEvent("e.dport = ?", [dport]) }
        if let port { onEvent("e.sport = ? OR e.dport = ?", [port, port]) }
        if let pid { onEvent("e.pid = ?", [pid]) }
        if let proto {
            switch ProtocolNames.parse(proto) {
            case .ethertype(0x0800)?: conds.append("p.l3 = 'ipv4'")
            case .ethertype(0x86DD)?: conds.append("p.l3 = 'ipv6'")
            case .ethertype(0x0806)?: conds.append("p.l3 = 'arp'")
            case .ethertype(let e)?: onEvent("e.protocol = ?", [Int(e)])
            case .ipProtocol(let n)?: onEvent("e.l4 = ?", [Int(n)])
            case nil: throw AnalysisError.message(ProtocolNames.refusal(proto))
            }
        }
        if let netns { onEvent("e.netns = ?", [try Self.netnsInode(db, netns)]) }
        if let ifname {
            let known = try String.fetchAll(db, sql: "SELECT DISTINCT name FROM bundle_interface WHERE name IS NOT NULL ORDER BY name")
            if !known.contains(ifname) {
                throw AnalysisError.message("--ifname \(ifname): no interface of that name in this bundle. It has \(Self.listing(known)).")
            }
            onEvent("EXISTS (SELECT 1 FROM bundle_interface i WHERE i.netns = e.netns AND i.ifindex = e.ifindex AND i.name = ?)", [ifname])
        }
        if !packets.isEmpty {
            conds.append("p.id IN (\(packets.map { _ in "?" }.joined(separator: ", ")))")
            args += packets.map { $0 }
        }
        if droppedOnly { conds.append("p.fate = 'dropped'") }
        if let sinceNs {
            conds.append("p.first_ts >= (SELECT started_ns FROM bundle_recording) + ?"); args.append(sinceNs)
        }
        if let untilNs {
            conds.append("p.first_ts <= (SELECT started_ns FROM bundle_recording) + ?"); args.append(untilNs)
        }
        return (conds.isEmpty ? "1" : conds.joined(separator: " AND "), args)
    }

    /// How many packets match `cond` (on `pkt p`, as `sql` gives it), and how many of each fate, most
    /// first. Without a filter both come from the packet lists of the decode (`pkt_value`), not a scan.
    static func fateCounts(_ db: Database, cond: String, arguments: [DatabaseValueConvertible?]) throws -> (Int, [(String, Int)]) {
        var fates: [(String, Int)] = []
        if cond == "1", try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM pkt_value_col WHERE col = 'fate')") == true {
            for row in try Row.fetchAll(db, sql: """
                SELECT value AS fate, sum(length(ids)) / 4 AS n FROM pkt_value WHERE col = 'fate' GROUP BY value ORDER BY n DESC, value
                """) {
                fates.append((row.text("fate"), Int(row.int("n"))))
            }
            let total = try Int.fetchOne(db, sql: "SELECT coalesce(sum(packets), 0) FROM pkt_segment") ?? 0
            return (total, fates)
        }
        var total = 0
        for row in try Row.fetchAll(db, sql: "SELECT p.fate, count(*) AS n FROM pkt p WHERE \(cond) GROUP BY p.fate ORDER BY n DESC, p.fate",
                                    arguments: StatementArguments(arguments)) {
            let n = Int(row.int("n"))
            fates.append((row.text("fate"), n))
            total += n
        }
        return (total, fates)
    }

    /// The inode `--netns` names: a name the bundle knows, /run/netns/NAME, an inode, or a namespace file
    /// of this machine (which is the recording's machine only when analyzing where it was recorded).
    static func netnsInode(_ db: Database, _ value: String) throws -> Int64 {
        if let inode = Int64(value), inode > 0 { return inode }
        var name = value
        for dir in ["/run/netns/", "/var/run/netns/"] where value.hasPrefix(dir) { name = String(value.dropFirst(dir.count)) }
        if let inode = try Int64.fetchOne(db, sql: "SELECT inode FROM bundle_netns WHERE name = ?", arguments: [name]) { return inode }
        if name == "root", let inode = try Int64.fetchOne(db, sql: "SELECT inode FROM bundle_netns WHERE is_root = 1 LIMIT 1") { return inode }
        if value.contains("/") {
            if let inode = namespaceFileInode(value) { return inode }
            throw AnalysisError.message("--netns \(value): no namespace file there on this machine, and the bundle has no namespace named \(name). Give a name or an inode the bundle knows: \(try knownNamespaces(db)).")
        }
        throw AnalysisError.message("--netns \(value): the bundle has no namespace of that name. It has \(try knownNamespaces(db)) (or give an inode).")
    }

    /// The inode of the network namespace file at `path` (/proc/PID/ns/net, a /run/netns bind mount),
    /// following links; nil for a file that is not a namespace's (its inode would select nothing).
    static func namespaceFileInode(_ path: String) -> Int64? {
        #if os(Linux)
        // namespace files are all on the one nsfs: the device of this process's own says whether it is one
        var st = stat(), own = stat()
        guard stat(path, &st) == 0, stat("/proc/self/ns/net", &own) == 0, st.st_dev == own.st_dev else { return nil }
        return st.st_ino > 0 ? Int64(truncatingIfNeeded: st.st_ino) : nil
        #else
        return nil
        #endif
    }

    static func knownNamespaces(_ db: Database) throws -> String {
        let rows = try Row.fetchAll(db, sql: "SELECT inode, name, is_root FROM bundle_netns ORDER BY name IS NULL, name, inode")
        return listing(rows.map { r in
            let inode: Int64 = r["inode"]
            let name = (r["name"] as String?) ?? ((r["is_root"] as Int64? ?? 0) != 0 ? "root" : nil)
            return name.map { "\($0) (\(inode))" } ?? String(inode)
        })
    }

    /// "a, b, c" (the first 12 and how many more), or "none".
    static func listing(_ names: [String]) -> String {
        if names.isEmpty { return "none" }
        let shown = names.prefix(12).joined(separator: ", ")
        return names.count > 12 ? "\(shown) and \(names.count - 12) more" : shown
    }
}
