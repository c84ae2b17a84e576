import GRDB
import SkbtrailBundle
import SkbtrailEvents

/// The columns of the `pkt` virtual table: one row per packet (PacketStore packs them).
enum PacketColumn: Int32, CaseIterable {
    case id = 1, skb, head, first_event, last_event, first_ts, last_ts, events, fate, incomplete
    case drop_reason, drop_reason_name, drop_location, drop_symbol, nf_family, nf_hook, nf_table, end_netns, end_ifindex
    case l3, proto, saddr, daddr, sport, dport, tuple, parent_id, clone_inferred, forwarded, netns_count, nat_count, records
}

/// The columns of `nat`: one row per rewrite.
enum NatColumn: Int32, TableColumns {
    static let table = "nat"
    case id = 1, packet_id, event_id, ts, kind, proto
    case before_saddr, before_sport, before_daddr, before_dport, after_saddr, after_sport, after_daddr, after_dport
    case nf_family, nf_hook, nf_table, netns, ifindex, ct_orig, ct_reply, text
}

enum TCPPacketColumn: Int32, TableColumns {
    static let table = "tcp_pkt"
    case packet_id = 1, saddr, sport, daddr, dport, dropped
}

enum CloneColumn: Int32, TableColumns {
    static let table = "clone_edge"
    case parent_id = 1, child_id, inferred, why
}

enum ProbeEventsColumn: Int32, TableColumns {
    static let table = "probe_events"
    case probe = 1, family, hook, name, events
}

enum ChunkColumn: Int32, TableColumns {
    static let table = "bundle_chunk"
    case id = 1, first_ts, last_ts, records, raw_size, stored_size, codec
}

/// Writes the rows of a finished packet: `pkt` and its `nat` rewrites.
final class PacketRows {
    private let packets: PacketStore
    private let tcp: RowWriter<TCPPacketColumn>
    private let rewrites: RowWriter<NatColumn>
    private var natID = 0
    private let texts: TextCache

    init(_ db: Database, texts: TextCache) throws {
        self.texts = texts
        packets = try PacketStore(db)
        tcp = try RowWriter(db)
        rewrites = try RowWriter(db)
    }

    /// Writes the last packets (after every `write`).
    func finish() throws { try packets.finish() }

    func write(_ p: PacketLife, _ o: PacketOutcome, _ nats: [NatRewrite]) throws {
        guard let first = p.records.first?.ev, let last = p.records.last?.ev else { return }
        let w = packets
        w.int(.id, p.id); w.int(.skb, p.skb); w.int(.head, first.head)
        w.int(.first_event, Int(p.ids[0])); w.int(.last_event, Int(p.ids[p.ids.count - 1]))
        w.int(.first_ts, first.ts); w.int(.last_ts, last.ts); w.int(.events, p.records.count)
        w.text(.fate, o.fate); w.text(.incomplete, o.incomplete)
        w.int(.drop_reason, o.dropReason); w.text(.drop_reason_name, o.dropReasonName)
        w.int(.drop_location, o.dropLocation.map { Int64(bitPattern: $0) }); w.text(.drop_symbol, o.dropSymbol)
        w.text(.nf_family, o.nfFamily); w.text(.nf_hook, o.nfHook); w.text(.nf_table, o.nfTable)
        if o.endNetns != 0 { w.int(.end_netns, Int64(o.endNetns)) }; if o.endIfindex != 0 { w.int(.end_ifindex, Int64(o.endIfindex)) }
        if let h = o.tupleHeaders {
            w.text(.l3, h.l3 == .ipv4 ? "ipv4" : h.l3 == .ipv6 ? "ipv6" : "arp"); w.text(.proto, h.protoName)
            let src = texts.address(h.src), dst = texts.address(h.dst)
            if !src.isEmpty { w.text(.saddr, src) }; if !dst.isEmpty { w.text(.daddr, dst) }
            if h.hasPorts { w.int(.sport, Int(h.sport)); w.int(.dport, Int(h.dport)) }
            w.text(.tuple, texts.tuple(h))
            if h.l4 == 6 && h.hasPorts {
                tcp.int(.packet_id, p.id); tcp.text(.saddr, src); tcp.int(.sport, Int(h.sport))
                tcp.text(.daddr, dst); tcp.int(.dport, Int(h.dport)); tcp.int(.dropped, o.fate == "dropped" ? 1 : 0)
                try tcp.run()
            }
        } else {
            w.text(.tuple, first.protocol == 0 ? "no protocol (a local skb: netlink, vsock, ...)" : "ethertype 0x" + String(UInt16(bigEndian: first.protocol), radix: 16))
        }
        // parent_id, clone_inferred: set by the clone inference at the end
        w.int(.forwarded, o.forwarded ? 1 : 0); w.int(.netns_count, o.netnsCount); w.int(.nat_count, nats.count)
        var numbers = [UInt32](repeating: 0, count: p.records.count)
        for i in p.records.indices { numbers[i] = p.records[i].number }
        try numbers.withUnsafeBufferPointer { try w.add(id: p.id, records: $0) }

        let x = rewrites
        for n in nats {
            natID += 1
            let e = p.records[n.recordIndex].ev
            x.int(.id, natID); x.int(.packet_id, p.id); x.int(.event_id, Int(p.ids[n.recordIndex])); x.int(.ts, e.ts)
            x.text(.kind, n.kind); x.text(.proto, n.proto)
            x.text(.before_saddr, n.before.src.text); x.text(.before_daddr, n.before.dst.text)
            x.text(.after_saddr, n.after.src.text); x.text(.after_daddr, n.after.dst.text)
            if n.hasPorts {
                x.int(.before_sport, Int(n.before.sport)); x.int(.before_dport, Int(n.before.dport))
                x.int(.after_sport, Int(n.after.sport)); x.int(.after_dport, Int(n.after.dport))
            }
            x.text(.nf_family, n.family); x.text(.nf_hook, n.hook); x.text(.nf_table, n.table)
            x.int(.netns, e.netns); x.int(.ifindex, e.ifindex); x.text(.ct_orig, n.ctOrig); x.text(.ct_reply, n.ctReply)
            x.text(.text, n.text)
            try x.run()
        }
    }
}
