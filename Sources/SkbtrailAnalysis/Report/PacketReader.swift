import Foundation
import GRDB
import GRDBSQLite

/// A prepared statement read through the SQLite C API, by column index: the reports read hundreds of
/// thousands of packets, and looking a column up by name, as GRDB's rows do, cost more than the query.
final class RawStatement {
    private var handle: OpaquePointer?
    private let connection: OpaquePointer

    convenience init(_ db: Database, _ sql: String) throws {
        guard let connection = db.sqliteConnection else { throw AnalysisError.message("internal: no database connection") }
        try self.init(connection, sql)
        guard tail.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw AnalysisError.message("internal: a report's query holds more than one statement")
        }
    }

    /// Prepares the first statement of `sql`; `tail` is what follows it.
    init(_ connection: OpaquePointer, _ sql: String) throws {
        self.connection = connection
        var rest: UnsafePointer<CChar>?
        let rc = sql.withCString { text -> Int32 in
            let rc = sqlite3_prepare_v2(connection, text, -1, &handle, &rest)
            tail = rest.map { String(cString: $0) } ?? ""
            return rc
        }
        guard rc == SQLITE_OK, handle != nil else {
            let why = String(cString: sqlite3_errmsg(connection))
            sqlite3_finalize(handle)
            handle = nil
            throw AnalysisError.query(why.isEmpty || rc == SQLITE_OK ? "there is no statement to run" : why)
        }
    }

    /// The text after the statement.
    private(set) var tail = ""

    var columnCount: Int32 { sqlite3_column_count(handle) }
    func columnName(_ i: Int32) -> String { sqlite3_column_name(handle, i).map { String(cString: $0) } ?? "" }
    func type(_ i: Int32) -> Int32 { sqlite3_column_type(handle, i) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(handle, i) }
    func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, i))
        guard n > 0, let p = sqlite3_column_blob(handle, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    deinit { sqlite3_finalize(handle) }

    /// Runs the statement again with `values` bound to its parameters, in order.
    func run(_ values: Int64...) {
        sqlite3_reset(handle)
        for (i, v) in values.enumerated() { sqlite3_bind_int64(handle, Int32(i + 1), v) }
    }

    /// Starts the statement again; parameters keep their values until bound again.
    func reset() { sqlite3_reset(handle) }

    func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(handle, i, v) }
    func bind(_ i: Int32, _ v: String?) {
        guard let v else { sqlite3_bind_null(handle, i); return }
        _ = v.withCString { sqlite3_bind_text(handle, i, $0, -1, SQLITE_TRANSIENT_VALUE) }
    }

    /// The next row; false at the end.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw AnalysisError.query(String(cString: sqlite3_errmsg(connection)))
    }

    func int(_ i: Int32) -> Int64 { sqlite3_column_int64(handle, i) }
    func optInt(_ i: Int32) -> Int64? { sqlite3_column_type(handle, i) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, i) }
    /// The bytes of a text column, valid until the next step (empty for NULL).
    func bytes(_ i: Int32) -> UnsafeRawBufferPointer {
        guard let p = sqlite3_column_text(handle, i) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, i)))
    }

    func text(_ i: Int32) -> String? {
        guard sqlite3_column_type(handle, i) != SQLITE_NULL, let p = sqlite3_column_text(handle, i) else { return nil }
        return String(cString: p)
    }
}

/// One packet as the path reports show it.
struct PacketRecord {
    var id: Int64
    var skb: Int64
    var firstTs: Int64
    var lastTs: Int64
    var fate: String
    var incomplete: String?
    var dropReason: String?
    var dropSymbol: String?
    var nfFamily: String?
    var nfHook: String?
    var nfTable: String?
    var netns: Int64?
    var l3: String?
    var proto: String?
    var saddr: String?
    var daddr: String?
    var sport: Int64?
    var dport: Int64?
    var tuple: String?
    var parent: Int64?
    /// The parent is inferred (a shared data head), not named by skb_clone.
    var cloneInferred = false
    var natCount: Int64
}

/// One step of a packet.
struct StepRecord {
    var step: Int64
    var eventID: Int64
    var ts: Int64
    var probe: String
    var netns: Int64
    var ifindex: Int64
    var cpu: Int64
    var pid: Int64
    var comm: String
    var skb: Int64
    var len: Int64
    var detail: String
    var nat: String?
    var stack: Int64 = 0
}

/// Reads packets, their steps and their NAT rewrites by packet id, with the namespace and interface
/// names of the bundle: packets and steps straight from the packed segments and chunks (the same
/// sources the `pkt` and `ev` tables serve), NAT rewrites through statements prepared once.
final class PacketReader {
    private let packets: PacketSource
    private let events: EventSource
    private let nat: RawStatement
    private let natRows: RawStatement
    private var netnsNames: [Int64: String] = [:]
    private var ifnames: [Int64: String] = [:]
    /// The kernel stacks of drops (--drop-stack), as frame texts, the tracing frames above kfree_skb left out.
    private(set) var stacks: [Int64: [String]] = [:]
    let startedNs: Int64
    let bootToUnixNs: Int64

    init(_ db: Database, startedNs: Int64, bootToUnixNs: Int64) throws {
        self.startedNs = startedNs
        self.bootToUnixNs = bootToUnixNs
        guard let connection = db.sqliteConnection else { throw AnalysisError.message("internal: no database connection") }
        packets = try PacketSource(connection: connection, schema: "main")
        events = try EventSource(connection: connection, schema: "main")
        nat = try RawStatement(db, "SELECT event_id, text FROM nat WHERE packet_id = ? ORDER BY event_id, id")
        natRows = try RawStatement(db, "SELECT * FROM nat_rewrite WHERE packet_id = ? ORDER BY id")
        let names = try RawStatement(db, "SELECT inode, name FROM bundle_netns WHERE name IS NOT NULL")
        names.run()
        while try names.step() { netnsNames[names.int(0)] = names.text(1) }
        let interfaces = try RawStatement(db, "SELECT netns, ifindex, name FROM bundle_interface WHERE name IS NOT NULL")
        interfaces.run()
        while try interfaces.step() { ifnames[interfaces.int(0) << 32 | interfaces.int(1)] = interfaces.text(2) }
        stacks = try PacketReader.stackTexts(db)
    }

    /// The kernel stacks of drops (--drop-stack) by id: their frames, innermost first, without the
    /// frames of the BPF program and the tracepoint above the free.
    static func stackTexts(_ db: Database) throws -> [Int64: [String]] {
        var stacks: [Int64: [String]] = [:]
        let frames = try RawStatement(db, "SELECT stack, symbol, frame FROM stack_frame ORDER BY stack, depth")
        frames.run()
        while try frames.step() {
            let id = frames.int(0), symbol = frames.text(1) ?? "", frame = frames.text(2) ?? "?"
            if stacks[id] == nil && tracingFrame(symbol) { continue }
            stacks[id, default: []].append(frame)
        }
        return stacks
    }

    /// A frame of the tracing machinery itself (the program, the tracepoint's call), above the free.
    static func tracingFrame(_ symbol: String) -> Bool {
        ["bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_", "trace_kfree_skb", "perf_trace_", "bpf_get_stack"]
            .contains { symbol.hasPrefix($0) }
    }

    func netnsName(_ inode: Int64) -> String? { netnsNames[inode] }

    private var placeCache: [Int64: [UInt8]] = [:]
    private var ifCache: [Int64: [UInt8]] = [:]

    /// The last cells asked for: consecutive steps are mostly in one place.
    private var lastPlace: (key: Int64, cell: [UInt8])?
    private var lastIf: (key: Int64, cell: [UInt8])?

    /// The netns column of a step: its name, its inode, or "-".
    func netnsCell(_ inode: Int64) -> [UInt8] {
        if let last = lastPlace, last.key == inode { return last.cell }
        let c: [UInt8]
        if let known = placeCache[inode] {
            c = known
        } else {
            c = Array((netnsNames[inode] ?? (inode == 0 ? "-" : String(inode))).utf8)
            placeCache[inode] = c
        }
        lastPlace = (inode, c)
        return c
    }

    /// The interface column of a step: its name, "ifN" or "-".
    func ifnameCell(netns: Int64, ifindex: Int64) -> [UInt8] {
        let key = netns << 32 | ifindex
        if let last = lastIf, last.key == key { return last.cell }
        let c: [UInt8]
        if let known = ifCache[key] {
            c = known
        } else {
            c = Array((ifnames[key] ?? (ifindex == 0 ? "-" : "if\(ifindex)")).utf8)
            ifCache[key] = c
        }
        lastIf = (key, c)
        return c
    }
    func ifname(netns: Int64, ifindex: Int64) -> String? { ifnames[netns << 32 | ifindex] }

    func packet(_ id: Int64) throws -> PacketRecord? { try packets.record(id) }

    /// The NAT rewrites each step of the packet shows ("; "-joined), by event id.
    func natTexts(_ p: PacketRecord) throws -> [Int64: String] {
        var byEvent: [Int64: String] = [:]
        if p.natCount > 0 {
            nat.run(p.id)
            while try nat.step() {
                let e = nat.int(0), t = nat.text(1) ?? ""
                byEvent[e] = byEvent[e].map { $0 + "; " + t } ?? t
            }
        }
        return byEvent
    }

    /// Calls `body` with each step of packet `p`, in order.
    func forEachStep(_ p: PacketRecord, _ body: (Step) throws -> Void) throws { try forEachStep(p.id, body) }

    /// Calls `body` with each step of packet `id`, in order.
    func forEachStep(_ id: Int64, _ body: (Step) throws -> Void) throws {
        for number in try packets.records(id) {
            guard let (chunk, i) = try events.locate(Int(number)) else { continue }
            try body(Step(chunk: chunk, index: i, source: events))
        }
    }

    /// A step's fields, read from its record as they are asked for.
    struct Step {
        let chunk: EventSource.Chunk
        let index: Int
        let source: EventSource
        var step: Int64 { Int64(chunk.steps[index]) }
        var eventID: Int64 { Int64(chunk.ids[index]) }
        var ts: Int64 { Int64(bitPattern: chunk.events[index].ts) }
        var probe: String { source.probeName(chunk.events[index]) }
        /// The same for the same probe name (`EventSource.probeKey`).
        var probeKey: Int { source.probeKey(chunk.events[index]) }
        var netns: Int64 { Int64(chunk.events[index].netns) }
        var ifindex: Int64 { Int64(chunk.events[index].ifindex) }
        var cpu: Int64 { Int64(chunk.events[index].cpu) }
        var pid: Int64 { Int64(chunk.events[index].pid) }
        var comm: String { source.texts.comm(chunk.events[index]) }
        var skb: Int64 { Int64(bitPattern: chunk.events[index].skb) }
        var len: Int64 { Int64(chunk.events[index].len) }
        var detail: String { source.detail(chunk.events[index]) }
        /// kfree_skb with --drop-stack: the id of its kernel stack; 0 none.
        var stack: Int64 { chunk.events[index].role == .free ? Int64(chunk.events[index].args.free.stack) : 0 }
    }

    /// The packet's steps, in order, with the NAT rewrites each one shows ("; "-joined).
    func steps(_ p: PacketRecord) throws -> [StepRecord] {
        let byEvent = try natTexts(p)
        var out: [StepRecord] = []
        try forEachStep(p) { s in
            out.append(StepRecord(step: s.step, eventID: s.eventID, ts: s.ts, probe: s.probe, netns: s.netns, ifindex: s.ifindex,
                                  cpu: s.cpu, pid: s.pid, comm: s.comm, skb: s.skb, len: s.len, detail: s.detail,
                                  nat: byEvent[s.eventID], stack: s.stack))
        }
        return out
    }

    /// The packet's NAT rewrites as JSON objects.
    func natJSON(_ p: PacketRecord) throws -> [JSON] {
        guard p.natCount > 0 else { return [] }
        var out: [JSON] = []
        // nat_rewrite: id, packet_id, event_id, ts, t_ns, kind, proto, before_saddr, before_sport, before_daddr,
        // before_dport, after_saddr, after_sport, after_daddr, after_dport, nf_family, nf_hook, nf_table, netns,
        // netns_name, ifindex, ifname, ct_orig, ct_reply, text
        let n = natRows
        n.run(p.id)
        while try n.step() {
            out.append(.object([
                ("kind", .opt(n.text(5))), ("event_id", .int(n.int(2))),
                ("before", .object([("saddr", .opt(n.text(7))), ("sport", .opt(n.optInt(8))),
                                    ("daddr", .opt(n.text(9))), ("dport", .opt(n.optInt(10)))])),
                ("after", .object([("saddr", .opt(n.text(11))), ("sport", .opt(n.optInt(12))),
                                   ("daddr", .opt(n.text(13))), ("dport", .opt(n.optInt(14)))])),
                ("nf_family", .opt(n.text(15))), ("nf_hook", .opt(n.text(16))), ("nf_table", .opt(n.text(17))),
                ("ct_orig", .opt(n.text(22))), ("ct_reply", .opt(n.text(23))), ("text", .opt(n.text(24))),
            ]))
        }
        return out
    }
}
