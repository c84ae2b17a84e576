import SkbtrailEvents

/// A tier-1 tracepoint the recorder knows: its BPF programs are `btf_<name>` and `raw_<name>`.
struct TracepointProbe {
    var name: String
    var id: UInt32
    var group: String
}

/// Every tracepoint in bpf/skbtrail.bpf.c, with the probe id its records carry.
let tracepointProbes: [TracepointProbe] = [
    .init(name: "netif_receive_skb", id: ST_P_NETIF_RECEIVE_SKB.rawValue, group: "net"),
    .init(name: "netif_rx", id: ST_P_NETIF_RX.rawValue, group: "net"),
    .init(name: "napi_gro_receive_entry", id: ST_P_NAPI_GRO_RECEIVE_ENTRY.rawValue, group: "net"),
    .init(name: "net_dev_queue", id: ST_P_NET_DEV_QUEUE.rawValue, group: "net"),
    .init(name: "net_dev_start_xmit", id: ST_P_NET_DEV_START_XMIT.rawValue, group: "net"),
    .init(name: "net_dev_xmit", id: ST_P_NET_DEV_XMIT.rawValue, group: "net"),
    .init(name: "kfree_skb", id: ST_P_KFREE_SKB.rawValue, group: "skb"),
    .init(name: "consume_skb", id: ST_P_CONSUME_SKB.rawValue, group: "skb"),
    .init(name: "skb_copy_datagram_iovec", id: ST_P_SKB_COPY_DATAGRAM_IOVEC.rawValue, group: "skb"),
    .init(name: "tcp_retransmit_skb", id: ST_P_TCP_RETRANSMIT_SKB.rawValue, group: "tcp"),
    .init(name: "tcp_send_reset", id: ST_P_TCP_SEND_RESET.rawValue, group: "tcp"),
    .init(name: "tcp_receive_reset", id: ST_P_TCP_RECEIVE_RESET.rawValue, group: "tcp"),
    .init(name: "tcp_bad_csum", id: ST_P_TCP_BAD_CSUM.rawValue, group: "tcp"),
    .init(name: "tcp_probe", id: ST_P_TCP_PROBE.rawValue, group: "tcp"),
    .init(name: "inet_sock_set_state", id: ST_P_INET_SOCK_SET_STATE.rawValue, group: "sock"),
    .init(name: "sock_rcvqueue_full", id: ST_P_SOCK_RCVQUEUE_FULL.rawValue, group: "sock"),
    .init(name: "udp_fail_queue_rcv_skb", id: ST_P_UDP_FAIL_QUEUE_RCV_SKB.rawValue, group: "udp"),
    .init(name: "icmp_send", id: ST_P_ICMP_SEND.rawValue, group: "icmp"),
    .init(name: "fib_table_lookup", id: ST_P_FIB_TABLE_LOOKUP.rawValue, group: "fib"),
    .init(name: "fib6_table_lookup", id: ST_P_FIB6_TABLE_LOOKUP.rawValue, group: "fib"),
    .init(name: "neigh_update", id: ST_P_NEIGH_UPDATE.rawValue, group: "neigh"),
    .init(name: "neigh_event_send_dead", id: ST_P_NEIGH_EVENT_SEND_DEAD.rawValue, group: "neigh"),
    .init(name: "qdisc_enqueue", id: ST_P_QDISC_ENQUEUE.rawValue, group: "qdisc"),
    .init(name: "qdisc_dequeue", id: ST_P_QDISC_DEQUEUE.rawValue, group: "qdisc"),
    .init(name: "xdp_exception", id: ST_P_XDP_EXCEPTION.rawValue, group: "xdp"),
]

/// Probe groups for --probes, like nettrace's --trace.
let probeGroups = Set(tracepointProbes.map(\.group)).union(["netfilter"])

let nfHookNames = ["prerouting", "input", "forward", "output", "postrouting"]
let nfFamilies: [(pf: UInt32, name: String)] = [(2, "ipv4"), (10, "ipv6")]
