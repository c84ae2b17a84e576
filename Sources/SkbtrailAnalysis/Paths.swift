import Foundation
import GRDB

/// Which packets `skbtrail paths` shows. A packet matches an address or port filter when any of its
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

/// How `skbtrail paths` prints.
public struct PathsOptions: Sendable {
    public var json = false
    /// Wall-clock times instead of times relative to the packet's first step.
    public var date = false
    /// CPU, pid, comm and skb address on each step.
    public var detail = false
    public init(json: Bool = false, date: Bool = false, detail: Bool = false) {
        self.json = json
        self.date = date
        self.detail = detail
    }
}

extension Analysis {
    struct PacketRow {
        var row: Row
        var id: Int64 { row["id"] }
    }

    /// `skbtrail paths`: one block per packet, its steps, its clones as a tree, NAT where it happened.
    public func pathsReport(filter: PacketFilter, options: PathsOptions) throws -> String {
        let (cond, args) = try filter.sql()
        return try db.read { db in
            let selected = try Row.fetchAll(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id",
                                            arguments: StatementArguments(args))
                .map { $0["id"] as Int64 }
            let selectedSet = Set(selected)
            var children: [Int64: [Int64]] = [:]
            var parentOf: [Int64: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT parent_id, child_id FROM clone_edge ORDER BY child_id") {
                children[row["parent_id"], default: []].append(row["child_id"])
                parentOf[row["child_id"]] = row["parent_id"]
            }
            // a clone whose parent is shown appears in the parent's tree, not on its own
            let roots = selected.filter { id in parentOf[id].map { !selectedSet.contains($0) } ?? true }
            var out = ""
            for id in roots {
                if options.json {
                    out += try packetJSON(db, id: id, children: children).text + "\n"
                } else {
                    try renderPacket(db, id: id, children: children, parentOf: parentOf, indent: "", options: options, into: &out)
                    out += "\n"
                }
            }
            if !options.json && roots.isEmpty { out = "no packets match\n" }
            return out
        }
    }

    private func packet(_ db: Database, _ id: Int64) throws -> Row? {
        try Row.fetchOne(db, sql: "SELECT * FROM packet WHERE id = ?", arguments: [id])
    }

    private func steps(_ db: Database, _ id: Int64) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM path_step WHERE packet_id = ? ORDER BY step", arguments: [id])
    }

    static func fateText(_ p: Row) -> String {
        let fate: String = p["fate"]
        switch fate {
        case "dropped":
            var s = "dropped: \(p["drop_reason"] ?? "?") at \(p["drop_symbol"] ?? "?")"
            if let hook: String = p["nf_hook"] {
                s += " (netfilter \(p["nf_family"] ?? "") \(hook), \(KernelNames.tablePhrase(p["nf_table"] ?? "")))"
            }
            return s
        case "incomplete":
            return "incomplete: \(p["incomplete"] ?? "")"
        default:
            return fate
        }
    }

    private func renderPacket(_ db: Database, id: Int64, children: [Int64: [Int64]], parentOf: [Int64: Int64],
                              indent: String, options: PathsOptions, into out: inout String) throws {
        guard let p = try packet(db, id) else { return }
        var header = "\(indent)packet \(id)  \(p["tuple"] ?? "")  \(Analysis.fateText(p))"
        if let parent = parentOf[id] {
            header += indent.isEmpty ? "  (clone of packet \(parent), inferred)" : "  (clone, inferred)"
        }
        if p["fate"] as String != "incomplete", let why: String = p["incomplete"] { header += "  [\(why)]" }
        out += header + "\n"
        var rows: [[String]] = []
        let boot = bundle.recording.bootToUnixNs
        for s in try steps(db, id) {
            let time: String
            if options.date {
                time = TextLayout.wallClock(unixNs: (s["ts"] as Int64) + boot)
            } else {
                time = "+" + TextLayout.seconds(s["rel_ns"])
            }
            let netns: String = s["netns_name"] ?? ((s["netns"] as Int64) == 0 ? "-" : String(s["netns"] as Int64))
            let ifname: String = s["ifname"] ?? ((s["ifindex"] as Int64) == 0 ? "-" : "if\(s["ifindex"] as Int64)")
            var row = [time, s["probe_name"], ifname, netns]
            if options.detail {
                row += ["cpu \(s["cpu"] as Int64)", "pid \(s["pid"] as Int64)", s["comm"], s["skb"]]
            }
            var text: String = s["detail"]
            if let nat: String = s["nat"] { text = text.isEmpty ? nat : "\(nat)  \(text)" }
            row.append(text)
            rows.append(row)
        }
        out += Analysis.align(rows, indent: indent + "  ")
        for child in children[id] ?? [] {
            try renderPacket(db, id: child, children: children, parentOf: parentOf, indent: indent + "  └─ ",
                             options: options, into: &out)
        }
    }

    /// Rows aligned in columns, trailing spaces trimmed.
    static func align(_ rows: [[String]], indent: String) -> String {
        guard let n = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: n)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        let pad = String(repeating: " ", count: indent.count)
        var out = ""
        for r in rows {
            var line = pad
            for (i, c) in r.enumerated() {
                line += c
                if i < r.count - 1 { line += String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    private func packetJSON(_ db: Database, id: Int64, children: [Int64: [Int64]]) throws -> JSON {
        guard let p = try packet(db, id) else { return .null }
        let steps = try steps(db, id).map { s -> JSON in
            .object([
                ("step", .int(s["step"])), ("event_id", .int(s["event_id"])), ("t_ns", .int(s["t_ns"])),
                ("rel_ns", .int(s["rel_ns"])), ("unix_ns", .int(s["unix_ns"])), ("probe", .string(s["probe_name"])),
                ("netns", .int(s["netns"])), ("netns_name", .opt(s["netns_name"] as String?)),
                ("ifindex", .int(s["ifindex"])), ("ifname", .opt(s["ifname"] as String?)),
                ("cpu", .int(s["cpu"])), ("pid", .int(s["pid"])), ("comm", .string(s["comm"])),
                ("skb", .string(s["skb"])), ("len", .int(s["len"])), ("detail", .string(s["detail"])),
                ("nat", .opt(s["nat"] as String?)),
            ])
        }
        let nat = try Row.fetchAll(db, sql: "SELECT * FROM nat_rewrite WHERE packet_id = ? ORDER BY id", arguments: [id]).map { n -> JSON in
            .object([
                ("kind", .string(n["kind"])), ("event_id", .int(n["event_id"])),
                ("before", .object([("saddr", .opt(n["before_saddr"] as String?)), ("sport", .opt(n["before_sport"] as Int64?)),
                                    ("daddr", .opt(n["before_daddr"] as String?)), ("dport", .opt(n["before_dport"] as Int64?))])),
                ("after", .object([("saddr", .opt(n["after_saddr"] as String?)), ("sport", .opt(n["after_sport"] as Int64?)),
                                   ("daddr", .opt(n["after_daddr"] as String?)), ("dport", .opt(n["after_dport"] as Int64?))])),
                ("nf_family", .opt(n["nf_family"] as String?)), ("nf_hook", .opt(n["nf_hook"] as String?)),
                ("nf_table", .opt(n["nf_table"] as String?)),
                ("ct_orig", .opt(n["ct_orig"] as String?)), ("ct_reply", .opt(n["ct_reply"] as String?)),
                ("text", .string(n["text"])),
            ])
        }
        return .object([
            ("id", .int(id)), ("skb", .string(p["skb"])), ("tuple", .opt(p["tuple"] as String?)),
            ("l3", .opt(p["l3"] as String?)), ("proto", .opt(p["proto"] as String?)),
            ("saddr", .opt(p["saddr"] as String?)), ("daddr", .opt(p["daddr"] as String?)),
            ("sport", .opt(p["sport"] as Int64?)), ("dport", .opt(p["dport"] as Int64?)),
            ("fate", .string(p["fate"])), ("incomplete", .opt(p["incomplete"] as String?)),
            ("drop_reason", .opt(p["drop_reason"] as String?)), ("drop_symbol", .opt(p["drop_symbol"] as String?)),
            ("nf_family", .opt(p["nf_family"] as String?)), ("nf_hook", .opt(p["nf_hook"] as String?)),
            ("nf_table", .opt(p["nf_table"] as String?)),
            ("t_ns", .int(p["t_ns"])), ("duration_ns", .int(p["duration_ns"])),
            ("parent_id", .opt(p["parent_id"] as Int64?)), ("clone_inferred", .bool((p["clone_inferred"] as Int64?) == 1)),
            ("clones", .array((children[id] ?? []).map { .int($0) })),
            ("nat", .array(nat)), ("steps", .array(steps)),
        ])
    }
}
