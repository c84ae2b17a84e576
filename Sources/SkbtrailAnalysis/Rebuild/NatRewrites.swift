import SkbtrailBundle
import SkbtrailEvents

/// One address or port rewrite of a packet, between two of its records.
struct NatRewrite {
    /// Index into the packet's records of the one that shows the new tuple.
    var recordIndex: Int
    var kind: String
    var proto: String
    var before: NatTuple
    var after: NatTuple
    var hasPorts: Bool
    var family: String?
    var hook: String?
    var table: String?
    var ctOrig: String?
    var ctReply: String?
    var text: String
}

/// What NAT changed: the tuple of consecutive records of one packet, compared.
enum NatRewrites {
    /// The rewrites between consecutive records of `records` (one packet's, in order): a changed
    /// destination is a DNAT, a changed source an SNAT (both where both changed). A netfilter bracket
    /// record names the hook, the table that ran before it and the conntrack tuples; a reply direction
    /// (conntrack ESTABLISHED_REPLY) is said to reverse the original's NAT.
    static func of(_ records: [DecodedRecord]) -> [NatRewrite] {
        var rows: [NatRewrite] = []
        var prevBox: HeaderBox?
        var prevIndex = -1
        for (i, r) in records.enumerated() {
            let box = r.hdr
            guard box.value.l3 == .ipv4 || box.value.l3 == .ipv6, !box.value.fragment else { continue }
            defer { prevBox = box; prevIndex = i }
            // the same bytes (most consecutive records): nothing was rewritten
            guard let pb = prevBox, pb !== box else { continue }
            let p = pb.value, h = box.value
            guard p.l3 == h.l3, p.l4 == h.l4 else { continue }
            let before = p.natKey, after = h.natKey
            // the same: nothing rewritten; swapped: a reply at a reused address, not a rewrite
            if before == after || after.isReverse(of: before) { continue }
            var family: String?, hook: String?, table: String?, ctOrig: String?, ctReply: String?
            var reply = false
            if r.role == .netfilter {
                let nf = r.ev.args.nf
                family = KernelNames.family(Int(nf.pf))
                hook = KernelNames.hook(Int(nf.hook))
                if nf.bracket > 0 { table = KernelNames.tableAfter(bracket: Int(nf.bracket) - 1) }
                if r.ev.has(ST_F_CT) {
                    ctOrig = StepText.tuple(nf.ct_orig)
                    ctReply = StepText.tuple(nf.ct_reply)
                    reply = KernelNames.isReply(ctinfo: nf.ctinfo)
                }
            } else if prevIndex >= 0, records[prevIndex].role == .nfVerdict, isNatChain(records[prevIndex].ev.args.fn) {
                // NAT applies the binding a nat chain made right after the chain returns (nf_nat_inet_fn):
                // the record before the change is that chain's verdict (tier 3). Only a connection's first
                // packet runs the nat chains: later ones, and replies, are rewritten with no chain to name.
                let fn = records[prevIndex].ev.args.fn
                family = KernelNames.family(Int(fn.pf))
                hook = KernelNames.hook(Int(fn.hook))
                table = fn.nf & UInt8(ST_FN_NF_TABLE.rawValue) != 0 ? KernelNames.cString(fn.table)
                    : fn.nf & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0 ? KernelNames.tableAfter(bracket: Int(fn.bracket)) : nil
            }
            let suffix = reply ? " (reply: reverses the original direction's NAT)" : ""
            let ports = h.hasPorts
            func side(_ a: IPAddress, _ port: UInt16) -> String {
                guard ports else { return a.text }
                return a.family == 6 ? "[\(a.text)]:\(port)" : "\(a.text):\(port)"
            }
            func row(_ kind: String, _ text: String) -> NatRewrite {
                NatRewrite(recordIndex: i, kind: kind, proto: h.protoName, before: before, after: after, hasPorts: ports,
                           family: family, hook: hook, table: table, ctOrig: ctOrig, ctReply: ctReply, text: text)
            }
            if before.dst != after.dst || (ports && before.dport != after.dport) {
                rows.append(row("DNAT", "DNAT \(side(before.dst, before.dport)) -> \(side(after.dst, after.dport))" + suffix))
            }
            if before.src != after.src || before.sport != after.sport {
                var text = "SNAT \(side(before.src, before.sport)) -> \(side(after.src, after.sport))"
                if !ports && before.sport != after.sport { text += " id \(before.sport) -> \(after.sport)" }
                rows.append(row("SNAT", text + suffix))
            }
        }
        return rows
    }

    /// Whether a table's or chain's verdict is a nat table's: by its name, else its priority (DNAT -100,
    /// SNAT 100), else (no names nor priority: 5.10) a hook where NAT binds (all but FORWARD).
    static func isNatChain(_ fn: st_args_fn) -> Bool {
        guard fn.nf & UInt8(ST_FN_NF_HOOK.rawValue) != 0 else { return false }
        if fn.nf & UInt8(ST_FN_NF_TABLE.rawValue) != 0 { return KernelNames.cString(fn.table) == "nat" }
        if fn.nf & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0 { return fn.priority == -100 || fn.priority == 100 }
        return fn.hook != 2
    }
}
