import SkbtrailBundle
import SkbtrailEvents

/// Text that repeats across millions of records, built once: addresses, task names, conntrack
/// tuples and netfilter step details.
final class TextCache {
    struct Bytes40: Hashable { var a, b, c, d, e: UInt64 }
    struct NFKey: Hashable {
        var probe: UInt16, pf: UInt8, hook: UInt8, bracket: UInt8, ctinfo: UInt8, flags: UInt8
        var netns: UInt32, inIf: UInt32, outIf: UInt32, mark: UInt32
    }
    private var addresses: [IPAddress: String] = [:]
    private var comms: [Bytes40: String] = [:]
    private var tuples: [Bytes40: String] = [:]
    private var nfDetails: [NFKey: String] = [:]
    let tcpFlags: [String] = (0..<256).map { PacketHeaders.tcpFlagsText(UInt8($0)) }

    /// The flow part of a tuple text: what `PacketHeaders.tupleText` depends on for TCP and UDP.
    struct FlowKey: Hashable {
        var l3: UInt8, l4: UInt8, flags: UInt8, vlan: UInt16
        var src: IPAddress, dst: IPAddress, sport: UInt16, dport: UInt16
    }
    private var tuples4: [FlowKey: String] = [:]

    /// `h.tupleText`, built once per flow (and TCP flags) for TCP and UDP packets, where a flood repeats it.
    func tuple(_ h: PacketHeaders) -> String {
        guard (h.l3 == .ipv4 || h.l3 == .ipv6), h.l4 == 6 || h.l4 == 17, !h.fragment, h.tunnel.isEmpty else { return h.tupleText }
        let key = FlowKey(l3: h.l3.rawValue, l4: h.l4, flags: h.l4 == 6 ? h.tcpFlags : 0, vlan: h.vlan, src: h.src, dst: h.dst,
                          sport: h.sport, dport: h.dport)
        if let s = tuples4[key] { return s }
        let s = h.tupleText
        if tuples4.count < 1_000_000 { tuples4[key] = s }
        return s
    }

    func address(_ a: IPAddress) -> String {
        if a.family == 0 { return "" }
        if let s = addresses[a] { return s }
        let s = a.text
        if addresses.count < 1_000_000 { addresses[a] = s }
        return s
    }

    func comm(_ e: st_event) -> String {
        var c = e.comm
        let key = withUnsafeBytes(of: &c) { p in
            Bytes40(a: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self), c: 0, d: 0, e: 0)
        }
        if let s = comms[key] { return s }
        let s = StepText.comm(e)
        comms[key] = s
        return s
    }

    func tuple(_ t: st_ct_tuple) -> String {
        var copy = t
        let key = withUnsafeBytes(of: &copy) { p in
            Bytes40(a: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    c: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self), d: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
                    e: p.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        }
        if let s = tuples[key] { return s }
        let s = StepText.tuple(t)
        if tuples.count < 1_000_000 { tuples[key] = s }
        return s
    }

    /// The detail of the high-volume probes whose text depends on a few fields only.
    struct SimpleKey: Hashable { var probe: UInt16; var a: UInt64; var b: UInt64; var netns: UInt32 = 0 }
    private var simpleDetails: [SimpleKey: String] = [:]

    func detail(_ e: st_event, names: BundleNames) -> String {
        var simple: SimpleKey?
        switch e.role {
        case .free where e.args.free.nf_fn == 0: // names of a table and chain: rare, not cached
            let f = e.args.free
            simple = SimpleKey(probe: e.probe, a: f.location,
                               b: UInt64(f.reason) | UInt64(e.flags & UInt8(ST_F_NF_LAST.rawValue | ST_F_NF_FN.rawValue)) << 32
                                   | UInt64(f.nf_pf) << 40 | UInt64(f.nf_hook) << 48 | UInt64(f.nf_bracket) << 56,
                               netns: e.has(ST_F_NF_LAST) ? e.netns : 0) // the text says whether netns was bracketed
        case .consume:
            simple = SimpleKey(probe: e.probe, a: e.args.free.location, b: 0)
        case .transmitted, .xdp:
            simple = SimpleKey(probe: e.probe, a: UInt64(UInt32(bitPattern: e.args.dev.rc)), b: UInt64(e.args.dev.prog_id))
        case .function where e.probeID != ST_P_SKB_CLONE: // an entry's text is empty, an exit's its return value
            simple = SimpleKey(probe: e.probe, a: UInt64(bitPattern: e.args.fn.ret), b: UInt64(e.args.fn.nf))
        case .deliver where e.probeID == ST_P_SKB_COPY_DATAGRAM_IOVEC:
            simple = SimpleKey(probe: e.probe, a: UInt64(UInt32(bitPattern: e.args.misc.a)), b: 0)
        default:
            break
        }
        if let key = simple {
            if let s = simpleDetails[key] { return s }
            let s = StepText.detail(e, names: names)
            if simpleDetails.count < 1_000_000 { simpleDetails[key] = s }
            return s
        }
        guard e.role == .netfilter else { return StepText.detail(e, names: names) }
        let nf = e.args.nf
        let key = NFKey(probe: e.probe, pf: nf.pf, hook: nf.hook, bracket: nf.bracket, ctinfo: nf.ctinfo,
                        flags: e.flags & UInt8(ST_F_CT.rawValue), netns: e.netns, inIf: nf.in_ifindex,
                        outIf: nf.out_ifindex, mark: e.mark)
        if let s = nfDetails[key] { return s }
        let s = StepText.detail(e, names: names)
        if nfDetails.count < 1_000_000 { nfDetails[key] = s }
        return s
    }
}
