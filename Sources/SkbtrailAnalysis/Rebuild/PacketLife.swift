import SkbtrailBundle
import SkbtrailEvents

/// One packet (the life of one sk_buff address) while its records arrive.
final class PacketLife {
    let id: Int
    let skb: UInt64
    var records: [DecodedRecord] = []
    /// Event ids (time-order ranks, from 1) of `records`.
    var ids: [Int32] = []
    /// Index into `records` of the free that ended its life, -1 while none.
    var freeIndex = -1
    var freeTs: UInt64 = 0
    /// The address came back as a new sk_buff before this one's free was seen.
    var superseded = false
    /// Probe of the latest record.
    var lastProbe = 0
    /// skb->head at the latest record that had one.
    var head: UInt64 = 0
    /// Its TCP window was written (tcp_win holds the first step that has the field).
    var windowSeen = false
    /// The namespace where it reached local delivery (an INPUT hook or a socket), 0 while it has not.
    var deliveredNetns: UInt32 = 0
    /// The namespace of the latest record that had one.
    var lastNetns: UInt32 = 0

    init(id: Int, skb: UInt64) {
        self.id = id
        self.skb = skb
        records.reserveCapacity(8)
        ids.reserveCapacity(8)
    }

    /// Takes the record with event id `id`.
    func append(_ record: DecodedRecord, id: Int32) {
        records.append(record)
        ids.append(id)
        if record.ev.head != 0 { head = record.ev.head }
        lastProbe = Int(record.ev.probe)
        if record.ev.netns != 0 { lastNetns = record.ev.netns }
        switch record.ev.role {
        case .netfilter where record.ev.args.nf.hook == KernelNames.Hook.localIn.rawValue, .deliver:
            if record.ev.netns != 0 { deliveredNetns = record.ev.netns }
        case .receive:
            deliveredNetns = 0  // a tunnel's decapsulated packet is received again
        default:
            break
        }
    }
}

/// When an skb address starts a new packet life.
enum PacketLives {
    /// Whether `record` carries the reverse of the tuple of `last` (the open packet's latest record) where
    /// a packet enters a step: a reply at the address of the request, whose free was not traced (TCP's
    /// __kfree_skb; the slab hands the same address and even the same data head to the next skb).
    static func isReply(_ record: DecodedRecord, after last: DecodedRecord?) -> Bool {
        guard let last else { return false }
        let role = record.ev.role
        guard role == .receive || role == .queue || role == .netfilter
                || role == .function && (entryFunctions.contains(record.ev.probe) || receiveFunctions.contains(record.ev.probe)) else { return false }
        let h = record.hdr.value, p = last.hdr.value
        guard h.l3 == .ipv4 || h.l3 == .ipv6, h.l3 == p.l3, h.l4 == p.l4, !h.fragment, !p.fragment else { return false }
        return h.natKey.isReverse(of: p.natKey)
    }

    /// The path functions where IP takes a packet in: receive (ip_rcv, ipv6_rcv) and output (__ip_local_out,
    /// ip_output, ip6_output).
    static let entryFunctions: Set<UInt16> = [UInt16(ST_P_IP_RCV.rawValue), UInt16(ST_P_IPV6_RCV.rawValue), UInt16(ST_P_IP_LOCAL_OUT.rawValue),
                                              UInt16(ST_P_IP_OUTPUT.rawValue), UInt16(ST_P_IP6_OUTPUT.rawValue)]
    static let outputFunctions: Set<UInt16> = [UInt16(ST_P_IP_LOCAL_OUT.rawValue), UInt16(ST_P_IP_OUTPUT.rawValue), UInt16(ST_P_IP6_OUTPUT.rawValue)]
    /// The path functions where a device takes the packet in: a receive without the net tracepoints.
    static let receiveFunctions: Set<UInt16> = [UInt16(ST_P_IP_RCV.rawValue), UInt16(ST_P_IPV6_RCV.rawValue),
                                                UInt16(ST_P_BR_HANDLE_FRAME_FINISH.rawValue)]
    /// The path functions last before a device sends the packet on or up: a crossing (veth, loopback, the
    /// bridge's own receive) may follow.
    static let deviceSideFunctions: Set<Int> = [Int(ST_P_IP_FINISH_OUTPUT2.rawValue), Int(ST_P_IP6_FINISH_OUTPUT2.rawValue),
                                                Int(ST_P_BR_DEV_XMIT.rawValue), Int(ST_P_BR_FORWARD.rawValue),
                                                Int(ST_P_BR_PASS_FRAME_UP.rawValue)]
    /// Path functions whose records carry another data head only for another sk_buff: the entries, and
    /// skb_clone (TCP clones each segment of its send queue, whose skbs it frees untraced).
    static let headFunctions: Set<UInt16> = entryFunctions.union(receiveFunctions).union([UInt16(ST_P_SKB_CLONE.rawValue)])

    /// Whether record `e`, at an address whose open packet last saw probe `lastProbe` with data head
    /// `head` (0: none seen), is a new sk_buff rather than the next step of that packet.
    ///
    /// Only where a packet enters the stack (a receive, the device queue, the first bracket of local
    /// output or prerouting) can a new life start: there, another data head means a new sk_buff whose
    /// predecessor's free was not traced (TCP frees many skbs without a tracepoint). Whatever the head,
    /// so does an entry its previous step cannot lead to: a receive after anything but a transmit, the
    /// queue or XDP (a veth or loopback crossing follows a transmit), or local output after anything but
    /// a device step (a tunnel sends its outer packet from the inner one's transmit).
    ///
    /// A packet delivered locally (it passed an INPUT hook) leaves its namespace only through a device:
    /// a netfilter hook of another namespace is a new sk_buff at its address, seen first at that hook
    /// (a filtered recording starts a reply where NAT gave it a matching address).
    ///
    /// A packet received in one namespace reaches another's device queue only through a transmit and a
    /// receive there: a queue step in another namespace right after a receive is a new sk_buff.
    ///
    /// A path function where IP or a device takes a packet in (`entryFunctions`, `receiveFunctions`, tier
    /// 3), and skb_clone, are entries for the head, the first two for a reply too: they run between the
    /// device steps of one sk_buff. IP output after a socket's step is a new sk_buff, and so is a receive
    /// function, as a receive, after anything but a device's step. So is any path function in another
    /// namespace than the packet's last step, which was not a device's (or the last function before one).
    /// Whether a packet whose last step was probe `lastProbe` may be on the other side of a device now
    /// (a veth or loopback crossing): after a device's step, a receive, XDP, or the last function before
    /// a device sends it.
    static func deviceCrossing(_ lastProbe: Int) -> Bool {
        let last = ProbeTable.role(lastProbe)
        return last.isDeviceOutput || last == .receive || last == .xdp || deviceSideFunctions.contains(lastProbe)
    }

    static func startsNewLife(_ e: st_event, lastProbe: Int, head: UInt64, deliveredNetns: UInt32 = 0,
                              lastNetns: UInt32 = 0) -> Bool {
        let role = e.role
        if role == .queue && ProbeTable.role(lastProbe) == .receive && lastNetns != 0 && e.netns != 0 && e.netns != lastNetns {
            return true
        }
        // a function of the path in another namespace: only a device crossing leads there (a filtered
        // recording sees a packet first where NAT made it match, mid-path)
        if role == .function && lastNetns != 0 && e.netns != 0 && e.netns != lastNetns && !deviceCrossing(lastProbe) {
            return true
        }
        // (in the same namespace it may go on: IPsec transport mode re-injects the decrypted skb at
        // PREROUTING. IPVS sends the one it took at INPUT through OUTPUT: that is taken for a new skb, as
        // a reply after TCP's untraced free is, which is far more common)
        if deliveredNetns != 0 && role == .netfilter && e.netns != 0 && e.netns != deliveredNetns {
            return true
        }
        let firstBracket = role == .netfilter && e.args.nf.bracket == 0
        let outputEntry = firstBracket && e.args.nf.hook == KernelNames.Hook.localOut.rawValue
        let preroutingEntry = firstBracket && e.args.nf.hook == KernelNames.Hook.preRouting.rawValue
        let deviceEntry = role == .receive || role == .queue
        // the functions where IP or a device takes a packet in, and skb_clone (tier 3): another data head
        // there is a new sk_buff, as at the queue
        let functionEntry = role == .function && headFunctions.contains(e.probe)
        guard deviceEntry || outputEntry || preroutingEntry || functionEntry else { return false }
        if e.head != 0 && head != 0 && e.head != head { return true }
        if functionEntry {
            let last = ProbeTable.role(lastProbe)
            // a receive without the net tracepoints: as a receive, only after a device's step
            if receiveFunctions.contains(e.probe) { return !deviceCrossing(lastProbe) }
            // IP output after the packet reached a socket: the socket's next packet (TCP frees untraced)
            return outputFunctions.contains(e.probe) && (last == .deliver || last == .socket)
        }
        let last = ProbeTable.role(lastProbe)
        if role == .receive {
            return !(last == .receive || last.isDeviceOutput || last == .xdp)
        }
        return last.isDeviceOutput ? false : outputEntry
    }
}
