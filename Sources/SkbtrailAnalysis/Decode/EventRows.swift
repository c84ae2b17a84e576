import GRDB
import SkbtrailBundle
import SkbtrailEvents

/// The columns of `ev` (schema/analysis/1-tables.sql): one row per record, in time order.
enum EventColumn: Int32, TableColumns {
    static let table = "ev"
    case id = 1, ts, probe, probe_name, cpu, pid, tid, comm, netns, ifindex, skb, head, len, mark, `protocol`, l3_from, flags
    case packet_id, step
    case l3, l4, proto, vlan, saddr, daddr, sport, dport, tcp_flags, tcp_seq, tcp_ack, icmp_type, icmp_code, icmp_id
    case icmp_seq, ip_id, ttl, tunnel, inner_tuple
    case reason, location
    case nf_family, nf_hook, nf_bracket, nf_priority, nf_in_ifindex, nf_out_ifindex, ct_info, ct_status, ct_mark, ct_orig
    case ct_reply
    case rc, sk, sk_state, sk_oldstate, detail
}

/// Writes the `ev` rows and counts records per attach point (probe, and family and hook for netfilter
/// brackets) for `probe_events`.
final class EventRows {
    private let rows: RowWriter<EventColumn>
    private let names: BundleNames
    private let texts: TextCache
    private var probeIndex: [Int: Int] = [:]
    private(set) var probeCounts: [(probe: Int, family: Int?, hook: Int?, name: String, n: Int)] = []

    init(_ db: Database, names: BundleNames, texts: TextCache) throws {
        rows = try RowWriter(db)
        self.names = names
        self.texts = texts
    }

    /// The row of record `id`, step `step` of `packet` (nil: a record of no packet).
    func write(_ id: Int, _ r: DecodedRecord, packet: Int?, step: Int) throws {
        let w = rows
        let e = r.ev
        let h = r.hdr.value
        let probe = Int(e.probe)
        let role = e.role
        let nf = role == .netfilter
        let key = nf ? BundleNames.nfKey(probe: probe, family: Int(e.args.nf.pf), hook: Int(e.args.nf.hook)) : probe
        let name: String
        if let i = probeIndex[key] {
            name = probeCounts[i].name
            probeCounts[i].n += 1
        } else {
            name = names.probeName(e)
            probeIndex[key] = probeCounts.count
            probeCounts.append((probe, nf ? Int(e.args.nf.pf) : nil, nf ? Int(e.args.nf.hook) : nil, name, 1))
        }
        w.int(.id, id); w.int(.ts, e.ts); w.int(.probe, probe); w.text(.probe_name, name)
        w.int(.cpu, e.cpu); w.int(.pid, e.pid); w.int(.tid, e.tid); w.text(.comm, texts.comm(e))
        w.int(.netns, e.netns); w.int(.ifindex, e.ifindex); w.int(.skb, e.skb); w.int(.head, e.head)
        w.int(.len, e.len); w.int(.mark, e.mark)
        w.int(.`protocol`, Int(UInt16(bigEndian: e.protocol))); w.int(.l3_from, Int(e.l3_from)); w.int(.flags, Int(e.flags))
        if let packet { w.int(.packet_id, packet); w.int(.step, step) }
        if h.l3 != .none {
            w.text(.l3, h.l3 == .ipv4 ? "ipv4" : h.l3 == .ipv6 ? "ipv6" : "arp")
            if h.l3 == .arp { w.text(.proto, "ARP") } else { w.int(.l4, Int(h.l4)); w.text(.proto, h.protoName) }
            if h.vlan != 0 { w.int(.vlan, Int(h.vlan) - 1) }
            w.nonEmpty(.saddr, texts.address(h.src)); w.nonEmpty(.daddr, texts.address(h.dst))
            if h.hasPorts { w.int(.sport, Int(h.sport)); w.int(.dport, Int(h.dport)) }
            if h.l4 == 6 && h.hasPorts {
                w.text(.tcp_flags, texts.tcpFlags[Int(h.tcpFlags)]); w.int(.tcp_seq, h.tcpSeq); w.int(.tcp_ack, h.tcpAck)
            }
            if h.icmpType >= 0 { w.int(.icmp_type, Int(h.icmpType)); w.int(.icmp_code, Int(h.icmpCode)) }
            if h.icmpID >= 0 { w.int(.icmp_id, Int(h.icmpID)); w.int(.icmp_seq, Int(h.icmpSeq)) }
            if h.ipID >= 0 { w.int(.ip_id, Int(h.ipID)) }
            if h.ttl >= 0 { w.int(.ttl, Int(h.ttl)) }
            w.nonEmpty(.tunnel, h.tunnel); w.nonEmpty(.inner_tuple, h.inner)
        }
        switch role {
        case .free: w.int(.reason, e.args.free.reason); w.int(.location, e.args.free.location)
        case .consume: w.int(.location, e.args.free.location)
        default:
            if e.probeID == ST_P_TCP_SEND_RESET || e.probeID == ST_P_UDP_FAIL_QUEUE_RCV_SKB { w.int(.reason, e.args.sock.reason) }
        }
        // netfilter: from the bracket record, or the last bracket a dropped packet passed
        if nf {
            let a = e.args.nf
            w.int(.nf_family, Int(a.pf)); w.int(.nf_hook, Int(a.hook)); w.int(.nf_bracket, Int(a.bracket))
            w.int(.nf_priority, a.priority); w.int(.nf_in_ifindex, a.in_ifindex); w.int(.nf_out_ifindex, a.out_ifindex)
            if e.has(ST_F_CT) {
                w.int(.ct_info, Int(a.ctinfo)); w.int(.ct_status, a.ct_status); w.int(.ct_mark, a.ct_mark)
                w.text(.ct_orig, texts.tuple(a.ct_orig)); w.text(.ct_reply, texts.tuple(a.ct_reply))
            }
        } else if role == .free && e.has(ST_F_NF_LAST) {
            let a = e.args.free
            w.int(.nf_family, Int(a.nf_pf)); w.int(.nf_hook, Int(a.nf_hook)); w.int(.nf_bracket, Int(a.nf_bracket))
            if let prio = NetfilterBrackets.priority(Int(a.nf_bracket)) { w.int(.nf_priority, prio) }
        }
        switch e.probeID {
        case ST_P_NET_DEV_XMIT, ST_P_XDP_EXCEPTION: w.int(.rc, e.args.dev.rc)
        case ST_P_FIB_TABLE_LOOKUP, ST_P_FIB6_TABLE_LOOKUP, ST_P_NEIGH_EVENT_SEND_DEAD: w.int(.rc, e.args.route.err)
        case ST_P_SKB_COPY_DATAGRAM_IOVEC: w.int(.rc, e.args.misc.a)
        default: break
        }
        if ProbeTable.info(probe)?.args == .socket {
            let s = e.args.sock
            if s.sk != 0 { w.int(.sk, s.sk) }
            w.int(.sk_state, Int(s.state))
            if e.probeID == ST_P_INET_SOCK_SET_STATE { w.int(.sk_oldstate, Int(s.oldstate)) }
        }
        w.text(.detail, texts.detail(e, names: names))
        try rows.run()
    }
}
