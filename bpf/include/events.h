/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * events.h: the only contract between skbtrail's BPF programs and Swift.
 *
 * Every record the kernel side emits is a `struct st_event` followed by `snap` bytes of the packet,
 * taken from its network (L3) header, padded to a multiple of 8. The recorder copies records into the
 * bundle byte for byte; the analyzer decodes them. Fields are fixed-width and little-endian (host order
 * of the recording machine, recorded in the bundle) unless a comment says "network order".
 *
 * Change rules: fields are only appended inside reserved space or behind a new record type, and every
 * change of a field's meaning or of a record's size bumps ST_FORMAT_VERSION together with the analyzer's
 * decoder (docs/bundle-format.md). A new probe (a new id, with a new args member inside the reserved
 * bytes) or a new flag bit is not a format change: a reader that does not know a probe names it from the
 * bundle's probe table and gives its records no role, and ignores flags it does not know.
 */
#ifndef SKBTRAIL_EVENTS_H
#define SKBTRAIL_EVENTS_H

#if defined(__bpf__)
/* the BPF side gets __u8..__u64 from vmlinux_min.h */
#elif defined(__linux__)
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int32_t __s32;
typedef int64_t __s64;
#endif

/* Bundle format version this header describes. */
#define ST_FORMAT_VERSION 2

/* Default and largest number of packet bytes captured from the network header. */
#define ST_SNAPLEN_DEFAULT 128
#define ST_SNAPLEN_MAX 256

/* Record types: the first field of every record. Readers skip and count types they do not know. */
enum st_record_type {
	ST_REC_EVENT = 1, /* struct st_event + packet bytes */
};

/*
 * The probe table: every probe's id, name, group, how it attaches, which member of union st_args its
 * records fill, and its role in a packet's life. Written once, here; the enum below, the recorder's
 * --probes, the analyzer's names and every decision the decoder takes on a probe are built from it
 * (bpf/shim/events.c exposes it to Swift as st_probe_table).
 *
 * Ids are stable across versions: a bundle stores the probes it attached with their ids and names, so a
 * reader never needs this list to name them. New probes take new numbers, at the end of their group.
 *
 * X(ENUM, name, id, group, kind, args, role)
 */
#define ST_PROBE_TABLE(X)                                                                          \
	/* net: device layer */                                                                    \
	X(NETIF_RECEIVE_SKB, netif_receive_skb, 1, net, TRACEPOINT, NONE, RECEIVE)                \
	X(NETIF_RX, netif_rx, 2, net, TRACEPOINT, NONE, RECEIVE)                                   \
	X(NAPI_GRO_RECEIVE_ENTRY, napi_gro_receive_entry, 3, net, TRACEPOINT, NONE, RECEIVE)      \
	X(NET_DEV_QUEUE, net_dev_queue, 4, net, TRACEPOINT, NONE, QUEUE)                           \
	X(NET_DEV_START_XMIT, net_dev_start_xmit, 5, net, TRACEPOINT, NONE, TRANSMIT)             \
	X(NET_DEV_XMIT, net_dev_xmit, 6, net, TRACEPOINT, DEV, TRANSMITTED)                        \
	/* skb: lifetime */                                                                        \
	X(KFREE_SKB, kfree_skb, 10, skb, TRACEPOINT, FREE, FREE)                                   \
	X(CONSUME_SKB, consume_skb, 11, skb, TRACEPOINT, FREE, CONSUME)                            \
	X(SKB_COPY_DATAGRAM_IOVEC, skb_copy_datagram_iovec, 12, skb, TRACEPOINT, MISC, DELIVER)   \
	/* tcp and sockets */                                                                      \
	X(TCP_RETRANSMIT_SKB, tcp_retransmit_skb, 20, tcp, TRACEPOINT, SOCK, SOCKET)               \
	X(TCP_SEND_RESET, tcp_send_reset, 21, tcp, TRACEPOINT, SOCK, SOCKET)                       \
	X(TCP_RECEIVE_RESET, tcp_receive_reset, 22, tcp, TRACEPOINT, SOCK, SOCKET)                 \
	X(TCP_BAD_CSUM, tcp_bad_csum, 23, tcp, TRACEPOINT, NONE, SOCKET)                           \
	X(TCP_PROBE, tcp_probe, 24, tcp, TRACEPOINT, SOCK, DELIVER)                                \
	X(INET_SOCK_SET_STATE, inet_sock_set_state, 25, sock, TRACEPOINT, SOCK, SOCKET)            \
	X(SOCK_RCVQUEUE_FULL, sock_rcvqueue_full, 26, sock, TRACEPOINT, SOCK, SOCKET)              \
	/* udp, icmp */                                                                            \
	X(UDP_FAIL_QUEUE_RCV_SKB, udp_fail_queue_rcv_skb, 30, udp, TRACEPOINT, SOCK, SOCKET)      \
	X(ICMP_SEND, icmp_send, 31, icmp, TRACEPOINT, MISC, ICMP)                                  \
	/* routing and neighbours */                                                               \
	X(FIB_TABLE_LOOKUP, fib_table_lookup, 40, fib, TRACEPOINT, ROUTE, ROUTE)                   \
	X(FIB6_TABLE_LOOKUP, fib6_table_lookup, 41, fib, TRACEPOINT, ROUTE, ROUTE)                 \
	X(NEIGH_UPDATE, neigh_update, 42, neigh, TRACEPOINT, ROUTE, NEIGH)                         \
	X(NEIGH_EVENT_SEND_DEAD, neigh_event_send_dead, 43, neigh, TRACEPOINT, ROUTE, NEIGH)       \
	/* qdisc, xdp */                                                                           \
	X(QDISC_ENQUEUE, qdisc_enqueue, 50, qdisc, TRACEPOINT, DEV, QDISC)                         \
	X(QDISC_DEQUEUE, qdisc_dequeue, 51, qdisc, TRACEPOINT, DEV, QDISC)                         \
	X(XDP_EXCEPTION, xdp_exception, 52, xdp, TRACEPOINT, DEV, XDP)                             \
	/* netfilter BPF links: one id per priority bracket (ST_P_NF_BRACKET + index, see below) */ \
	X(NF_BRACKET, nf_bracket, 64, netfilter, NETFILTER, NF, NETFILTER)                         \
	/* tier 3, kernel functions: netfilter tables and chains, with their verdict */            \
	X(IPT_DO_TABLE, ipt_do_table, 100, nf-fn, FUNCTION, FN, NF_VERDICT)                        \
	X(IP6T_DO_TABLE, ip6t_do_table, 101, nf-fn, FUNCTION, FN, NF_VERDICT)                      \
	X(NFT_DO_CHAIN, nft_do_chain, 102, nf-fn, FUNCTION, FN, NF_VERDICT)                        \
	/* tier 3, kernel functions on the packet's path (ST_FN_PATH_TABLE, below) */               \
	ST_FN_PATH_TABLE(ST_FN_PATH_PROBE, X)

/*
 * Tier 3, the packet's way through the stack's functions, nettrace's lifecycle view: ip and ipv6
 * receive, forward, local deliver and output; conntrack and NAT; route input and source validation; the
 * bridge; tcp, udp and icmp receive; skb_clone. Not attached unless --probes names them (a group, a function, or
 * `functions`): each is a record per packet per call, where a tracepoint gives one per layer.
 *
 * A function records at its entry with the packet (programs fentry_<name>, or kprobe_<name>), or, where
 * its return value says what happened (a route's error, skb_clone's new skb), at its exit with it
 * (fexit_<name>, or the pair kprobe_<name> and kretprobe_<name>); only functions that never free the skb
 * record at the exit. `skb` is the argument (from 1) that holds the sk_buff, `nargs` how many arguments
 * the function has (fexit finds the return value after them; the recorder checks both against the
 * kernel's BTF before it attaches).
 *
 * Y(X, ENUM, name, id, group, skb, nargs, at: ENTRY or EXIT)
 */
#define ST_FN_PATH_TABLE(Y, X)                                                                     \
	/* ipv4 */                                                                                 \
	Y(X, IP_RCV, ip_rcv, 110, ip-fn, 1, 4, ENTRY)                                              \
	Y(X, IP_RCV_FINISH, ip_rcv_finish, 111, ip-fn, 3, 3, ENTRY)                                \
	Y(X, IP_LOCAL_DELIVER, ip_local_deliver, 112, ip-fn, 1, 1, ENTRY)                          \
	Y(X, IP_LOCAL_DELIVER_FINISH, ip_local_deliver_finish, 113, ip-fn, 3, 3, ENTRY)            \
	Y(X, IP_FORWARD, ip_forward, 114, ip-fn, 1, 1, ENTRY)                                      \
	Y(X, IP_FORWARD_FINISH, ip_forward_finish, 115, ip-fn, 3, 3, ENTRY)                        \
	Y(X, IP_LOCAL_OUT, __ip_local_out, 116, ip-fn, 3, 3, ENTRY)                                \
	Y(X, IP_OUTPUT, ip_output, 117, ip-fn, 3, 3, ENTRY)                                        \
	Y(X, IP_FINISH_OUTPUT2, ip_finish_output2, 118, ip-fn, 3, 3, ENTRY)                        \
	/* conntrack and NAT: the verdict of the lookup, and of each rewrite NAT applies */           \
	Y(X, NF_CONNTRACK_IN, nf_conntrack_in, 120, ct-fn, 1, 2, EXIT)                             \
	Y(X, NF_NAT_MANIP_PKT, nf_nat_manip_pkt, 121, ct-fn, 1, 4, EXIT)                           \
	/* ipv6 */                                                                                 \
	Y(X, IPV6_RCV, ipv6_rcv, 130, ipv6-fn, 1, 4, ENTRY)                                        \
	Y(X, IP6_RCV_FINISH, ip6_rcv_finish, 131, ipv6-fn, 3, 3, ENTRY)                            \
	Y(X, IP6_INPUT, ip6_input, 132, ipv6-fn, 1, 1, ENTRY)                                      \
	Y(X, IP6_FORWARD, ip6_forward, 133, ipv6-fn, 1, 1, ENTRY)                                  \
	Y(X, IP6_OUTPUT, ip6_output, 134, ipv6-fn, 3, 3, ENTRY)                                    \
	Y(X, IP6_FINISH_OUTPUT2, ip6_finish_output2, 135, ipv6-fn, 3, 3, ENTRY)                    \
	/* routing: the error a lookup or the source check returns (0: routed) */                  \
	Y(X, IP_ROUTE_INPUT_NOREF, ip_route_input_noref, 140, route-fn, 1, 5, EXIT)                \
	Y(X, FIB_VALIDATE_SOURCE, fib_validate_source, 141, route-fn, 1, 8, EXIT)                  \
	Y(X, IP6_ROUTE_INPUT, ip6_route_input, 142, route-fn, 1, 1, ENTRY)                         \
	/* bridge */                                                                               \
	Y(X, BR_HANDLE_FRAME_FINISH, br_handle_frame_finish, 150, bridge-fn, 3, 3, ENTRY)          \
	Y(X, BR_FORWARD, br_forward, 151, bridge-fn, 2, 4, ENTRY)                                  \
	Y(X, BR_PASS_FRAME_UP, br_pass_frame_up, 152, bridge-fn, 1, 1, ENTRY)                      \
	Y(X, BR_DEV_XMIT, br_dev_xmit, 153, bridge-fn, 1, 2, ENTRY)                                \
	/* tcp */                                                                                  \
	Y(X, TCP_V4_RCV, tcp_v4_rcv, 160, tcp-fn, 1, 1, ENTRY)                                     \
	Y(X, TCP_V4_DO_RCV, tcp_v4_do_rcv, 161, tcp-fn, 2, 2, ENTRY)                               \
	Y(X, TCP_RCV_ESTABLISHED, tcp_rcv_established, 162, tcp-fn, 2, 2, ENTRY)                   \
	Y(X, TCP_RCV_STATE_PROCESS, tcp_rcv_state_process, 163, tcp-fn, 2, 2, ENTRY)               \
	Y(X, TCP_V4_SEND_RESET, tcp_v4_send_reset, 164, tcp-fn, 2, 2, ENTRY)                       \
	Y(X, TCP_V6_RCV, tcp_v6_rcv, 165, tcp-fn, 1, 1, ENTRY)                                     \
	/* udp */                                                                                  \
	Y(X, UDP_RCV, udp_rcv, 170, udp-fn, 1, 1, ENTRY)                                           \
	Y(X, UDP4_LIB_RCV, __udp4_lib_rcv, 171, udp-fn, 1, 3, ENTRY)                               \
	Y(X, UDP_UNICAST_RCV_SKB, udp_unicast_rcv_skb, 172, udp-fn, 2, 3, ENTRY)                   \
	Y(X, UDP_QUEUE_RCV_SKB, udp_queue_rcv_skb, 173, udp-fn, 2, 2, ENTRY)                       \
	Y(X, UDPV6_RCV, udpv6_rcv, 174, udp-fn, 1, 1, ENTRY)                                       \
	/* icmp */                                                                                 \
	Y(X, ICMP_RCV, icmp_rcv, 180, icmp-fn, 1, 1, ENTRY)                                        \
	Y(X, ICMPV6_RCV, icmpv6_rcv, 181, icmp-fn, 1, 1, ENTRY)                                    \
	/* skb: a clone's new skb is the return value */                                           \
	Y(X, SKB_CLONE, skb_clone, 190, skb-fn, 1, 2, EXIT)

#define ST_FN_PATH_PROBE(X, E, name, id, group, skb, nargs, at) X(E, name, id, group, FUNCTION, FN, FUNCTION)

/* How a probe attaches. */
enum st_probe_kind {
	ST_KIND_TRACEPOINT = 1, /* a tp_btf and a raw_tp program, btf_<name> and raw_<name> */
	ST_KIND_NETFILTER = 2,  /* netfilter BPF links, one program per bracket: nf_bracket_<index> */
	ST_KIND_FUNCTION = 3,   /* a kernel function's exit: an fexit program fexit_<name>, or the pair
	                           kprobe_<name> and kretprobe_<name> where fexit cannot attach */
};

/* Which member of union st_args a probe's records fill. */
enum st_args_kind {
	ST_ARGS_NONE = 0,
	ST_ARGS_FREE = 1,  /* struct st_args_free */
	ST_ARGS_NF = 2,    /* struct st_args_nf */
	ST_ARGS_SOCK = 3,  /* struct st_args_sock */
	ST_ARGS_ROUTE = 4, /* struct st_args_route */
	ST_ARGS_DEV = 5,   /* struct st_args_dev */
	ST_ARGS_MISC = 6,  /* struct st_args_misc */
	ST_ARGS_FN = 7,    /* struct st_args_fn */
};

/* What a probe means for the packet it sees: the analyzer's decisions (when an skb address starts a new
 * life, what its fate was) read roles, never probe numbers. */
enum st_probe_role {
	ST_ROLE_RECEIVE = 1,     /* the packet enters the stack from a device */
	ST_ROLE_QUEUE = 2,       /* the packet enters a device's transmit queue (output's first device step) */
	ST_ROLE_TRANSMIT = 3,    /* the driver is handed the packet */
	ST_ROLE_TRANSMITTED = 4, /* the driver took it (args.dev.rc says whether it succeeded) */
	ST_ROLE_FREE = 5,        /* freed with a drop reason (kfree_skb) */
	ST_ROLE_CONSUME = 6,     /* freed as consumed */
	ST_ROLE_DELIVER = 7,     /* reached a socket (read by a process, or TCP took it) */
	ST_ROLE_SOCKET = 8,      /* a socket's event; the skb, where there is one, is incidental */
	ST_ROLE_ICMP = 9,        /* an ICMP error was sent about the packet */
	ST_ROLE_ROUTE = 10,      /* a route lookup */
	ST_ROLE_NEIGH = 11,      /* a neighbour entry changed */
	ST_ROLE_QDISC = 12,      /* a queueing discipline took or gave the packet */
	ST_ROLE_XDP = 13,        /* an XDP program's exceptional verdict */
	ST_ROLE_NETFILTER = 14,  /* a netfilter bracket: between two standard tables of one hook */
	ST_ROLE_NF_VERDICT = 15, /* a netfilter table or chain ran on the packet: its verdict (args.fn) */
	ST_ROLE_FUNCTION = 16,   /* a kernel function ran on the packet (ST_FN_PATH_TABLE): a step of its
	                            path; at the exit, args.fn.ret is the return value (ST_FN_RET) */
};

/* How a function of ST_FN_PATH_TABLE records: at its entry, or at its exit with its return value. */
enum st_fn_at {
	ST_FN_AT_ENTRY = 1,
	ST_FN_AT_EXIT = 2,
};

#define ST_PROBE_ENUM(E, name, id, group, kind, args, role) ST_P_##E = id,
enum st_probe {
	ST_P_NONE = 0,
	ST_PROBE_TABLE(ST_PROBE_ENUM)
	ST_P_NF_BRACKET_LAST = 79, /* ids up to here are reserved for brackets */
};
#undef ST_PROBE_ENUM

/* One row of ST_FN_PATH_TABLE, as bpf/shim/events.c exposes it to Swift. */
struct st_fn_path_info {
	__u16 id;   /* the probe's id */
	__u8 skb;   /* the argument (from 1) that holds the sk_buff */
	__u8 nargs; /* the function's arguments */
	__u8 at;    /* enum st_fn_at */
};

/* One row of the probe table, as bpf/shim/events.c exposes it to Swift. */
struct st_probe_info {
	const char *name;
	const char *group;
	__u16 id;
	__u8 kind;  /* enum st_probe_kind */
	__u8 args;  /* enum st_args_kind */
	__u8 role;  /* enum st_probe_role */
};

/*
 * Netfilter brackets: the priorities the recorder attaches at, lowest first, each between two standard
 * tables, and the table that runs after it (up to the next bracket). Standard priorities: defrag -400,
 * raw -300, conntrack -200, mangle -150, nat (DNAT) -100, filter 0, security 50, nat (SNAT) 100,
 * conntrack confirm INT_MAX.
 *
 * X(index, priority, table after it)
 */
#define ST_NF_BRACKET_TABLE(X)         \
	X(0, -1000, "raw")               \
	X(1, -250, "conntrack")          \
	X(2, -175, "mangle")             \
	X(3, -125, "nat")                \
	X(4, -50, "filter")              \
	X(5, 25, "security")             \
	X(6, 75, "nat")                  \
	X(7, 150, "after priority 150")
#define ST_NF_BRACKETS 8

/* One bracket, as bpf/shim/events.c exposes it to Swift. */
struct st_nf_bracket_info {
	__s32 priority;
	const char *table_after; /* the table between this bracket and the next */
};

#if !defined(__bpf__)
/* The tables, for Swift (bpf/shim/events.c): their rows and, through `count`, how many. */
const struct st_probe_info *st_probe_rows(__u32 *count);
const struct st_nf_bracket_info *st_nf_bracket_rows(__u32 *count);
const struct st_fn_path_info *st_fn_path_rows(__u32 *count);
#endif

/* st_event.l3_from: where the packet bytes start. */
enum st_l3_from {
	ST_L3_NONE = 0,    /* no packet bytes */
	ST_L3_NETWORK = 1, /* skb->head + skb->network_header */
	ST_L3_DATA = 2,    /* skb->data (receive path, before the stack sets the network header) */
};

/* st_event.flags */
enum st_event_flags {
	ST_F_TRACKED = 1,   /* emitted because the skb matched a filter earlier (not by itself) */
	ST_F_NF_LAST = 2,   /* args.free.nf_* hold the last netfilter bracket this skb passed on this CPU */
	ST_F_CT = 4,        /* args.nf.ct holds the skb's conntrack entry */
	ST_F_SAME_BYTES = 8, /* no packet bytes: they equal those of this CPU's previous record of this skb */
	ST_F_NESTED = 16,    /* written by a program that interrupted another on its CPU: its packet bytes
	                        are its own and never the reference of a later ST_F_SAME_BYTES record */
	ST_F_NF_FN = 32,     /* on a free: args.free.nf_* come from a netfilter function (tier 3), its DROP
	                        verdict or the function the skb was freed in (then nf_table and nf_chain name
	                        it); nf_fn says which fields it knew (nf_bracket only with ST_FN_NF_PRIORITY).
	                        ST_F_NF_LAST is set only where a bracket was passed as well */
};

/* A conntrack tuple as the kernel stores it (addresses and ports in network order). */
struct st_ct_tuple {
	__u8 src[16];   /* source address; IPv4 uses the first 4 bytes */
	__u8 dst[16];   /* destination address */
	__u16 sport;    /* source port or ICMP id, network order */
	__u16 dport;    /* destination port, or ICMP type (high byte) and code, network order */
	__u16 l3num;    /* address family (AF_INET 2, AF_INET6 10) */
	__u8 protonum;  /* IP protocol */
	__u8 pad;       /* zero */
};

/* Arguments of the free probes: kfree_skb and consume_skb. */
struct st_args_free {
	__u64 location;  /* kernel address that freed the skb (resolved by the bundle's symbol table) */
	__u32 reason;    /* enum skb_drop_reason value: names are in the bundle, numbers differ by kernel */
	__u8 nf_pf;      /* with ST_F_NF_LAST: protocol family of the last netfilter bracket passed */
	__u8 nf_hook;    /* with ST_F_NF_LAST: netfilter hook number */
	__u8 nf_bracket; /* with ST_F_NF_LAST: bracket index into ST_NF_BRACKET_TABLE */
	__u8 nf_fn;      /* with ST_F_NF_FN: enum st_fn_nf bits, what the function knew; nf_table and
	                    nf_chain are set with their bits only (a free inside the function) */
	char nf_table[32]; /* with ST_F_NF_FN and ST_FN_NF_TABLE: the table the skb was freed in */
	char nf_chain[32]; /* with ST_F_NF_FN and ST_FN_NF_CHAIN: the chain (nft_do_chain frees what its
	                      rules drop since 6.7, and returns NF_STOLEN) */
	__u32 stack;     /* kfree_skb with --drop-stack: 1 + the kernel stack's id in the bundle's `stack`
	                    table; 0 none (not asked, or the stack map did not take it: another stack in
	                    its hash bucket, or full; the kfree_skb probe row counts those) */
	__u32 pad;       /* zero */
};

/* Arguments of the netfilter bracket programs. */
struct st_args_nf {
	__u8 pf;         /* NFPROTO_IPV4 2, NFPROTO_IPV6 10 */
	__u8 hook;       /* NF_INET_PRE_ROUTING 0 .. NF_INET_POST_ROUTING 4 */
	__u8 bracket;    /* index into ST_NF_BRACKET_TABLE */
	__u8 ctinfo;     /* enum ip_conntrack_info (skb->_nfct & 7), with ST_F_CT */
	__s32 priority;  /* netfilter priority this program runs at */
	__u32 in_ifindex;  /* state->in, 0 when none */
	__u32 out_ifindex; /* state->out, 0 when none */
	__u32 ct_status; /* nf_conn->status (low 32 bits), with ST_F_CT */
	__u32 ct_mark;   /* nf_conn->mark, with ST_F_CT */
	struct st_ct_tuple ct_orig;  /* original direction tuple, with ST_F_CT */
	struct st_ct_tuple ct_reply; /* reply direction tuple: differs from orig when NAT is set up */
};

/* Arguments of socket probes (tcp_*, inet_sock_set_state, sock_rcvqueue_full). */
struct st_args_sock {
	__u64 sk;        /* struct sock address (0 when none) */
	__u8 saddr[16];  /* local address; IPv4 in the first 4 bytes */
	__u8 daddr[16];  /* remote address */
	__u16 sport;     /* local port, host order */
	__u16 dport;     /* remote port, host order */
	__u16 family;    /* AF_INET 2, AF_INET6 10 */
	__u8 state;      /* TCP state (new state for inet_sock_set_state) */
	__u8 oldstate;   /* previous state for inet_sock_set_state */
	__u32 reason;    /* tcp_send_reset: enum sk_rst_reason; udp_fail: rc; rcvqueue_full: rmem_alloc */
	__u32 srtt_us;   /* tcp: smoothed RTT << 3, in microseconds, as the kernel keeps it */
	__u32 snd_cwnd;  /* tcp: congestion window in packets */
	__u32 snd_una;   /* tcp: first unacknowledged sequence */
	__u32 snd_nxt;   /* tcp: next sequence to send */
	__u32 packets_out; /* tcp: packets in flight */
	__u32 retrans_out; /* tcp: retransmitted packets in flight */
	__u32 total_retrans; /* tcp: retransmissions over the connection's life */
	__u32 rcvbuf;    /* sk_rcvbuf for sock_rcvqueue_full */
};

/* Arguments of route and neighbour probes. */
struct st_args_route {
	__u8 saddr[16];  /* flow source (fib) or 0 */
	__u8 daddr[16];  /* flow destination (fib) or neighbour key */
	__u32 table;     /* fib table id */
	__s32 err;       /* fib lookup error (0 = found), neigh_event_send_dead: rc */
	__s32 oif;       /* flow output interface */
	__s32 iif;       /* flow input interface */
	__u16 family;    /* AF_INET 2, AF_INET6 10 */
	__u8 proto;      /* flow IP protocol */
	__u8 nud_state;  /* neighbour: state after the update (NUD_*) */
	__u8 lladdr[8];  /* neighbour: link-layer address (first 8 bytes) */
};

/* Arguments of device, qdisc and xdp probes. */
struct st_args_dev {
	__s32 rc;        /* net_dev_xmit return code; xdp_exception: action */
	__u32 handle;    /* qdisc handle */
	__u32 parent;    /* qdisc parent */
	__u32 qlen;      /* qdisc queue length */
	__u32 prog_id;   /* xdp_exception: program id */
	__u32 pad;       /* zero */
	char kind[16];   /* qdisc kind ("fq_codel", "tbf") */
};

/* Arguments of icmp_send and skb_copy_datagram_iovec. */
struct st_args_misc {
	__s32 a;         /* icmp_send: type; skb_copy_datagram_iovec: len */
	__s32 b;         /* icmp_send: code */
};

/* st_args_fn.nf, st_args_free.nf_fn: what a netfilter function's record knows of where it ran */
enum st_fn_nf {
	ST_FN_NF_HOOK = 1,     /* pf and hook */
	ST_FN_NF_TABLE = 2,    /* table (the name) */
	ST_FN_NF_CHAIN = 4,    /* chain (the name) */
	ST_FN_NF_PRIORITY = 8, /* priority and bracket */
	ST_FN_NF_INSIDE = 16,  /* st_args_free.nf_fn: freed inside the function, not after its verdict */
	ST_FN_RET = 32,        /* st_args_fn.ret is the function's return value: a record of its exit
	                          (always so for a netfilter verdict, whose records predate this bit) */
};

/* Netfilter verdicts (ret & ST_NF_VERDICT_MASK of ipt_do_table and nft_do_chain). */
#define ST_NF_VERDICT_MASK 0xff
#define ST_NF_DROP 0
#define ST_NF_ACCEPT 1
#define ST_NF_STOLEN 2

/*
 * Arguments of kernel-function probes (tier 3), recorded at the function's exit: its return value and,
 * for the netfilter functions, where it ran. The packet bytes follow as for any skb record.
 */
struct st_args_fn {
	__s64 ret;       /* the return value (a netfilter verdict: ret & ST_NF_VERDICT_MASK, NF_DROP 0) */
	__s32 priority;  /* netfilter: the table's or base chain's priority */
	__u8 pf;         /* netfilter: protocol family of the hook (NFPROTO_IPV4 2, NFPROTO_IPV6 10) */
	__u8 hook;       /* netfilter: hook number, NF_INET_PRE_ROUTING 0 .. NF_INET_POST_ROUTING 4 */
	__u8 bracket;    /* netfilter: the bracket (ST_NF_BRACKET_TABLE) whose table range holds priority */
	__u8 nf;         /* enum st_fn_nf: which of these fields are set */
	char table[32];  /* netfilter: table name (xt_table->name, nft_chain->table->name) */
	char chain[32];  /* nft_do_chain: base chain name (nft_chain->name) */
};

/* Probe-specific part of a record: which member is valid follows from st_event.probe. */
union st_args {
	struct st_args_free free;
	struct st_args_nf nf;
	struct st_args_sock sock;
	struct st_args_route route;
	struct st_args_dev dev;
	struct st_args_misc misc;
	struct st_args_fn fn;
	__u8 raw[112];   /* fixes the size: members only grow into it */
};

/* One record. `size` covers this struct and the packet bytes after it. */
struct st_event {
	__u16 type;      /* enum st_record_type */
	__u16 size;      /* bytes in this record, packet bytes and padding included (multiple of 8) */
	__u16 probe;     /* enum st_probe */
	__u16 snap;      /* packet bytes that follow this struct, from the network header */
	__u64 ts;        /* CLOCK_BOOTTIME in ns; the bundle stores the offset to wall-clock time */
	__u64 skb;       /* struct sk_buff address; 0 when the probe has none */
	__u64 head;      /* skb->head: the data buffer, shared between an skb and its clones */
	__u32 cpu;       /* CPU the probe ran on */
	__u32 pid;       /* current process id (tgid); 0 in interrupt context */
	__u32 netns;     /* network namespace inode of the device, socket or hook */
	__u32 ifindex;   /* skb->dev ifindex; 0 when none */
	__u32 mark;      /* skb->mark */
	__u32 len;       /* skb->len */
	__u16 protocol;  /* skb->protocol, network order (0x0800 IPv4, 0x86DD IPv6, 0x0806 ARP) */
	__u8 l3_from;    /* enum st_l3_from */
	__u8 flags;      /* enum st_event_flags */
	__u32 tid;       /* current thread id */
	char comm[16];   /* current task name */
	union st_args args; /* probe-specific fields */
};

/* The record layout is the bundle format: a change of size is a new format version. */
_Static_assert(sizeof(union st_args) == 112, "union st_args is 112 bytes in format 1");
_Static_assert(sizeof(struct st_event) == 192, "struct st_event is 192 bytes in format 1");
_Static_assert(sizeof(struct st_args_fn) == 80, "struct st_args_fn is 80 bytes");
_Static_assert(sizeof(struct st_args_free) == 88, "struct st_args_free is 88 bytes (stack appended in reserved space)");
_Static_assert(sizeof(struct st_ct_tuple) == 40, "struct st_ct_tuple is 40 bytes in format 1");

/* Capture filters and settings: a `const volatile` struct in the BPF object, set before load. */
struct st_config {
	__u32 snaplen;     /* packet bytes to capture, at most ST_SNAPLEN_MAX */
	__u32 wakeup_bytes; /* wake the reader only once this much data waits in the ring buffer */
	__u32 filters;     /* enum st_filter bits: which of the fields below apply */
	__u32 netns;       /* ST_FLT_NETNS: network namespace inode */
	__u32 pid;         /* ST_FLT_PID: process id (tgid) that first touches the packet */
	__u16 l3proto;     /* ST_FLT_L3PROTO: ethertype, network order */
	__u8 l4proto;      /* ST_FLT_L4PROTO: IP protocol */
	__u8 family;       /* AF_INET or AF_INET6 for the address filters */
	__u8 saddr[16];    /* ST_FLT_SADDR */
	__u8 daddr[16];    /* ST_FLT_DADDR */
	__u8 addr[16];     /* ST_FLT_ADDR: either side */
	__u16 sport;       /* ST_FLT_SPORT, host order */
	__u16 dport;       /* ST_FLT_DPORT, host order */
	__u16 port;        /* ST_FLT_PORT: either side, host order */
	__u8 options;      /* enum st_option bits */
	__u8 pad;          /* zero */
	char ifname[16];   /* ST_FLT_IFNAME: skb->dev->name */
};

/* st_config.options */
enum st_option {
	ST_OPT_DROP_STACK = 1 << 0, /* kfree_skb records its kernel stack (st_args_free.stack) */
};

/* Frames kept of a drop's kernel stack (the stack map's value: this many u64 addresses). */
#define ST_STACK_DEPTH 32

enum st_filter {
	ST_FLT_NETNS = 1 << 0,
	ST_FLT_PID = 1 << 1,
	ST_FLT_L3PROTO = 1 << 2,
	ST_FLT_L4PROTO = 1 << 3,
	ST_FLT_SADDR = 1 << 4,
	ST_FLT_DADDR = 1 << 5,
	ST_FLT_ADDR = 1 << 6,
	ST_FLT_SPORT = 1 << 7,
	ST_FLT_DPORT = 1 << 8,
	ST_FLT_PORT = 1 << 9,
	ST_FLT_IFNAME = 1 << 10,
};

#endif /* SKBTRAIL_EVENTS_H */
