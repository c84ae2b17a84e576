import Foundation
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// The pure decisions of the rebuild (Sources/SkbtrailAnalysis/Rebuild), each a table of cases.
@Suite struct RebuildTests {
    static let rx = Int(ST_P_NETIF_RECEIVE_SKB.rawValue)
    static let rxNapi = Int(ST_P_NAPI_GRO_RECEIVE_ENTRY.rawValue)
    static let queue = Int(ST_P_NET_DEV_QUEUE.rawValue)
    static let startXmit = Int(ST_P_NET_DEV_START_XMIT.rawValue)
    static let xmit = Int(ST_P_NET_DEV_XMIT.rawValue)
    static let kfree = Int(ST_P_KFREE_SKB.rawValue)
    static let consume = Int(ST_P_CONSUME_SKB.rawValue)
    static let copy = Int(ST_P_SKB_COPY_DATAGRAM_IOVEC.rawValue)
    static let enqueue = Int(ST_P_QDISC_ENQUEUE.rawValue)
    static let xdp = Int(ST_P_XDP_EXCEPTION.rawValue)
    static let fib = Int(ST_P_FIB_TABLE_LOOKUP.rawValue)
    static let tcpProbe = Int(ST_P_TCP_PROBE.rawValue)
    static let setState = Int(ST_P_INET_SOCK_SET_STATE.rawValue)
    static let sendReset = Int(ST_P_TCP_SEND_RESET.rawValue)
    static let ipRcv = Int(ST_P_IP_RCV.rawValue)
    static let ipOutput = Int(ST_P_IP_OUTPUT.rawValue)
    static let ipForward = Int(ST_P_IP_FORWARD.rawValue)
    static let fibValidate = Int(ST_P_FIB_VALIDATE_SOURCE.rawValue)
    static let tcpRcv = Int(ST_P_TCP_RCV_STATE_PROCESS.rawValue)
    static let finishOutput2 = Int(ST_P_IP_FINISH_OUTPUT2.rawValue)
    static let localDeliver = Int(ST_P_IP_LOCAL_DELIVER_FINISH.rawValue)
    static let skbClone = Int(ST_P_SKB_CLONE.rawValue)
    static let headA: UInt64 = 0xffff_8880_0000_1000
    static let headB: UInt64 = 0xffff_8880_0000_2000

    /// A netfilter bracket record.
    static func bracket(_ index: Int, hook: KernelNames.Hook, ts: UInt64 = 1, head: UInt64 = headA) -> st_event {
        var e = event(probe: NetfilterBrackets.probeID(index), ts: ts, skb: 0x100, head: head)
        e.args.nf.pf = 2
        e.args.nf.hook = hook.rawValue
        e.args.nf.bracket = UInt8(index)
        e.args.nf.priority = NetfilterBrackets.priorities[index]
        return e
    }

    // MARK: packet lives

    struct LifeCase: CustomTestStringConvertible, Sendable {
        var name: String
        var probe: Int
        var hook: KernelNames.Hook? = nil  // a netfilter bracket 0 record at this hook
        var head: UInt64 = headA
        var lastProbe: Int
        var lastHead: UInt64 = headA
        var deliveredNetns: UInt32 = 0  // the open packet reached local delivery there
        var lastNetns: UInt32 = 0       // the namespace of its latest record
        var bracketIndex = 0
        var netns: UInt32 = 0
        var newLife: Bool
        var testDescription: String { name }
    }

    static let lifeCases: [LifeCase] = [
        .init(name: "a receive after a transmit: a veth crossing, same skb", probe: rx, lastProbe: xmit, newLife: false),
        .init(name: "a receive after the qdisc", probe: rx, lastProbe: enqueue, newLife: false),
        .init(name: "a receive after XDP", probe: rxNapi, lastProbe: xdp, newLife: false),
        .init(name: "a receive after a socket step: a new skb at the address", probe: rx, lastProbe: copy, newLife: true),
        .init(name: "a receive after a route lookup", probe: rx, lastProbe: fib, newLife: true),
        .init(name: "a receive with another data head", probe: rx, head: headB, lastProbe: xmit, newLife: true),
        .init(name: "the device queue after a netfilter step", probe: queue, lastProbe: NetfilterBrackets.probeID(7), newLife: false),
        .init(name: "the device queue with another data head", probe: queue, head: headB, lastProbe: NetfilterBrackets.probeID(7), newLife: true),
        .init(name: "local output after a transmit: a tunnel's outer packet is the same skb", probe: 0, hook: .localOut,
              lastProbe: startXmit, newLife: false),
        .init(name: "local output after a socket step", probe: 0, hook: .localOut, lastProbe: copy, newLife: true),
        .init(name: "prerouting after a receive", probe: 0, hook: .preRouting, lastProbe: rx, newLife: false),
        .init(name: "prerouting with another data head", probe: 0, hook: .preRouting, head: headB, lastProbe: rx, newLife: true),
        .init(name: "a free is never a new life", probe: kfree, head: headB, lastProbe: copy, newLife: false),
        .init(name: "a head not known before", probe: rx, lastProbe: xmit, lastHead: 0, newLife: false),
        .init(name: "a forward bracket is not an entry", probe: 0, hook: .forward, lastProbe: copy, newLife: false),
        // nat-router's packet 12: a reply first seen at PREROUTING -50 (where the de-NAT gave it the
        // filtered address) at the address of a SYN-ACK delivered in another namespace
        .init(name: "a later prerouting bracket after local delivery", probe: 0, hook: .preRouting,
              lastProbe: NetfilterBrackets.probeID(0), deliveredNetns: 7, bracketIndex: 4, netns: 9, newLife: true),
        .init(name: "a later INPUT bracket of the namespace that delivered it", probe: 0, hook: .localIn,
              lastProbe: NetfilterBrackets.probeID(0), deliveredNetns: 7, bracketIndex: 4, netns: 7, newLife: false),
        .init(name: "local output after INPUT: a new skb (closed-port's UDP datagram after the RST)", probe: 0, hook: .localOut,
              lastProbe: NetfilterBrackets.probeID(0), deliveredNetns: 7, bracketIndex: 0, netns: 7, newLife: true),
        .init(name: "IPsec transport mode: prerouting after INPUT, the decrypted skb re-injected", probe: 0, hook: .preRouting,
              lastProbe: NetfilterBrackets.probeID(4), deliveredNetns: 7, bracketIndex: 0, netns: 7, newLife: false),
        .init(name: "an INPUT bracket of another namespace after local delivery", probe: 0, hook: .localIn,
              lastProbe: NetfilterBrackets.probeID(4), deliveredNetns: 7, bracketIndex: 0, netns: 9, newLife: true),
        // a UDP flood recorded with four tracepoints: a datagram received on lo in one namespace, and
        // seconds later a new skb at its address queued on a veth of another
        .init(name: "the device queue of another namespace after a receive", probe: queue, lastProbe: rx, lastNetns: 7, netns: 9, newLife: true),
        .init(name: "the device queue of the same namespace after a receive (forwarding)", probe: queue, lastProbe: rx, lastNetns: 7, netns: 7, newLife: false),
        // the functions of the packet's path (tier 3)
        .init(name: "ip_rcv after a receive", probe: ipRcv, lastProbe: rx, newLife: false),
        .init(name: "ip_rcv with another data head", probe: ipRcv, head: headB, lastProbe: rx, newLife: true),
        .init(name: "ip_forward with another data head: not where IP takes a packet in", probe: ipForward, head: headB, lastProbe: ipRcv, newLife: false),
        .init(name: "ip_output after a socket step: the socket's next packet", probe: ipOutput, lastProbe: copy, newLife: true),
        .init(name: "ip_output after ip_forward: the same packet on", probe: ipOutput, lastProbe: ipForward, newLife: false),
        // nat-router-fn on 6.1: a reply first seen at fib_validate_source in the router, at the address of a
        // SYN-ACK the client's TCP took
        .init(name: "a function in another namespace after a socket's function", probe: fibValidate, lastProbe: tcpRcv,
              lastNetns: 7, netns: 9, newLife: true),
        .init(name: "a function in another namespace after a transmit: a veth crossing", probe: ipRcv, lastProbe: xmit,
              lastNetns: 7, netns: 9, newLife: false),
        .init(name: "a function in the same namespace", probe: ipForward, lastProbe: fibValidate, lastNetns: 7, netns: 7, newLife: false),
        // recorded without the net tracepoints: a veth crossing goes from ip_finish_output2 to ip_rcv
        .init(name: "ip_rcv in another namespace after ip_finish_output2: a veth crossing", probe: ipRcv, lastProbe: finishOutput2,
              lastNetns: 7, netns: 9, newLife: false),
        .init(name: "ip_rcv after local delivery: a new skb, as a receive would be", probe: ipRcv, lastProbe: localDeliver,
              lastNetns: 7, netns: 7, newLife: true),
        // TCP's send queue: each segment's skb is cloned, and freed untraced
        .init(name: "skb_clone with another data head: the next skb of the send queue", probe: skbClone, head: headB, lastProbe: skbClone,
              newLife: true),
        .init(name: "skb_clone with the same head: the same skb cloned again (a retransmission)", probe: skbClone, lastProbe: skbClone,
              newLife: false),
    ]

    /// A reply carries the request's tuple reversed: never a NAT rewrite (NAT changes one side, or both
    /// to other addresses), so a reply at the request's address starts a new life.
    @Test func aSwappedTupleIsAReplyNotNAT() {
        let a = IPAddress(family: 4, hi: 0x0A00_0001, lo: 0), b = IPAddress(family: 4, hi: 0x0A00_0002, lo: 0)
        let c = IPAddress(family: 4, hi: 0x0A00_0003, lo: 0)
        let request = NatTuple(src: a, dst: b, sport: 40000, dport: 80)
        #expect(NatTuple(src: b, dst: a, sport: 80, dport: 40000).isReverse(of: request))
        #expect(!NatTuple(src: a, dst: c, sport: 40000, dport: 8080).isReverse(of: request), "a DNAT")
        #expect(!NatTuple(src: c, dst: a, sport: 80, dport: 40000).isReverse(of: request), "a reply after SNAT on the way")
        #expect(!NatTuple(src: a, dst: a, sport: 5, dport: 5).isReverse(of: NatTuple(src: a, dst: a, sport: 5, dport: 5)), "to itself")
    }

    @Test(arguments: lifeCases)
    func whenAnAddressStartsANewLife(_ c: LifeCase) {
        var e = c.hook.map { RebuildTests.bracket(c.bracketIndex, hook: $0, head: c.head) } ?? event(probe: c.probe, ts: 1, skb: 0x100, head: c.head)
        e.head = c.head
        e.netns = c.netns
        #expect(PacketLives.startsNewLife(e, lastProbe: c.lastProbe, head: c.lastHead, deliveredNetns: c.deliveredNetns, lastNetns: c.lastNetns) == c.newLife)
    }

    // MARK: fates

    static func record(_ e: st_event) -> DecodedRecord { DecodedRecord(ev: e, hdr: HeaderTable.none, bytesHash: 0) }

    static func free(reason: UInt32, nf: (index: Int, hook: KernelNames.Hook)? = nil) -> st_event {
        var e = event(probe: kfree, ts: 9, skb: 0x100)
        e.args.free.reason = reason
        e.args.free.location = 0xffff_ffff_8100_0000
        if let nf {
            e.flags |= UInt8(ST_F_NF_LAST.rawValue)
            e.args.free.nf_pf = 2
            e.args.free.nf_hook = nf.hook.rawValue
            e.args.free.nf_bracket = UInt8(nf.index)
        }
        return e
    }

    static func xmitted(rc: Int32) -> st_event {
        var e = event(probe: xmit, ts: 3, skb: 0x100)
        e.args.dev.rc = rc
        return e
    }

    static var names: BundleNames {
        var n = BundleNames()
        n.dropReason = [2: "SKB_CONSUMED", 3: "NO_SOCKET", 4: "NETFILTER_DROP"]
        n.symbol = [Int64(bitPattern: 0xffff_ffff_8100_0000): "tcp_v4_rcv+0x1a2"]
        return n
    }

    struct FateCase: CustomTestStringConvertible, Sendable {
        var name: String
        var records: [st_event]
        var freed = true
        var superseded = false
        var lost: Int64 = 0
        var fate: String
        var incomplete: String? = nil
        var netfilter: String? = nil
        var testDescription: String { name }
    }

    static let fateCases: [FateCase] = [
        .init(name: "read by a socket, then consumed", records: [event(probe: rx, ts: 1, skb: 0x100), event(probe: copy, ts: 2, skb: 0x100),
                                                                   event(probe: consume, ts: 3, skb: 0x100)], fate: "delivered"),
        .init(name: "taken by TCP (tcp_probe), freed with SKB_CONSUMED",
              records: [event(probe: rx, ts: 1, skb: 0x100), event(probe: tcpProbe, ts: 2, skb: 0x100), free(reason: 2)], fate: "delivered"),
        .init(name: "transmitted", records: [event(probe: queue, ts: 1, skb: 0x100), xmitted(rc: 0), event(probe: consume, ts: 4, skb: 0x100)],
              fate: "transmitted"),
        .init(name: "a failed transmit is not transmitted", records: [event(probe: queue, ts: 1, skb: 0x100), xmitted(rc: 16),
                                                                       event(probe: consume, ts: 4, skb: 0x100)], fate: "consumed"),
        .init(name: "forwarded, then transmitted", records: [bracket(0, hook: .forward), xmitted(rc: 0), event(probe: consume, ts: 4, skb: 0x100)],
              fate: "forwarded"),
        .init(name: "transmitted over a veth, received, and read there",
              records: [xmitted(rc: 0), event(probe: rx, ts: 4, skb: 0x100), bracket(0, hook: .localIn, ts: 5), event(probe: consume, ts: 6, skb: 0x100)],
              fate: "delivered"),
        .init(name: "dropped with a reason", records: [event(probe: rx, ts: 1, skb: 0x100), free(reason: 3)], fate: "dropped"),
        .init(name: "dropped inside netfilter: hook and table from the last bracket",
              records: [bracket(4, hook: .localIn), free(reason: 4, nf: (4, .localIn))], fate: "dropped", netfilter: "ipv4 INPUT filter"),
        .init(name: "a drop after the last bracket of a hook is not netfilter's",
              records: [bracket(7, hook: .localIn), free(reason: 3, nf: (7, .localIn))], fate: "dropped"),
        .init(name: "no free, delivered: the socket layer frees it untraced",
              records: [event(probe: rx, ts: 1, skb: 0x100), event(probe: copy, ts: 2, skb: 0x100)], freed: false, fate: "delivered",
              incomplete: "reached local delivery; its free was not traced (the socket layer frees it without a tracepoint)"),
        .init(name: "superseded after a transmit", records: [event(probe: queue, ts: 1, skb: 0x100), xmitted(rc: 0)], freed: false,
              superseded: true, fate: "transmitted", incomplete: "its free was not traced; the address was reused by a later packet"),
        .init(name: "never freed", records: [event(probe: rx, ts: 1, skb: 0x100)], freed: false, fate: "incomplete",
              incomplete: "no free seen before the recording ended"),
        .init(name: "never freed, events lost", records: [event(probe: rx, ts: 1, skb: 0x100)], freed: false, lost: 5, fate: "incomplete",
              incomplete: "no free seen: 5 events were lost during the recording (CPU 1)"),
        .init(name: "freed, events lost: a fate, but maybe missing steps", records: [event(probe: rx, ts: 1, skb: 0x100), free(reason: 3)],
              lost: 5, fate: "dropped", incomplete: "events may be missing: 5 events were lost during the recording"),
    ]

    @Test(arguments: fateCases)
    func packetFate(_ c: FateCase) {
        let records = c.records.map(RebuildTests.record)
        let o = PacketFate.outcome(records, freeIndex: c.freed ? records.count - 1 : -1, superseded: c.superseded,
                                   names: RebuildTests.names, lost: LostEvents(total: c.lost, cpus: c.lost > 0 ? [1] : []))
        #expect(o.fate == c.fate)
        #expect(o.incomplete == c.incomplete)
        let nf = o.nfHook.map { "\(o.nfFamily ?? "") \($0) \(o.nfTable ?? "")" }
        #expect(nf == c.netfilter)
        if c.fate == "dropped" { #expect(o.dropSymbol == "tcp_v4_rcv+0x1a2") }
    }

    // MARK: clones

    struct CloneCase: CustomTestStringConvertible, Sendable {
        var name: String
        /// (first ts, last ts, head, first hash, last hash)
        var packets: [(UInt64, UInt64, UInt64, UInt64, UInt64)]
        var parents: [Int32]
        var testDescription: String { name }
    }

    static let cloneCases: [CloneCase] = [
        .init(name: "overlapping lives on one head: the later is a clone", packets: [(1, 10, headA, 7, 7), (5, 6, headA, 7, 7)], parents: [-1, 0]),
        .init(name: "another head: no clone", packets: [(1, 10, headA, 7, 7), (5, 6, headB, 7, 7)], parents: [-1, -1]),
        .init(name: "after the parent's end with its bytes: a clone read later", packets: [(1, 10, headA, 7, 7), (20, 30, headA, 7, 8)],
              parents: [-1, 0]),
        .init(name: "after the parent's end with other bytes: the buffer was reused", packets: [(1, 10, headA, 7, 7), (20, 30, headA, 9, 9)],
              parents: [-1, -1]),
        .init(name: "a clone of a clone hangs from the root", packets: [(1, 10, headA, 7, 7), (2, 12, headA, 7, 7), (11, 13, headA, 7, 7)],
              parents: [-1, 0, 0]),
        .init(name: "no head: nothing to infer", packets: [(1, 10, 0, 0, 0), (2, 3, 0, 0, 0)], parents: [-1, -1]),
    ]

    @Test(arguments: cloneCases)
    func cloneInference(_ c: CloneCase) {
        let summaries = c.packets.map { p in
            CloneInference.Summary(firstTs: p.0, lastTs: p.1, head: p.2, lastHash: p.4, firstHash: p.3)
        }
        let (parents, why) = CloneInference.infer(summaries)
        #expect(parents == c.parents)
        #expect(why.count == c.parents.filter { $0 >= 0 }.count)
    }

    /// skb_clone's return value names a clone: it takes precedence over an inference, and is not inferred.
    @Test func clonesNamedBySkbCloneAreKnown() {
        let inferred: (parent: [Int32], why: [Int: String]) = ([-1, 0, -1, 2], [1: "shares data head", 3: "shares data head"])
        let (parent, why, isInferred) = CloneInference.merge(inferred, known: [2: 1, 1: 0])
        #expect(parent == [-1, 0, 0, 0], "a known clone of a clone hangs from the root: \(parent)")
        #expect(isInferred == [false, false, false, true])
        #expect(why[2] == "skb_clone of packet 2, a clone of packet 1, returned it" && why[1] == "skb_clone of packet 1 returned it"
                && why[3] == "shares data head", "\(why)")
        let none = CloneInference.merge(inferred, known: [:])
        #expect(none.parent == inferred.parent && none.inferred == [false, true, false, true])
        // nonsense from a damaged bundle: out of range, or a packet its own parent
        let bad = CloneInference.merge(inferred, known: [9: 0, 0: 0, 1: -4])
        #expect(bad.parent == inferred.parent)
    }

    @Test func cloneSummaryKeepsEveryHeadInOrder() {
        var a = event(probe: RebuildTests.rx, ts: 1, skb: 1, head: RebuildTests.headA)
        var b = a; b.ts = 2; b.head = RebuildTests.headB
        var c = a; c.ts = 3
        a.head = RebuildTests.headA; c.head = RebuildTests.headA
        let records = [DecodedRecord(ev: a, hdr: HeaderTable.none, bytesHash: 11), DecodedRecord(ev: b, hdr: HeaderTable.none, bytesHash: 22),
                       DecodedRecord(ev: c, hdr: HeaderTable.none, bytesHash: 33)]
        let s = CloneInference.summary(records)
        #expect(s.head == RebuildTests.headA && s.lastHash == 33 && s.firstHash == 11 && s.firstTs == 1 && s.lastTs == 3)
        #expect(s.moreHeads.count == 1 && s.moreHeads.first?.head == RebuildTests.headB && s.moreHeads.first?.lastHash == 22)
    }

    // MARK: NAT

    static func tcp(sport: UInt16, dport: UInt16) -> [UInt8] {
        [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)] + [UInt8](repeating: 0, count: 8)
            + [0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
    }

    static func natRecord(_ e: st_event, _ bytes: [UInt8]) -> DecodedRecord {
        let headers = bytes.withUnsafeBytes { PacketHeaders.parse($0, ethertype: 0x0800) }
        return DecodedRecord(ev: e, hdr: HeaderBox(headers), bytesHash: 1)
    }

    struct NatCase: CustomTestStringConvertible, Sendable {
        var name: String
        var before: (src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16)
        var after: (src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16)
        var texts: [String]
        var testDescription: String { name }
    }

    static let natCases: [NatCase] = [
        .init(name: "DNAT of address and port", before: ([10, 0, 0, 1], [10, 0, 0, 254], 40000, 8080),
              after: ([10, 0, 0, 1], [172, 30, 0, 3], 40000, 80), texts: ["DNAT 10.0.0.254:8080 -> 172.30.0.3:80"]),
        .init(name: "SNAT (masquerade) of address and port", before: ([10, 0, 0, 1], [10, 0, 1, 2], 40000, 80),
              after: ([10, 0, 1, 254], [10, 0, 1, 2], 61000, 80), texts: ["SNAT 10.0.0.1:40000 -> 10.0.1.254:61000"]),
        .init(name: "both at once", before: ([10, 0, 0, 1], [10, 0, 0, 254], 40000, 8080),
              after: ([10, 0, 1, 254], [172, 30, 0, 3], 40000, 80),
              texts: ["DNAT 10.0.0.254:8080 -> 172.30.0.3:80", "SNAT 10.0.0.1:40000 -> 10.0.1.254:40000"]),
        .init(name: "nothing changed", before: ([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), after: ([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), texts: []),
    ]

    @Test(arguments: natCases)
    func natRewrites(_ c: NatCase) {
        let first = RebuildTests.natRecord(RebuildTests.bracket(0, hook: .preRouting, ts: 1),
                                           ipv4(src: c.before.src, dst: c.before.dst, proto: 6, l4: RebuildTests.tcp(sport: c.before.sport, dport: c.before.dport)))
        var e = RebuildTests.bracket(4, hook: .preRouting, ts: 2)
        e.flags |= UInt8(ST_F_CT.rawValue)
        e.args.nf.ctinfo = 2  // NEW
        let second = RebuildTests.natRecord(e, ipv4(src: c.after.src, dst: c.after.dst, proto: 6,
                                                     l4: RebuildTests.tcp(sport: c.after.sport, dport: c.after.dport)))
        let rows = NatRewrites.of([first, second])
        #expect(rows.map(\.text) == c.texts)
        for r in rows {
            #expect(r.recordIndex == 1)
            #expect(r.hook == "PREROUTING")
            #expect(r.table == "nat", "the table between bracket 3 and bracket 4 is nat (DNAT)")
            #expect(r.ctOrig != nil)
        }
    }

    @Test func natOfAReplySaysItReversesTheOriginal() {
        let before = RebuildTests.natRecord(RebuildTests.bracket(0, hook: .preRouting, ts: 1),
                                            ipv4(src: [172, 30, 0, 3], dst: [10, 0, 0, 1], proto: 6, l4: RebuildTests.tcp(sport: 80, dport: 40000)))
        var e = RebuildTests.bracket(4, hook: .preRouting, ts: 2)
        e.flags |= UInt8(ST_F_CT.rawValue)
        e.args.nf.ctinfo = 3  // ESTABLISHED_REPLY
        let after = RebuildTests.natRecord(e, ipv4(src: [10, 0, 0, 254], dst: [10, 0, 0, 1], proto: 6, l4: RebuildTests.tcp(sport: 8080, dport: 40000)))
        #expect(NatRewrites.of([before, after]).map(\.text) == ["SNAT 172.30.0.3:80 -> 10.0.0.254:8080 (reply: reverses the original direction's NAT)"])
    }

    // MARK: TCP connections

    static func sock(_ probe: Int, sk: UInt64, sport: UInt16, dport: UInt16, state: UInt8 = 1, oldstate: UInt8 = 0, netns: UInt32 = 1) -> st_event {
        var e = event(probe: probe, ts: 1, skb: 0, netns: netns)
        e.args.sock.sk = sk
        e.args.sock.family = 2
        e.args.sock.sport = sport
        e.args.sock.dport = dport
        e.args.sock.state = state
        e.args.sock.oldstate = oldstate
        withUnsafeMutableBytes(of: &e.args.sock.saddr) { $0.copyBytes(from: [10, 0, 0, 1]) }
        withUnsafeMutableBytes(of: &e.args.sock.daddr) { $0.copyBytes(from: [10, 0, 0, 2]) }
        return e
    }

    struct TCPCase: CustomTestStringConvertible, Sendable {
        var name: String
        var records: [st_event]
        var connections: [Int?]
        var testDescription: String { name }
    }

    static let tcpCases: [TCPCase] = [
        .init(name: "one socket, one connection", records: [sock(setState, sk: 1, sport: 0, dport: 80, state: 2, oldstate: 7),
                                                            sock(tcpProbe, sk: 1, sport: 40000, dport: 80)], connections: [0, 0]),
        .init(name: "a socket closed and reused: a new connection",
              records: [sock(tcpProbe, sk: 1, sport: 40000, dport: 80), sock(setState, sk: 1, sport: 40000, dport: 80, state: 7, oldstate: 1),
                        sock(tcpProbe, sk: 1, sport: 40001, dport: 80)], connections: [0, 0, 1]),
        .init(name: "the same address with another 4-tuple: a new connection",
              records: [sock(tcpProbe, sk: 1, sport: 40000, dport: 80), sock(tcpProbe, sk: 1, sport: 40002, dport: 80)], connections: [0, 1]),
        .init(name: "the same address in another namespace: another connection",
              records: [sock(tcpProbe, sk: 1, sport: 40000, dport: 80), sock(tcpProbe, sk: 1, sport: 40000, dport: 80, netns: 2)],
              connections: [0, 1]),
        .init(name: "a reset without a socket and no TCP header: none",
              records: [sock(sendReset, sk: 0, sport: 0, dport: 0)], connections: [nil]),
    ]

    @Test(arguments: tcpCases)
    func tcpConnections(_ c: TCPCase) {
        var conns = TCPConnections()
        #expect(c.records.map { conns.assign($0, headers: PacketHeaders()) } == c.connections)
    }

    @Test func aResetWithoutASocketIsKeyedByThePacketsTuple() {
        var conns = TCPConnections()
        let bytes = ipv4(src: [10, 0, 0, 2], dst: [10, 0, 0, 1], proto: 6, l4: RebuildTests.tcp(sport: 40000, dport: 81))
        let h = bytes.withUnsafeBytes { PacketHeaders.parse($0, ethertype: 0x0800) }
        let e = RebuildTests.sock(RebuildTests.sendReset, sk: 0, sport: 0, dport: 0)
        #expect(conns.assign(e, headers: h) == 0)
        #expect(conns.assign(e, headers: h) == 0)
        #expect(conns.all.first.map { "\($0.laddr.text):\($0.lport) \($0.raddr.text):\($0.rport)" } == "10.0.0.1:81 10.0.0.2:40000")
    }

    // MARK: the probe table

    /// A path function's return value in words: an errno's name, an address in hex, else the number.
    @Test func returnValuesInWords() {
        let reasons: [Int64: String] = [2: "NO_SOCKET", 91: "IP_INVALID_SOURCE", 93: "IP_RPFILTER"]
        typealias T = StepText
        #expect(T.pathReturn(probe: ST_P_FIB_VALIDATE_SOURCE, ret: -18, dropReasons: [:], reasonsReturned: false) == "= -18 (EXDEV)")
        #expect(T.pathReturn(probe: ST_P_FIB_VALIDATE_SOURCE, ret: -93, dropReasons: reasons, reasonsReturned: true) == "= -IP_RPFILTER",
                "6.13+: a negated drop reason")
        #expect(T.pathReturn(probe: ST_P_IP_ROUTE_INPUT_NOREF, ret: 91, dropReasons: reasons, reasonsReturned: true) == "= IP_INVALID_SOURCE")
        #expect(T.pathReturn(probe: ST_P_IP_ROUTE_INPUT_NOREF, ret: -113, dropReasons: reasons, reasonsReturned: false) == "= -113 (EHOSTUNREACH)")
        #expect(T.pathReturn(probe: ST_P_IP_ROUTE_INPUT_NOREF, ret: 0, dropReasons: reasons, reasonsReturned: true) == "= 0")
        #expect(T.pathReturn(probe: ST_P_NF_NAT_MANIP_PKT, ret: 1, dropReasons: [:], reasonsReturned: false) == "= ACCEPT")
        #expect(T.pathReturn(probe: ST_P_SKB_CLONE, ret: 0, dropReasons: [:], reasonsReturned: false) == "= NULL (no clone)")
        #expect(KernelNames.returnValue(0) == "0")
        #expect(KernelNames.returnValue(-113) == "-113 (EHOSTUNREACH)")
        #expect(KernelNames.returnValue(-18) == "-18 (EXDEV)")
        #expect(KernelNames.returnValue(-4000) == "-4000")
        #expect(KernelNames.returnValue(Int64(bitPattern: 0xffff_8880_065e_2a00)) == "0xffff8880065e2a00")
        #expect(KernelNames.returnValue(Int64.min) == "\(Int64.min)")
        // the path functions' rows: the skb among the arguments, and a group --probes names
        for p in ProbeTable.pathFunctions {
            let path = try? #require(ProbeTable.path(p.id))
            #expect(path.map { $0.skbArgument >= 1 && $0.skbArgument <= $0.arguments && $0.arguments <= 12 } == true, "\(p.name): \(String(describing: path))")
            #expect(p.group.hasSuffix("-fn") && p.group != "nf-fn", "\(p.name) in \(p.group)")
        }
        #expect(ProbeTable.path(Int(ST_P_NFT_DO_CHAIN.rawValue)) == nil, "the netfilter verdicts are not path functions")
    }

    @Test func everyProbeHasARoleAndEveryRoleAName() {
        for p in ProbeTable.all {
            #expect(p.role != .other, "\(p.name) has a role this build does not know")
            #expect(ProbeTable.info(p.id)?.name == p.name)
        }
        #expect(Set(ProbeTable.all.map(\.id)).count == ProbeTable.all.count, "probe ids are unique")
        #expect(Set(ProbeTable.all.map(\.name)).count == ProbeTable.all.count, "probe names are unique")
        for i in 0..<NetfilterBrackets.count { #expect(ProbeTable.isNetfilterBracket(NetfilterBrackets.probeID(i))) }
        #expect(!ProbeTable.isNetfilterBracket(NetfilterBrackets.probeID(NetfilterBrackets.count)))
        #expect(NetfilterBrackets.priorities == NetfilterBrackets.priorities.sorted(), "brackets are lowest first")
        #expect(NetfilterBrackets.tablesAfter.count == NetfilterBrackets.count)
    }
}
