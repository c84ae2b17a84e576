import SkbtrailBundle
import SkbtrailEvents

/// The names a bundle gives to the numbers in its records: probes (and each netfilter attach point),
/// drop and reset reasons, kernel symbols, interfaces. Records never need this build's tables to be
/// named; these win over them.
struct BundleNames {
    var probe: [Int: String] = [:]
    /// Netfilter attach points: probe | family << 8 | hook << 16.
    var nfProbe: [Int: String] = [:]
    var dropReason: [Int64: String] = [:]
    var rstReason: [Int64: String] = [:]
    var symbol: [Int64: String] = [:]
    /// netns << 32 | ifindex.
    var ifname: [Int64: String] = [:]

    init() {}

    /// Reads them from `reader`'s metadata tables.
    init(_ reader: BundleReader) throws {
        for p in try reader.probes() {
            if ProbeTable.isNetfilterBracket(p.probe), let f = p.family, let h = p.hook {
                nfProbe[BundleNames.nfKey(probe: p.probe, family: f, hook: h)] = p.name
            } else if probe[p.probe] == nil {
                probe[p.probe] = p.name
            }
        }
        dropReason = try reader.enumNames(table: "drop_reason")
        rstReason = try reader.enumNames(table: "rst_reason")
        for s in try reader.symbols() {
            symbol[s.address] = s.offset == 0 ? s.name : "\(s.name)+0x\(String(s.offset, radix: 16))"
        }
        for i in try reader.interfaces() { ifname[i.netns << 32 | Int64(i.ifindex)] = i.name }
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
