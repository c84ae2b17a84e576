import Foundation
import GRDB

/// The clone trees of an analysis: parents and children by packet id.
struct CloneTree {
    private(set) var children: [Int64: [Int64]] = [:]
    private(set) var parentOf: [Int64: Int64] = [:]

    init(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT parent_id, child_id FROM clone_edge ORDER BY child_id") {
            children[row["parent_id"], default: []].append(row["child_id"])
            parentOf[row["child_id"]] = row["parent_id"]
        }
    }

    /// The packets of `selected` to show as trees: a clone whose parent is selected appears in the
    /// parent's tree, not on its own.
    func roots(_ selected: [Int64]) -> [Int64] {
        let set = Set(selected)
        return selected.filter { id in parentOf[id].map { !set.contains($0) } ?? true }
    }

    /// `id` and its clones, depth first.
    func tree(_ id: Int64) -> [Int64] { [id] + (children[id] ?? []).flatMap(tree) }
}

/// How a packet's life is shown: by `skbtrail paths`, and by `skbtrail diag` with its findings added.
/// One renderer, so the two show a packet the same way.
struct PathRenderer {
    /// Wall-clock times instead of times relative to the packet's first step.
    var date = false
    /// CPU, pid, comm and skb address on each step.
    var detail = false
    let db: Database
    let clones: CloneTree
    let bootToUnixNs: Int64

    init(_ db: Database, clones: CloneTree, bootToUnixNs: Int64, date: Bool, detail: Bool) {
        self.db = db
        self.clones = clones
        self.bootToUnixNs = bootToUnixNs
        self.date = date
        self.detail = detail
    }

    func packet(_ id: Int64) throws -> Row? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM packet WHERE id = ?"), arguments: [id])
    }

    func steps(_ id: Int64) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM path_step WHERE packet_id = ? ORDER BY step"), arguments: [id])
    }

    /// "dropped: NO_SOCKET at tcp_v4_rcv+0x1a2 (netfilter ...)", "incomplete: why", or the fate.
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

    /// Writes packet `id` and its clones as text: a header line (with `mark(id)` appended), its steps
    /// aligned in columns, each followed by the lines `notes(event id)` gives, then each clone indented.
    func text(_ id: Int64, indent: String = "", mark: (Int64) -> String = { _ in "" },
              notes: (Int64) -> [String] = { _ in [] }, into out: inout String) throws {
        guard let p = try packet(id) else { return }
        var header = "\(indent)packet \(id)  \(p["tuple"] ?? "")  \(PathRenderer.fateText(p))"
        if let parent = clones.parentOf[id] {
            let how = (p["clone_inferred"] as Int64?) == 1 ? ", inferred" : ""
            header += indent.isEmpty ? "  (clone of packet \(parent)\(how))" : "  (clone\(how))"
        }
        if p["fate"] as String != "incomplete", let why: String = p["incomplete"] { header += "  [\(why)]" }
        out += header + mark(id) + "\n"
        let pad = String(repeating: " ", count: indent.count + 2)
        var rows: [[String]] = []
        var notesAfter: [Int: [String]] = [:]
        for s in try steps(id) {
            let time = date ? TextLayout.wallClock(unixNs: (s["ts"] as Int64) + bootToUnixNs) : "+" + TextLayout.seconds(s["rel_ns"])
            let netns: String = s["netns_name"] ?? ((s["netns"] as Int64) == 0 ? "-" : String(s["netns"] as Int64))
            let ifname: String = s["ifname"] ?? ((s["ifindex"] as Int64) == 0 ? "-" : "if\(s["ifindex"] as Int64)")
            var row = [time, s["probe_name"], ifname, netns]
            if detail { row += ["cpu \(s["cpu"] as Int64)", "pid \(s["pid"] as Int64)", s["comm"], s["skb"]] }
            var text: String = s["detail"]
            if let nat: String = s["nat"] { text = text.isEmpty ? nat : "\(nat)  \(text)" }
            row.append(text)
            rows.append(row)
            let n = notes(s["event_id"])
            if !n.isEmpty { notesAfter[rows.count - 1] = n }
        }
        for (i, line) in TextLayout.aligned(rows, indent: pad).enumerated() {
            out += line + "\n"
            for n in notesAfter[i] ?? [] { out += "\(pad)  \(n)\n" }
        }
        for child in clones.children[id] ?? [] {
            try text(child, indent: indent + "  └─ ", mark: mark, notes: notes, into: &out)
        }
    }

    /// Packet `id` as one JSON object: its fields, its NAT rewrites, its steps and its clones (nested
    /// objects), with `extra(id)` appended to each.
    func json(_ id: Int64, extra: (Int64) throws -> [(String, JSON)] = { _ in [] }) throws -> JSON {
        guard let p = try packet(id) else { return .null }
        let steps = try steps(id).map { s -> JSON in
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
        let nat = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM nat_rewrite WHERE packet_id = ? ORDER BY id"),
                                   arguments: [id]).map { n -> JSON in
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
        let children = try (clones.children[id] ?? []).map { try json($0, extra: extra) }
        return .object([
            ("id", .int(id)), ("skb", .string(p["skb"])), ("tuple", .opt(p["tuple"] as String?)),
            ("l3", .opt(p["l3"] as String?)), ("proto", .opt(p["proto"] as String?)),
            ("saddr", .opt(p["saddr"] as String?)), ("daddr", .opt(p["daddr"] as String?)),
            ("sport", .opt(p["sport"] as Int64?)), ("dport", .opt(p["dport"] as Int64?)),
            ("fate", .string(p["fate"])), ("incomplete", .opt(p["incomplete"] as String?)),
            ("drop_reason", .opt(p["drop_reason"] as String?)), ("drop_symbol", .opt(p["drop_symbol"] as String?)),
            ("nf_family", .opt(p["nf_family"] as String?)), ("nf_hook", .opt(p["nf_hook"] as String?)),
            ("nf_table", .opt(p["nf_table"] as String?)), ("netns_name", .opt(p["netns_name"] as String?)),
            ("t_ns", .int(p["t_ns"])), ("duration_ns", .int(p["duration_ns"])),
            ("parent_id", .opt(p["parent_id"] as Int64?)), ("clone_inferred", .bool((p["clone_inferred"] as Int64?) == 1)),
        ] + (try extra(id)) + [
            ("nat", .array(nat)), ("steps", .array(steps)), ("clones", .array(children)),
        ])
    }
}
