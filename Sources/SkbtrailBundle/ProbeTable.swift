import SkbtrailEvents

/// What a probe means for the packet it sees (`enum st_probe_role` in events.h).
public enum ProbeRole: Sendable, Equatable {
    case receive, queue, transmit, transmitted, free, consume, deliver, socket, icmp, route, neighbour, qdisc, xdp
    case netfilter
    /// A netfilter table or chain ran on the packet (ipt_do_table, nft_do_chain): its verdict.
    case nfVerdict
    /// A kernel function of the packet's path ran on it (ip_rcv, ip_forward, ...): a step, with the
    /// return value when recorded at the exit.
    case function
    /// A role this build does not know (a newer events.h row).
    case other

    init(_ raw: UInt8) {
        switch UInt32(raw) {
        case ST_ROLE_RECEIVE.rawValue: self = .receive
        case ST_ROLE_QUEUE.rawValue: self = .queue
        case ST_ROLE_TRANSMIT.rawValue: self = .transmit
        case ST_ROLE_TRANSMITTED.rawValue: self = .transmitted
        case ST_ROLE_FREE.rawValue: self = .free
        case ST_ROLE_CONSUME.rawValue: self = .consume
        case ST_ROLE_DELIVER.rawValue: self = .deliver
        case ST_ROLE_SOCKET.rawValue: self = .socket
        case ST_ROLE_ICMP.rawValue: self = .icmp
        case ST_ROLE_ROUTE.rawValue: self = .route
        case ST_ROLE_NEIGH.rawValue: self = .neighbour
        case ST_ROLE_QDISC.rawValue: self = .qdisc
        case ST_ROLE_XDP.rawValue: self = .xdp
        case ST_ROLE_NETFILTER.rawValue: self = .netfilter
        case ST_ROLE_NF_VERDICT.rawValue: self = .nfVerdict
        case ST_ROLE_FUNCTION.rawValue: self = .function
        default: self = .other
        }
    }

    /// Frees the skb (kfree_skb, consume_skb): the end of a packet's life.
    public var endsLife: Bool { self == .free || self == .consume }
    /// A device-layer step on the way out (queue, driver, qdisc).
    public var isDeviceOutput: Bool { self == .queue || self == .transmit || self == .transmitted || self == .qdisc }
}

/// Which member of `union st_args` a probe's records fill (`enum st_args_kind`).
public enum ProbeArgs: Sendable, Equatable {
    case none, free, netfilter, socket, route, device, misc, function

    init(_ raw: UInt8) {
        switch UInt32(raw) {
        case ST_ARGS_FREE.rawValue: self = .free
        case ST_ARGS_NF.rawValue: self = .netfilter
        case ST_ARGS_SOCK.rawValue: self = .socket
        case ST_ARGS_ROUTE.rawValue: self = .route
        case ST_ARGS_DEV.rawValue: self = .device
        case ST_ARGS_MISC.rawValue: self = .misc
        case ST_ARGS_FN.rawValue: self = .function
        default: self = .none
        }
    }
}

/// How a probe attaches (`enum st_probe_kind`).
public enum ProbeKind: Sendable, Equatable {
    case tracepoint, netfilter, function, other

    init(_ raw: UInt8) {
        switch UInt32(raw) {
        case ST_KIND_TRACEPOINT.rawValue: self = .tracepoint
        case ST_KIND_NETFILTER.rawValue: self = .netfilter
        case ST_KIND_FUNCTION.rawValue: self = .function
        default: self = .other
        }
    }
}

/// How a function of the packet's path is probed (a row of `ST_FN_PATH_TABLE`).
public struct PathFunction: Sendable, Equatable {
    /// The argument (from 1) that holds the sk_buff.
    public let skbArgument: Int
    /// How many arguments the function takes (fexit reads its return value after them).
    public let arguments: Int
    /// Records at its exit, with the return value; else at its entry.
    public let atExit: Bool
}

/// One row of the probe table (`ST_PROBE_TABLE` in bpf/include/events.h).
public struct ProbeInfo: Sendable, Equatable {
    public let id: Int
    public let name: String
    public let group: String
    public let kind: ProbeKind
    public let args: ProbeArgs
    public let role: ProbeRole
}

/// The probe table of bpf/include/events.h, the one place a probe is defined. Every decision on a probe
/// (its name, its group for --probes, which record fields it fills, what it means for a packet) reads
/// this table by id; netfilter brackets share the row of `ST_P_NF_BRACKET`.
public enum ProbeTable {
    /// Every row, in table order.
    public static let all: [ProbeInfo] = {
        var n: UInt32 = 0
        guard let rows = st_probe_rows(&n) else { return [] }
        return (0..<Int(n)).map { i in
            let r = rows[i]
            return ProbeInfo(id: Int(r.id), name: String(cString: r.name), group: String(cString: r.group),
                             kind: ProbeKind(r.kind), args: ProbeArgs(r.args), role: ProbeRole(r.role))
        }
    }()

    /// Rows by id, bracket ids included; nil for an id this build does not know.
    private static let byID: [ProbeInfo?] = {
        var table = [ProbeInfo?](repeating: nil, count: (all.map(\.id).max() ?? 0) + NetfilterBrackets.count)
        for p in all {
            let ids = p.kind == .netfilter ? p.id..<(p.id + NetfilterBrackets.count) : p.id..<(p.id + 1)
            for id in ids { table[id] = p }
        }
        return table
    }()

    /// The row of probe `id` (a bracket id gives the netfilter row), or nil.
    @inline(__always) public static func info(_ id: Int) -> ProbeInfo? {
        id >= 0 && id < byID.count ? byID[id] : nil
    }

    /// The role of probe `id`; `.other` for an unknown id.
    @inline(__always) public static func role(_ id: Int) -> ProbeRole { info(id)?.role ?? .other }

    /// Whether `id` is a netfilter bracket's.
    @inline(__always) public static func isNetfilterBracket(_ id: Int) -> Bool { role(id) == .netfilter }

    /// The tracepoints, in table order.
    public static var tracepoints: [ProbeInfo] { all.filter { $0.kind == .tracepoint } }

    /// The kernel functions (tier 3), in table order.
    public static var functions: [ProbeInfo] { all.filter { $0.kind == .function } }

    /// The functions of the packet's path (`ST_FN_PATH_TABLE`): attached only when --probes names them.
    public static var pathFunctions: [ProbeInfo] { all.filter { $0.role == .function } }

    /// The groups of `pathFunctions` (ip-fn, ipv6-fn, route-fn, ...).
    public static var pathGroups: Set<String> { Set(pathFunctions.map(\.group)) }

    /// How the path function `id` is probed: which argument holds the skb, how many it has, and whether
    /// it records at its exit (with its return value); nil for any other probe.
    public static func path(_ id: Int) -> PathFunction? { pathByID[id] }

    private static let pathByID: [Int: PathFunction] = {
        var n: UInt32 = 0
        guard let rows = st_fn_path_rows(&n) else { return [:] }
        var byID: [Int: PathFunction] = [:]
        for i in 0..<Int(n) {
            let r = rows[i]
            byID[Int(r.id)] = PathFunction(skbArgument: Int(r.skb), arguments: Int(r.nargs), atExit: UInt32(r.at) == ST_FN_AT_EXIT.rawValue)
        }
        return byID
    }()

    /// The groups --probes accepts (net, skb, tcp, ..., netfilter).
    public static var groups: [String] {
        var seen: [String] = []
        for p in all where !seen.contains(p.group) { seen.append(p.group) }
        return seen
    }
}

/// The netfilter brackets (`ST_NF_BRACKET_TABLE`): the priorities the recorder attaches at, lowest
/// first, and the standard table that runs after each.
public enum NetfilterBrackets {
    public static let count = Int(ST_NF_BRACKETS)

    private static let rows: [st_nf_bracket_info] = {
        var n: UInt32 = 0
        guard let rows = st_nf_bracket_rows(&n) else { return [] }
        return Array(UnsafeBufferPointer(start: rows, count: Int(n)))
    }()

    /// Priority of each bracket, by index.
    public static let priorities: [Int32] = rows.map(\.priority)

    /// The table between bracket `index` and the next one ("raw", ..., "after priority 150").
    public static let tablesAfter: [String] = rows.map { String(cString: $0.table_after) }

    /// The priority of bracket `index`, or nil for an index outside the table.
    public static func priority(_ index: Int) -> Int32? {
        index >= 0 && index < count ? priorities[index] : nil
    }

    /// The probe id of bracket `index`.
    public static func probeID(_ index: Int) -> Int { Int(ST_P_NF_BRACKET.rawValue) + index }
}
