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

    /// Calls `body` with each packet matching `cond` (on `pkt p`) that is shown as a tree, in id order, as
    /// the query yields them: a clone whose parent matched is shown in the parent's tree instead. A
    /// parent's id is below its clones', so whether it matched is known when a clone comes.
    /// At most `limit` of them that `body` shows (it returns whether it showed the packet; nil: all).
    /// Whether the limit cut the list short.
    @discardableResult
    /// A packet `wanted` refuses is passed over before the limit counts: the limit cuts the list short only
    /// where a packet that would be shown is left out.
    func forEachRoot(_ db: Database, cond: String, arguments: [DatabaseValueConvertible?], limit: Int? = nil,
                     wanted: (Int64) -> Bool = { _ in true }, _ body: (Int64) throws -> Bool) throws -> Bool {
        var shownParents = Set<Int64>()
        let cursor = try Int64.fetchCursor(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id",
                                           arguments: StatementArguments(arguments))
        var shown = 0
        while let id = try cursor.next() {
            try Sandbox.checkInterrupt("the report")
            if children[id] != nil { shownParents.insert(id) }
            if let parent = parentOf[id], shownParents.contains(parent) { continue }
            if !wanted(id) { continue }
            if let limit, shown >= limit { return true }
            if try body(id) { shown += 1 }
        }
        return false
    }

    /// `id` and its clones, depth first.
    func tree(_ id: Int64) -> [Int64] { [id] + (children[id] ?? []).flatMap(tree) }
}

/// Rows of cells as bytes, laid out like `TextLayout.aligned`: each cell padded to its column's widest
/// plus two spaces, the last one not, trailing spaces trimmed.
struct Cells {
    let columns: Int
    private var bytes: [UInt8] = []
    /// Where each cell ends in `bytes`.
    private var ends: [Int] = []
    private var widths: [Int]

    init(columns: Int) {
        self.columns = columns
        widths = Array(repeating: 0, count: columns)
        bytes.reserveCapacity(1024)
    }

    /// No rows, the memory kept for the next packet's.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        for i in widths.indices { widths[i] = 0 }
    }

    var rows: Int { ends.count / columns }

    mutating func add(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
        end(raw.count, raw)
    }

    mutating func add(_ cell: [UInt8]) {
        bytes += cell
        cell.withUnsafeBytes { end(cell.count, $0) }
    }

    mutating func add(_ text: String) {
        var t = text
        t.withUTF8 { add(UnsafeRawBufferPointer($0)) }
    }

    private mutating func end(_ count: Int, _ raw: UnsafeRawBufferPointer) {
        let column = ends.count % columns
        widths[column] = max(widths[column], Cells.width(raw.bindMemory(to: UInt8.self)))
        ends.append(bytes.count)
    }

    /// A relative time: "+", seconds with microseconds as `TextLayout.seconds`, and "s", straight into the cell.
    mutating func addRelative(_ ns: Int64) {
        let start = bytes.count
        bytes.append(UInt8(ascii: "+"))
        if ns < 0 { bytes.append(UInt8(ascii: "-")) }
        let a = ns.magnitude
        Cells.digits(a / 1_000_000_000, minimum: 1, into: &bytes)
        bytes.append(UInt8(ascii: "."))
        Cells.digits((a % 1_000_000_000) / 1000, minimum: 6, into: &bytes)
        bytes.append(UInt8(ascii: "s"))
        let count = bytes.count - start
        let column = ends.count % columns
        widths[column] = max(widths[column], count)
        ends.append(bytes.count)
    }

    /// `v` in decimal, zero-padded to `minimum` digits.
    static func digits(_ v: UInt64, minimum: Int, into out: inout [UInt8]) {
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[23 - n] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
                n += 1
            } while x > 0
            while n < minimum { t[23 - n] = UInt8(ascii: "0"); n += 1 }
            out.append(contentsOf: t[(24 - n)...])
        }
    }

    /// Writes the rows, each after `indent` spaces and followed by what `after(row, &out)` adds.
    func write(indent: Int, into out: inout [UInt8], after: (Int, inout [UInt8]) -> Void) {
        var start = 0
        bytes.withUnsafeBufferPointer { b in
            for row in 0..<rows {
                Cells.spaces(indent, into: &out)
                let lineStart = out.count
                for c in 0..<columns {
                    let end = ends[row * columns + c]
                    let cell = UnsafeBufferPointer(rebasing: b[start..<end])
                    out.append(contentsOf: cell)
                    if c < columns - 1 {
                        Cells.spaces(widths[c] - Cells.width(cell) + 2, into: &out)
                    }
                    start = end
                }
                var last = out.count
                while last > lineStart - indent && out[last - 1] == 0x20 { last -= 1 }
                out.removeLast(out.count - last)
                out.append(0x0A)
                after(row, &out)
            }
        }
    }

    private static let blank = [UInt8](repeating: 0x20, count: 64)

    /// `n` spaces (a copy of a run of them, not a byte at a time).
    @inline(__always) static func spaces(_ n: Int, into out: inout [UInt8]) {
        var left = n
        while left > 0 {
            let k = min(left, blank.count)
            blank.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<k])) }
            left -= k
        }
    }

    /// Characters in UTF-8 `cell`: its bytes but continuation bytes.
    @inline(__always) static func width(_ cell: UnsafeBufferPointer<UInt8>) -> Int {
        var n = 0
        for b in cell where b & 0xC0 != 0x80 { n += 1 }
        return n
    }
}

/// How a packet's life is shown: by `skbtrail paths`, and by `skbtrail diag` with its findings added.
/// One renderer, so the two show a packet the same way.
struct PathRenderer {
    /// Wall-clock times instead of times relative to the packet's first step.
    var date = false
    /// CPU, pid, comm and skb address on each step.
    var detail = false
    let clones: CloneTree
    let reader: PacketReader

    init(_ db: Database, clones: CloneTree, startedNs: Int64, bootToUnixNs: Int64, date: Bool, detail: Bool) throws {
        self.clones = clones
        reader = try PacketReader(db, startedNs: startedNs, bootToUnixNs: bootToUnixNs)
        self.date = date
        self.detail = detail
        scratch = Scratch(columns: detail ? 9 : 5)
    }

    /// The line above the packets of `paths` and `diag`, naming the columns of a step.
    static func header(date: Bool, detail: Bool) -> String {
        let time = date ? "TIME (UTC, ISO 8601)" : "TIME (s since the packet's first step)"
        return "# packet ID  TUPLE  FATE, then a line per step: \(time)  PROBE  INTERFACE  NETNS"
            + (detail ? "  CPU  PID  COMM  SKB" : "") + "  DETAIL\n"
    }

    /// "dropped: NO_SOCKET at tcp_v4_rcv+0x1a2 (netfilter ...)", "incomplete: why", or the fate.
    static func fateText(fate: String, dropReason: String?, dropSymbol: String?, nfFamily: String?, nfHook: String?,
                         nfTable: String?, incomplete: String?) -> String {
        switch fate {
        case "dropped":
            var s = "dropped: \(dropReason ?? "?") at \(dropSymbol ?? "?")"
            if let hook = nfHook {
                // the table is unknown where a chain's function had no names (5.10: no module BTF)
                s += " (netfilter \(nfFamily ?? "") \(hook)" + (nfTable.map { ", " + KernelNames.tablePhrase($0) } ?? "") + ")"
            }
            return s
        case "incomplete":
            return "incomplete: \(incomplete ?? "")"
        default:
            return fate
        }
    }

    static func fateText(_ p: PacketRecord) -> String {
        fateText(fate: p.fate, dropReason: p.dropReason, dropSymbol: p.dropSymbol, nfFamily: p.nfFamily, nfHook: p.nfHook,
                 nfTable: p.nfTable, incomplete: p.incomplete)
    }

    /// What `text` reuses from packet to packet: the step cells, and the bytes of each probe's name.
    final class Scratch {
        var cells: Cells
        var events: [Int64] = []
        /// Per step: its drop stack id (0: none).
        var stacks: [Int64] = []
        var probes: [Int: [UInt8]] = [:]
        init(columns: Int) { cells = Cells(columns: columns) }
    }
    let scratch: Scratch

    /// Writes packet `id` and its clones as text: a header line (with `mark(id)` appended), its steps
    /// aligned in columns, each followed by the lines `notes(event id)` gives, then each clone indented.
    func text(_ id: Int64, indent: String = "", mark: (Int64) -> String = { _ in "" },
              notes: (Int64) -> [String] = { _ in [] }, into out: inout String) throws {
        var bytes: [UInt8] = []
        try text(id, indent: indent, mark: mark, notes: notes, into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// `text`, as UTF-8 bytes appended to `out`: what `paths` and `diag` print, millions of lines of it.
    func text(_ id: Int64, indent: String = "", mark: (Int64) -> String = { _ in "" },
              notes: (Int64) -> [String] = { _ in [] }, into out: inout [UInt8]) throws {
        guard let p = try reader.packet(id) else { return }
        out += indent.utf8
        out += "packet ".utf8
        Cells.digits(UInt64(bitPattern: id), minimum: 1, into: &out)  // ids are positive
        out += "  ".utf8
        out += (p.tuple ?? "").utf8
        out += "  ".utf8
        out += PathRenderer.fateText(p).utf8
        if let parent = clones.parentOf[id] {
            let how = p.parent != nil && p.cloneInferred ? ", inferred" : ""
            out += (indent.isEmpty ? "  (clone of packet \(parent)\(how))" : "  (clone\(how))").utf8
        }
        if p.fate != "incomplete", let why = p.incomplete { out += "  [\(why)]".utf8 }
        out += mark(id).utf8
        out.append(0x0A)
        // The steps, as byte cells aligned in columns: a String per cell cost most of `paths`.
        let pad = indent.count + 2
        let nat = try reader.natTexts(p)
        let scratch = self.scratch
        scratch.cells.reset()
        scratch.events.removeAll(keepingCapacity: true)
        scratch.stacks.removeAll(keepingCapacity: true)
        try reader.forEachStep(p) { s in
            let ts = s.ts
            if date {
                scratch.cells.add(TextLayout.wallClock(unixNs: ts &+ reader.bootToUnixNs))
            } else {
                scratch.cells.addRelative(ts &- p.firstTs)
            }
            let key = s.probeKey
            if let probe = scratch.probes[key] {
                scratch.cells.add(probe)
            } else {
                let probe = Array(s.probe.utf8)
                scratch.probes[key] = probe
                scratch.cells.add(probe)
            }
            let netns = s.netns
            scratch.cells.add(reader.ifnameCell(netns: netns, ifindex: s.ifindex))
            scratch.cells.add(reader.netnsCell(netns))
            if detail {
                scratch.cells.add("cpu \(s.cpu)"); scratch.cells.add("pid \(s.pid)"); scratch.cells.add(s.comm)
                scratch.cells.add(String(UInt64(bitPattern: s.skb), radix: 16))
            }
            let event = s.eventID
            if let n = nat[event] {
                let d = s.detail
                scratch.cells.add(d.isEmpty ? n : n + "  " + d)
            } else {
                scratch.cells.add(s.detail)
            }
            scratch.events.append(event)
            scratch.stacks.append(reader.stacks.isEmpty ? 0 : s.stack)
        }
        let events = scratch.events, stacks = scratch.stacks
        scratch.cells.write(indent: pad, into: &out) { row, line in
            // a drop's kernel stack (--drop-stack), innermost first
            if stacks[row] != 0, let frames = reader.stacks[stacks[row]] {
                for frame in frames {
                    line += repeatElement(UInt8(ascii: " "), count: pad + 2)
                    line += "| ".utf8
                    line += frame.utf8
                    line.append(0x0A)
                }
            }
            for n in notes(events[row]) {
                line += repeatElement(UInt8(ascii: " "), count: pad + 2)
                line += n.utf8
                line.append(0x0A)
            }
        }
        for child in clones.children[id] ?? [] {
            try text(child, indent: indent + "  └─ ", mark: mark, notes: notes, into: &out)
        }
    }

    /// Packet `id` as one JSON object: its fields, its NAT rewrites, its steps and its clones (nested
    /// objects), with `extra(id)` appended to each.
    func json(_ id: Int64, extra: (Int64) throws -> [(String, JSON)] = { _ in [] }) throws -> JSON {
        guard let p = try reader.packet(id) else { return .null }
        let started = reader.startedNs, boot = reader.bootToUnixNs
        let steps = try reader.steps(p).map { s -> JSON in
            .object([
                ("step", .int(s.step)), ("event_id", .int(s.eventID)), ("t_ns", .int(s.ts &- started)),
                ("rel_ns", .int(s.ts &- p.firstTs)), ("unix_ns", .int(s.ts &+ boot)), ("probe", .string(s.probe)),
                ("netns", .int(s.netns)), ("netns_name", .opt(reader.netnsName(s.netns))),
                ("ifindex", .int(s.ifindex)), ("ifname", .opt(reader.ifname(netns: s.netns, ifindex: s.ifindex))),
                ("cpu", .int(s.cpu)), ("pid", .int(s.pid)), ("comm", .string(s.comm)),
                ("skb", .string(String(UInt64(bitPattern: s.skb), radix: 16))), ("len", .int(s.len)), ("detail", .string(s.detail)),
                ("nat", .opt(s.nat)),
            ] + (s.stack != 0 ? [("stack", .array((reader.stacks[s.stack] ?? []).map { JSON.string($0) }))] : []))
        }
        let nat = try reader.natJSON(p)
        let children = try (clones.children[id] ?? []).map { try json($0, extra: extra) }
        return .object([
            ("id", .int(id)), ("skb", .string(String(UInt64(bitPattern: p.skb), radix: 16))), ("tuple", .opt(p.tuple)),
            ("l3", .opt(p.l3)), ("proto", .opt(p.proto)),
            ("saddr", .opt(p.saddr)), ("daddr", .opt(p.daddr)),
            ("sport", .opt(p.sport)), ("dport", .opt(p.dport)),
            ("fate", .string(p.fate)), ("incomplete", .opt(p.incomplete)),
            ("drop_reason", .opt(p.dropReason)), ("drop_symbol", .opt(p.dropSymbol)),
            ("nf_family", .opt(p.nfFamily)), ("nf_hook", .opt(p.nfHook)),
            ("nf_table", .opt(p.nfTable)), ("netns_name", .opt(p.netns.flatMap(reader.netnsName))),
            ("t_ns", .int(p.firstTs &- started)), ("duration_ns", .int(p.lastTs &- p.firstTs)),
            ("parent_id", .opt(p.parent)), ("clone_inferred", .bool(p.parent != nil && p.cloneInferred)),
        ] + (try extra(id)) + [
            ("nat", .array(nat)), ("steps", .array(steps)), ("clones", .array(children)),
        ])
    }
}
