import SkbtrailBundle
import SkbtrailEvents

/// The words of a step: the probe-specific part of a record ("rc 0", "NO_SOCKET at tcp_v4_rcv+0x1a2"),
/// conntrack tuples, task names.
enum StepText {
    /// "TCP 10.0.0.1:80 > 10.0.0.2:4000", "ICMP 10.0.0.1 > 10.0.0.2 id 7".
    static func tuple(_ t: st_ct_tuple) -> String {
        let v6 = t.l3num == 10
        let src = IPAddress(kernelBytes: t.src, v6: v6), dst = IPAddress(kernelBytes: t.dst, v6: v6)
        let sport = UInt16(bigEndian: t.sport), dport = UInt16(bigEndian: t.dport)
        let proto = PacketHeaders.protoName(t.protonum, v6: v6)
        switch t.protonum {
        case 6, 17, 132, 136:
            let a = v6 ? "[\(src.text)]" : src.text, b = v6 ? "[\(dst.text)]" : dst.text
            return "\(proto) \(a):\(sport) > \(b):\(dport)"
        case 1, 58:
            return "\(proto) \(src.text) > \(dst.text) id \(sport)"
        default:
            return "\(proto) \(src.text) > \(dst.text)"
        }
    }

    /// The task name, up to its NUL.
    static func comm(_ c: st_event) -> String {
        var t = c.comm
        return withUnsafeBytes(of: &t) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The probe-specific part of a step, by the record's argument kind.
    static func detail(_ e: st_event, names: BundleNames) -> String {
        let info = ProbeTable.info(Int(e.probe))
        switch info?.args ?? .none {
        case .free:
            let a = e.args.free
            guard info?.role == .free else {
                return a.location == 0 ? "" : "at \(names.symbolText(a.location))"
            }
            // a kernel without drop reasons (before 5.17): a table's DROP verdict names it, as PacketFate does
            let inferred = names.dropReason.isEmpty && e.has(ST_F_NF_FN)
            let reason = inferred ? "NETFILTER_DROP (inferred: this kernel has no drop reasons)" : names.dropReasonName(a.reason)
            var s = "\(reason) at \(names.symbolText(a.location))"
            if e.has(ST_F_NF_FN) {
                let inside = a.nf_fn & UInt8(ST_FN_NF_INSIDE.rawValue) != 0, place = freedIn(a)
                s += " (netfilter \(KernelNames.family(Int(a.nf_pf))) \(KernelNames.hook(Int(a.nf_hook)))"
                    + (!inside ? ": the DROP verdict above)" : place.isEmpty ? ": freed inside the table)" : ", \(place))")
            } else if PacketFate.droppedInNetfilter(e, reasonName: names.dropReason[Int64(a.reason)] ?? ""), names.bracketed(e.netns) {
                s += " (netfilter \(KernelNames.family(Int(a.nf_pf))) \(KernelNames.hook(Int(a.nf_hook))), \(KernelNames.tablePhrase(KernelNames.tableAfter(bracket: Int(a.nf_bracket)))))"
            }
            return s
        case .device:
            let d = e.args.dev
            switch info?.role {
            case .transmitted?: return "rc \(d.rc)"
            case .xdp?: return "\(KernelNames.xdpAction(Int(d.rc))) prog \(d.prog_id)"
            case .qdisc?:
                var k = d.kind
                let kind = withUnsafeBytes(of: &k) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                return "\(kind) \(String(d.handle >> 16, radix: 16)):\(String(d.handle & 0xFFFF, radix: 16)) qlen \(d.qlen)"
            default: return ""
            }
        case .misc:
            let a = e.args.misc
            switch e.probeID {
            case ST_P_SKB_COPY_DATAGRAM_IOVEC: return "len \(a.a)"
            case ST_P_ICMP_SEND: return "type \(a.a) code \(a.b)"
            default: return ""
            }
        case .socket:
            let s = e.args.sock
            var text = sock(s)
            switch e.probeID {
            case ST_P_UDP_FAIL_QUEUE_RCV_SKB:
                text += " rc \(Int32(bitPattern: s.reason))"
            case ST_P_INET_SOCK_SET_STATE:
                text += " \(KernelNames.tcpState(Int(s.oldstate))) -> \(KernelNames.tcpState(Int(s.state)))"
            case ST_P_TCP_SEND_RESET:
                text += " \(KernelNames.tcpState(Int(s.state))) reason \(names.rstReason[Int64(s.reason)] ?? String(s.reason))"
            case ST_P_SOCK_RCVQUEUE_FULL:
                text += " rmem \(s.reason) rcvbuf \(s.rcvbuf)"
            case ST_P_TCP_PROBE, ST_P_TCP_RETRANSMIT_SKB:
                text += " \(KernelNames.tcpState(Int(s.state))) cwnd \(s.snd_cwnd) srtt \(s.srtt_us >> 3)us retrans \(s.total_retrans)"
            default:
                text += " \(KernelNames.tcpState(Int(s.state)))"
            }
            return text
        case .route:
            let r = e.args.route
            let v6 = r.family == 10
            if info?.role == .route {
                return "table \(r.table) \(IPAddress(kernelBytes: r.saddr, v6: v6).text) > \(IPAddress(kernelBytes: r.daddr, v6: v6).text) err \(r.err) oif \(r.oif) iif \(r.iif)"
            }
            var s = "\(IPAddress(kernelBytes: r.daddr, v6: v6).text) \(KernelNames.nudState(Int(r.nud_state)))"
            if e.probeID == ST_P_NEIGH_EVENT_SEND_DEAD { s += " rc \(r.err)" }
            return s
        case .netfilter:
            let nf = e.args.nf
            var s = "\(KernelNames.family(Int(nf.pf))) \(KernelNames.hook(Int(nf.hook))) \(nf.priority)"
            if nf.bracket > 0 { s += " changed by \(KernelNames.tableAfter(bracket: Int(nf.bracket) - 1))" }
            if nf.in_ifindex != 0 { s += " in \(names.ifname(netns: e.netns, ifindex: nf.in_ifindex))" }
            if nf.out_ifindex != 0 { s += " out \(names.ifname(netns: e.netns, ifindex: nf.out_ifindex))" }
            if e.has(ST_F_CT) { s += " ct \(KernelNames.ctInfo(Int(nf.ctinfo)))" }
            if e.mark != 0 { s += " mark 0x\(String(e.mark, radix: 16))" }
            return s
        case .function:
            return info?.role == .function ? pathFunction(e, names: names) : function(e)
        case .none:
            return ""
        }
    }

    /// The table and chain a free happened in, when the function it happened in (tier 3) named them:
    /// "filter/INPUT", "filter", or "".
    static func freedIn(_ a: st_args_free) -> String {
        var place = a.nf_fn & UInt8(ST_FN_NF_TABLE.rawValue) != 0 ? KernelNames.cString(a.nf_table) : ""
        if a.nf_fn & UInt8(ST_FN_NF_CHAIN.rawValue) != 0 { place += "/" + KernelNames.cString(a.nf_chain) }
        return place
    }

    /// A function of the packet's path: "" at its entry; its return value at its exit: "= 0",
    /// "= -113 (EHOSTUNREACH)", a drop reason's name (route input returns one since 6.13), a netfilter
    /// verdict for conntrack and NAT ("= ACCEPT"), "= clone 0xffff..." for skb_clone.
    static func pathFunction(_ e: st_event, names: BundleNames) -> String {
        let f = e.args.fn
        guard f.nf & UInt8(ST_FN_RET.rawValue) != 0 else { return "" }
        return pathReturn(probe: e.probeID, ret: f.ret, dropReasons: names.dropReason, reasonsReturned: names.routeReturnsDropReasons)
    }

    /// The text of a path function's return value. `reasonsReturned`: the kernel's route input returns
    /// a drop reason, and its source validation one negated, instead of an errno (6.13+).
    static func pathReturn(probe: st_probe, ret: Int64, dropReasons: [Int64: String], reasonsReturned: Bool) -> String {
        switch probe {
        case ST_P_SKB_CLONE:
            return ret == 0 ? "= NULL (no clone)" : "= clone \(KernelNames.returnValue(ret))"
        case ST_P_NF_CONNTRACK_IN, ST_P_NF_NAT_MANIP_PKT:
            return "= \(KernelNames.nfVerdict(ret))"
        case ST_P_IP_ROUTE_INPUT_NOREF where reasonsReturned && ret > 0:
            return "= \(dropReasons[ret] ?? "reason \(ret)")"
        case ST_P_FIB_VALIDATE_SOURCE where reasonsReturned && ret < 0 && ret > -65536:
            return "= -\(dropReasons[-ret] ?? "reason \(-ret)")"
        default:
            return "= \(KernelNames.returnValue(ret))"
        }
    }

    /// A kernel function's exit: "ipv4 INPUT filter/INPUT prio 0 = DROP" for a netfilter table or chain.
    static func function(_ e: st_event) -> String {
        let f = e.args.fn
        guard ProbeTable.role(Int(e.probe)) == .nfVerdict else { return "= \(f.ret)" }
        var parts: [String] = []
        if f.nf & UInt8(ST_FN_NF_HOOK.rawValue) != 0 {
            parts.append("\(KernelNames.family(Int(f.pf))) \(KernelNames.hook(Int(f.hook)))")
        }
        var place = f.nf & UInt8(ST_FN_NF_TABLE.rawValue) != 0 ? KernelNames.cString(f.table) : ""
        if f.nf & UInt8(ST_FN_NF_CHAIN.rawValue) != 0 { place += "/" + KernelNames.cString(f.chain) }
        if !place.isEmpty { parts.append(place) }
        if f.nf & UInt8(ST_FN_NF_PRIORITY.rawValue) != 0 { parts.append("prio \(f.priority)") }
        parts.append("= \(KernelNames.nfVerdict(f.ret))")
        return parts.joined(separator: " ")
    }

    /// "10.0.0.1:80 > 10.0.0.2:4000" for a socket's addresses, "sk" when it has none.
    static func sock(_ s: st_args_sock) -> String {
        guard s.family == 2 || s.family == 10 else { return "sk" }
        let v6 = s.family == 10
        let a = IPAddress(kernelBytes: s.saddr, v6: v6).text, b = IPAddress(kernelBytes: s.daddr, v6: v6).text
        return v6 ? "[\(a)]:\(s.sport) > [\(b)]:\(s.dport)" : "\(a):\(s.sport) > \(b):\(s.dport)"
    }
}
