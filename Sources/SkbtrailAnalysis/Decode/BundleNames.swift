import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// The names a bundle gives to the numbers in its records: probes (and each netfilter attach point),
/// drop and reset reasons, kernel symbols, interfaces. Records never need this build's tables to be
/// named; these win over them.
struct BundleNames {
    var probe: [Int: String] = [:]
    /// Netfilter attach points: probe | family << 8 | hook << 16.
    var nfProbe: [Int: String] = [:]
    var dropReason: [Int64: String] = [:] {
        didSet { routeReturnsDropReasons = dropReason.values.contains("IP_INVALID_SOURCE") }
    }
    /// The kernel's route input returns a drop reason, and its source validation one negated, instead
    /// of an errno: since 6.13, whose drop reasons have IP_INVALID_SOURCE (added with that change).
    private(set) var routeReturnsDropReasons = false
    var rstReason: [Int64: String] = [:]
    var symbol: [Int64: String] = [:]
    /// netns << 32 | ifindex.
    var ifname: [Int64: String] = [:]
    /// The namespaces whose netfilter hooks were bracketed; empty where the bundle does not say (older
    /// recorders), and then every namespace counts as bracketed.
    var bracketedNetns: Set<UInt32> = []

    /// Whether a free in `netns` may be attributed to the netfilter bracket its skb carries: only where
    /// that namespace's hooks were bracketed (an skb brings its last bracket across a veth).
    func bracketed(_ netns: UInt32) -> Bool { bracketedNetns.isEmpty || netns == 0 || bracketedNetns.contains(netns) }

    init() {}

    /// Reads them from the copies of the bundle's tables in an analysis database (`schema` of
    /// `connection`), as the `ev` virtual table needs them.
    init(connection: OpaquePointer, schema: String) throws {
        let q = "\"\(schema.replacingOccurrences(of: "\"", with: "\"\""))\"."
        func each(_ sql: String, _ row: (OpaquePointer) -> Void) throws {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw AnalysisError.message("reading the analysis database's names failed: \(String(cString: sqlite3_errmsg(connection)))")
            }
            defer { sqlite3_finalize(statement) }
            while sqlite3_step(statement) == SQLITE_ROW { row(statement) }
        }
        func text(_ s: OpaquePointer, _ i: Int32) -> String? {
            sqlite3_column_type(s, i) == SQLITE_NULL ? nil : String(cString: sqlite3_column_text(s, i))
        }
        func int(_ s: OpaquePointer, _ i: Int32) -> Int64? {
            sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_int64(s, i)
        }
        try each("SELECT probe, name, family, hook, netns, attached FROM \(q)bundle_probe ORDER BY id") { s in
            guard let p = int(s, 0).map(Int.init), let name = text(s, 1) else { return }
            if ProbeTable.isNetfilterBracket(p), int(s, 5) == 1, let ns = int(s, 4), let n = UInt32(exactly: ns) {
                bracketedNetns.insert(n)
            }
            if ProbeTable.isNetfilterBracket(p), let f = int(s, 2), let h = int(s, 3) {
                nfProbe[BundleNames.nfKey(probe: p, family: Int(f), hook: Int(h))] = name
            } else if probe[p] == nil {
                probe[p] = name
            }
        }
        try each("SELECT value, name FROM \(q)bundle_drop_reason") { s in if let v = int(s, 0), let n = text(s, 1) { dropReason[v] = n } }
        try each("SELECT value, name FROM \(q)bundle_rst_reason") { s in if let v = int(s, 0), let n = text(s, 1) { rstReason[v] = n } }
        try each("SELECT address, name, offset FROM \(q)bundle_symbol") { s in
            guard let a = int(s, 0), let n = text(s, 1) else { return }
            let offset = int(s, 2) ?? 0
            symbol[a] = offset == 0 ? n : "\(n)+0x\(String(offset, radix: 16))"
        }
        try each("SELECT netns, ifindex, name FROM \(q)bundle_interface") { s in
            if let ns = int(s, 0), let i = int(s, 1), let n = text(s, 2) { ifname[ns << 32 | i] = n }
        }
    }

    static func nfKey(probe: Int, family: Int, hook: Int) -> Int { probe | family << 8 | hook << 16 }

    /// The name of the probe that wrote `e`: the bundle's, else this build's ("nf:ipv4:input:-50" for a
    /// netfilter bracket), else "probe N".
    func probeName(_ e: st_event) -> String {
        let p = Int(e.probe)
        if ProbeTable.isNetfilterBracket(p) {
            if let n = nfProbe[BundleNames.nfKey(probe: p, family: Int(e.args.nf.pf), hook: Int(e.args.nf.hook))] { return n }
            let b = p - Int(ST_P_NF_BRACKET.rawValue)
            let prio = NetfilterBrackets.priority(b).map(Int.init) ?? b
            return "nf:\(KernelNames.family(Int(e.args.nf.pf))):\(KernelNames.hook(Int(e.args.nf.hook)).lowercased()):\(prio)"
        }
        return probe[p] ?? KernelNames.probeName(p) ?? "probe \(p)"
    }

    func ifname(netns: UInt32, ifindex: UInt32) -> String {
        ifname[Int64(netns) << 32 | Int64(ifindex)] ?? (ifindex == 0 ? "-" : "if\(ifindex)")
    }

    func symbolText(_ location: UInt64) -> String {
        symbol[Int64(bitPattern: location)] ?? "0x" + String(location, radix: 16)
    }

    func dropReasonName(_ reason: UInt32) -> String {
        dropReason[Int64(reason)] ?? "reason \(reason)"
    }
}
