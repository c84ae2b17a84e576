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
 * change bumps ST_FORMAT_VERSION together with the analyzer's decoder (docs/bundle-format.md).
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
#define ST_FORMAT_VERSION 1

/* Default and largest number of packet bytes captured from the network header. */
#define ST_SNAPLEN_DEFAULT 128
#define ST_SNAPLEN_MAX 256

/* Record types: the first field of every record. Readers skip and count types they do not know. */
enum st_record_type {
	ST_REC_EVENT = 1, /* struct st_event + packet bytes */
};

/*
 * Probe ids. Stable across versions: a bundle stores the probes it attached with these ids and their
 * names, so a reader never needs this list to name them. New probes take new numbers.
 */
enum st_probe {
	ST_P_NONE = 0,
	/* net: device layer */
	ST_P_NETIF_RECEIVE_SKB = 1,
	ST_P_NETIF_RX = 2,
	ST_P_NAPI_GRO_RECEIVE_ENTRY = 3,
	ST_P_NET_DEV_QUEUE = 4,
	ST_P_NET_DEV_START_XMIT = 5,
	ST_P_NET_DEV_XMIT = 6,
	/* skb: lifetime */
	ST_P_KFREE_SKB = 10,
	ST_P_CONSUME_SKB = 11,
	ST_P_SKB_COPY_DATAGRAM_IOVEC = 12,
	/* tcp and sockets */
	ST_P_TCP_RETRANSMIT_SKB = 20,
	ST_P_TCP_SEND_RESET = 21,
	ST_P_TCP_RECEIVE_RESET = 22,
	ST_P_TCP_BAD_CSUM = 23,
	ST_P_TCP_PROBE = 24,
	ST_P_INET_SOCK_SET_STATE = 25,
	ST_P_SOCK_RCVQUEUE_FULL = 26,
	/* udp, icmp */
	ST_P_UDP_FAIL_QUEUE_RCV_SKB = 30,
	ST_P_ICMP_SEND = 31,
	/* routing and neighbours */
	ST_P_FIB_TABLE_LOOKUP = 40,
	ST_P_FIB6_TABLE_LOOKUP = 41,
	ST_P_NEIGH_UPDATE = 42,
	ST_P_NEIGH_EVENT_SEND_DEAD = 43,
	/* qdisc, xdp */
	ST_P_QDISC_ENQUEUE = 50,
	ST_P_QDISC_DEQUEUE = 51,
	ST_P_XDP_EXCEPTION = 52,
	/* netfilter BPF links: one id per priority bracket (ST_P_NF_BRACKET + index into st_nf_brackets) */
	ST_P_NF_BRACKET = 64,
	ST_P_NF_BRACKET_LAST = 79,
};

/* Netfilter priorities the recorder attaches at, lowest first. A bracket sits between standard tables. */
#define ST_NF_BRACKETS 8
#define ST_NF_BRACKET_PRIORITIES { -1000, -250, -175, -125, -50, 25, 75, 150 }

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
	__u8 nf_bracket; /* with ST_F_NF_LAST: bracket index into ST_NF_BRACKET_PRIORITIES */
	__u8 pad;        /* zero */
};

/* Arguments of the netfilter bracket programs. */
struct st_args_nf {
	__u8 pf;         /* NFPROTO_IPV4 2, NFPROTO_IPV6 10 */
	__u8 hook;       /* NF_INET_PRE_ROUTING 0 .. NF_INET_POST_ROUTING 4 */
	__u8 bracket;    /* index into ST_NF_BRACKET_PRIORITIES */
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

/* Probe-specific part of a record: which member is valid follows from st_event.probe. */
union st_args {
	struct st_args_free free;
	struct st_args_nf nf;
	struct st_args_sock sock;
	struct st_args_route route;
	struct st_args_dev dev;
	struct st_args_misc misc;
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
	__u16 pad;         /* zero */
	char ifname[16];   /* ST_FLT_IFNAME: skb->dev->name */
};

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
