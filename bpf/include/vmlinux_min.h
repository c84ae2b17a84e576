/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A minimal hand-written CO-RE header: only the kernel types and fields skbtrail reads. libbpf
 * relocates every access against the running kernel's BTF, so field offsets here do not matter,
 * only names and types. Kernel-version differences belong in core_fixes.bpf.h, not here.
 */
#ifndef SKBTRAIL_VMLINUX_MIN_H
#define SKBTRAIL_VMLINUX_MIN_H
/* bpf_tracing.h: the kernel's register names (di, si, ...), as in a generated vmlinux.h */
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};
enum {
	BPF_ANY = 0,
};

/* Helper ids, for bpf_core_enum_value_exists(): which helpers the running kernel has. */
enum bpf_func_id {
	BPF_FUNC_map_lookup_percpu_elem = 195,
};

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
};

struct in6_addr {
	__u8 s6_addr[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
	int sk_rcvbuf;
};

struct tcp_sock {
	u32 srtt_us;
	u32 snd_cwnd;
	u32 snd_una;
	u32 snd_nxt;
	u32 packets_out;
	u32 retrans_out;
	u32 total_retrans;
};

struct sk_buff {
	struct sock *sk;
	struct net_device *dev;
	unsigned long _nfct;
	unsigned int len;
	__u32 mark;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned int tail;
	unsigned char *head;
	unsigned char *data;
};

union nf_inet_addr {
	__u32 all[4];
};

union nf_conntrack_man_proto {
	__be16 all;
};

struct nf_conntrack_man {
	union nf_inet_addr u3;
	union nf_conntrack_man_proto u;
	u16 l3num;
};

struct nf_conntrack_tuple {
	struct nf_conntrack_man src;
	struct {
		union nf_inet_addr u3;
		union {
			__be16 all;
		} u;
		u8 protonum;
	} dst;
};

struct nf_conntrack_tuple_hash {
	struct nf_conntrack_tuple tuple;
};

struct nf_conn {
	struct nf_conntrack_tuple_hash tuplehash[2];
	unsigned long status;
	u32 mark;
};

struct nf_hook_state {
	u8 hook;
	u8 pf;
	struct net_device *in;
	struct net_device *out;
	struct sock *sk;
	struct net *net;
};

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

/* x86-64 registers at a kprobe, for bpf_tracing.h's PT_REGS_* (kprobe programs are x86-64 only). */
struct pt_regs {
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long ip;
	unsigned long sp;
};

/* Netfilter's tables and chains (modules x_tables, ip_tables and nf_tables: their BTF is the module's). */
struct xt_table {
	u8 af;
	const char name[32];
};

struct nf_hook_ops {
	unsigned int hooknum;
	u8 pf;
	int priority;
};

struct nft_table {
	char *name;
};

struct nft_chain {
	struct nft_table *table;
	char *name;
};

struct nft_base_chain {
	struct nf_hook_ops ops;
	struct nft_chain chain;
};

struct nft_pktinfo {
	struct sk_buff *skb;
	const struct nf_hook_state *state;
};

struct flowi_common {
	int flowic_oif;
	int flowic_iif;
	__u8 flowic_proto;
};

struct flowi4 {
	struct flowi_common __fl_common;
	__be32 saddr;
	__be32 daddr;
};

struct flowi6 {
	struct flowi_common __fl_common;
	struct in6_addr daddr;
	struct in6_addr saddr;
};

struct fib6_table {
	u32 tb6_id;
};

struct neigh_table {
	int family;
};

struct neighbour {
	struct neigh_table *tbl;
	u8 nud_state;
	unsigned char ha[32];
	struct net_device *dev;
	u8 primary_key[0];
};

struct Qdisc_ops {
	char id[16];
};

struct qdisc_skb_head {
	__u32 qlen;
};

struct Qdisc {
	const struct Qdisc_ops *ops;
	u32 handle;
	u32 parent;
	struct qdisc_skb_head q;
};

struct bpf_prog_aux {
	u32 id;
};

struct bpf_prog {
	struct bpf_prog_aux *aux;
};

#pragma clang attribute pop

#endif /* SKBTRAIL_VMLINUX_MIN_H */
