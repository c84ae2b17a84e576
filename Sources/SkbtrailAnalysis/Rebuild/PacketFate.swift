import SkbtrailBundle
import SkbtrailEvents

/// What the recording says of its completeness: the events the kernel could not hand over.
struct LostEvents {
    var total: Int64 = 0
    /// CPUs that lost events, ascending.
    var cpus: [Int] = []
}

/// Where a packet's life ended, as far as its records say.
struct PacketOutcome: Equatable {
    var fate = "incomplete"
    var incomplete: String?
    var dropReason: Int64?
    var dropReasonName: String?
    var dropLocation: UInt64?
    var dropSymbol: String?
    var nfFamily: String?
    var nfHook: String?
    var nfTable: String?
    var forwarded = false
    var endNetns: UInt32 = 0
    var endIfindex: UInt32 = 0
    var netnsCount = 0
    /// The first record's headers that have an L3 header: the packet's tuple.
    var tupleHeaders: PacketHeaders?

    static func == (a: PacketOutcome, b: PacketOutcome) -> Bool {
        a.fate == b.fate && a.incomplete == b.incomplete && a.dropReasonName == b.dropReasonName
            && a.nfFamily == b.nfFamily && a.nfHook == b.nfHook && a.nfTable == b.nfTable && a.forwarded == b.forwarded
            && a.endNetns == b.endNetns && a.netnsCount == b.netnsCount
    }
}

/// A packet's fate: dropped (with the kernel's reason and, inside netfilter, the hook and table), or how
/// far it got before it was freed (delivered to a socket, transmitted, forwarded, consumed), or
/// incomplete when its free was not recorded.
enum PacketFate {
    /// How far a packet got before its free, for the fate of a packet that was not dropped.
    enum Stage: String { case none = "consumed", delivered, transmitted, forwarded }

    /// The outcome of a packet whose records are `records`, freed by `records[freeIndex]` (-1: no free
    /// was seen), `superseded` when its address was taken by a later packet before that.
    static func outcome(_ records: [DecodedRecord], freeIndex: Int, superseded: Bool, names: BundleNames,
                        lost: LostEvents) -> PacketOutcome {
        var out = PacketOutcome()
        var stage = Stage.none
        var netns: [UInt32] = []  // a packet crosses a few at most
        records.withUnsafeBufferPointer { r in
            for i in r.indices {
                // fields read through the buffer: a record is not copied
                let ns = r[i].ev.netns
                if ns != 0 {
                    if !netns.contains(ns) { netns.append(ns) }
                    out.endNetns = ns
                    out.endIfindex = r[i].ev.ifindex
                }
                if out.tupleHeaders == nil && r[i].hdr.value.l3 != .none { out.tupleHeaders = r[i].hdr.value }
                if i == freeIndex { break }
                switch ProbeTable.role(Int(r[i].ev.probe)) {
                case .receive:
                    // received again after leaving a device: a veth or loopback crossing starts a new hop
                    if stage == .transmitted || stage == .forwarded { stage = .none }
                case .deliver:
                    stage = .delivered
                case .transmitted:
                    if r[i].ev.args.dev.rc == 0 { stage = out.forwarded && stage == .forwarded ? .forwarded : .transmitted }
                case .netfilter, .nfVerdict:
                    let isBracket = r[i].ev.role == .netfilter
                    let fn = r[i].ev.args.fn
                    // a table or chain that dropped the packet took it no further
                    // a table that let the packet on (ACCEPT) took it to its hook; DROP, STOLEN, QUEUE did not
                    guard isBracket || (fn.nf & UInt8(ST_FN_NF_HOOK.rawValue) != 0 && fn.ret & Int64(ST_NF_VERDICT_MASK) == Int64(ST_NF_ACCEPT)) else { break }
                    switch KernelNames.Hook(rawValue: isBracket ? r[i].ev.args.nf.hook : fn.hook) {
                    case .localIn?: stage = .delivered
                    case .forward?: stage = .forwarded; out.forwarded = true
                    default: break
                    }
                default:
                    break
                }
            }
        }
        out.netnsCount = netns.count
        if freeIndex >= 0 && freeIndex < records.count {
            let free = records[freeIndex].ev
            if free.role == .free {
                let reason = Int64(free.args.free.reason)
                let name = names.dropReasonName(free.args.free.reason)
                if name == "SKB_CONSUMED" {
                    out.fate = stage.rawValue
                } else {
                    out.fate = "dropped"
                    out.dropReason = reason
                    out.dropReasonName = name
                    out.dropLocation = free.args.free.location
                    out.dropSymbol = names.symbolText(free.args.free.location)
                    if free.has(ST_F_NF_FN) {
                        // a table's or chain's DROP verdict (tier 3): its record names the table
                        out.nfFamily = KernelNames.family(Int(free.args.free.nf_pf))
                        out.nfHook = KernelNames.hook(Int(free.args.free.nf_hook))
                        // freed inside the chain (it names itself), or after the verdict of one
                        let known = free.args.free.nf_fn
                        out.nfTable = known & UInt8(ST_FN_NF_TABLE.rawValue) != 0
                            ? KernelNames.cString(free.args.free.nf_table)
                            : verdictTable(records, before: freeIndex)
                                ?? (known & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0 ? KernelNames.tableAfter(bracket: Int(free.args.free.nf_bracket)) : nil)
                        if names.dropReason.isEmpty {
                            // a kernel without drop reasons (before 5.17): the table's DROP verdict says it
                            out.dropReasonName = "NETFILTER_DROP"
                        }
                    } else if droppedInNetfilter(free, reasonName: name), names.bracketed(free.netns)
                        && bracketNetns(records, before: freeIndex).map({ free.netns == 0 || $0 == free.netns }) ?? true {
                        out.nfFamily = KernelNames.family(Int(free.args.free.nf_pf))
                        out.nfHook = KernelNames.hook(Int(free.args.free.nf_hook))
                        out.nfTable = KernelNames.tableAfter(bracket: Int(free.args.free.nf_bracket))
                    }
                }
            } else {
                out.fate = stage.rawValue
            }
            if free.netns != 0 { out.endNetns = free.netns; out.endIfindex = free.ifindex }
            if lost.total > 0 {
                out.incomplete = "events may be missing: \(lost.total) events were lost during the recording"
            }
        } else if superseded && stage != .none && lost.total == 0 {
            // freed without a tracepoint (TCP's __kfree_skb, defer-free): its last stage is its fate
            out.fate = stage.rawValue
            out.incomplete = "its free was not traced; the address was reused by a later packet"
        } else if stage == .delivered && lost.total == 0 {
            // Local delivery reached and nothing dropped it: UDP frees a read datagram with
            // __consume_stateless_skb and TCP with __kfree_skb, neither of which has a tracepoint.
            out.fate = stage.rawValue
            out.incomplete = "reached local delivery; its free was not traced (the socket layer frees it without a tracepoint)"
        } else {
            out.fate = "incomplete"
            out.incomplete = superseded && lost.total == 0
                ? "its free was not traced; the address was reused by a later packet"
                : lost.total > 0
                ? "no free seen: \(lost.total) events were lost during the recording (CPU \(lost.cpus.map(String.init).joined(separator: ", ")))"
                : "no free seen before the recording ended"
        }
        return out
    }

    /// The namespace of the last netfilter bracket recorded before `index`: a free's bracket tells the
    /// hook the drop was in only when it is of the free's namespace. An skb that crossed a veth into a
    /// namespace whose hooks were not bracketed (not recorded) still carries the brackets it passed in
    /// the namespace before.
    static func bracketNetns(_ records: [DecodedRecord], before index: Int) -> UInt32? {
        var i = index - 1
        while i >= 0 {
            if ProbeTable.role(Int(records[i].ev.probe)) == .netfilter { return records[i].ev.netns }
            i -= 1
        }
        return nil
    }

    /// The table of the last DROP verdict recorded before `index` (ipt_do_table, nft_do_chain), when its
    /// record has the name.
    static func verdictTable(_ records: [DecodedRecord], before index: Int) -> String? {
        var i = index - 1
        while i >= 0 {
            let e = records[i].ev
            if e.role == .nfVerdict && e.args.fn.ret & Int64(ST_NF_VERDICT_MASK) == Int64(ST_NF_DROP) {
                return e.args.fn.nf & UInt8(ST_FN_NF_TABLE.rawValue) != 0 ? KernelNames.cString(e.args.fn.table) : nil
            }
            i -= 1
        }
        return nil
    }

    /// A free carries the last netfilter bracket its skb passed; the drop happened inside that hook
    /// only when a later bracket of it did not run, or when the kernel says NETFILTER_DROP.
    static func droppedInNetfilter(_ e: st_event, reasonName: String) -> Bool {
        guard e.has(ST_F_NF_LAST) else { return false }
        return Int(e.args.free.nf_bracket) < NetfilterBrackets.count - 1 || reasonName == "NETFILTER_DROP"
    }
}
