// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skbtrail's kernel side: tracepoint programs (tier 1) and netfilter BPF link programs (tier 2) that
 * emit raw `struct st_event` records (events.h) into one ring buffer. Nothing here interprets a packet
 * beyond what the capture filters need; decoding is the analyzer's job.
 *
 * Every tracepoint has two flavours: tp_btf (BTF-typed, preferred) and raw_tp (fallback where the
 * kernel lacks BTF for it). Both read arguments the same way, through BPF_CORE_READ, so one handler
 * serves both. The recorder enables exactly one flavour per tracepoint with autoload.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "events.h"
#include "core_fixes.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings and filters, written by the recorder before load. */
const volatile struct st_config cfg = {};

#define NF_ACCEPT 1
#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_SCTP 132

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the recorder resizes it (--ring-size) */
} events SEC(".maps");

/* Events that did not fit into the ring buffer, per CPU. The recorder stores them in the bundle. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/*
 * One record under construction per CPU and nesting level: too big for the BPF stack. A program can be
 * interrupted on its CPU by another one (a softirq's netif_receive_skb over a task's kfree_skb, a
 * netfilter hook over a tracepoint): each level has its own record, or the inner program would
 * overwrite the outer one's between its fields and its ring buffer copy.
 */
#define ST_NEST_MAX 4

struct scratch {
	struct st_event ev;
	__u8 data[ST_SNAPLEN_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_NEST_MAX);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Per CPU: how many of our programs are running (the outer ones interrupted). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nest_map SEC(".maps");

/*
 * skbs that matched the capture filters once: they stay tracked until freed, so a packet is followed
 * through NAT and encapsulation after its headers stop matching (nettrace's behaviour). The value is the
 * skb's data buffer (skb->head) and protocol: some free paths have no tracepoint (__kfree_skb in TCP
 * receive), so an address can come back as a new skb without a free in between; a different head or
 * protocol tells them apart (a reused buffer of the same protocol can still fool it; the analyzer
 * splits such lives again where the path cannot continue). LRU:
 * entries of skbs freed unseen age out.
 */
struct tracked_skb {
	__u64 head;     /* skb->head when it matched */
	__u16 protocol; /* skb->protocol when it matched: an IPv6 skb at an IPv4 packet's address is new */
	__u16 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tracked_skb);
} tracked SEC(".maps");

/*
 * The last netfilter bracket each CPU saw, and a signature of the packet there. Netfilter runs the
 * hooks of one packet on one CPU in one call (nf_hook_slow), so a kfree_skb(NETFILTER_DROP) that
 * follows on this CPU for the same skb was dropped between this bracket and the next one.
 */
struct nf_last {
	__u64 skb;
	__u64 sig;
	__u8 pf;
	__u8 hook;
	__u8 bracket;
	__u8 fn;       /* set by a netfilter function's DROP verdict (tier 3), not a bracket: its
	                  enum st_fn_nf bits of hook and priority */
	__u8 pad[4];
	__u64 ts;      /* with fn: when the verdict was given */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nf_last);
} nf_last_map SEC(".maps");

/* What a netfilter function (tier 3) was called with, read at its entry (kprobe) or exit (fexit). */
struct fn_call {
	__u64 a0, a1, a2; /* its first three arguments */
	__u16 probe;
	__u16 pad[3];
};

/* A table runs for microseconds: a verdict or an entry older than this is not the current call's. */
#define ST_FN_FREE_NS 10000000ULL

/*
 * The netfilter functions running now, by skb, from their entry (fentry, kprobe) to their exit. A packet
 * freed inside one is named by its free record: nft_do_chain frees what its rules drop since 6.7
 * (NF_DROP_REASON) and returns NF_STOLEN, so its exit has nothing left to record.
 */
struct fn_running {
	struct fn_call call;
	__u64 task;   /* the task it runs in (a free inside it runs in it too) */
	__u64 ts;     /* when it was entered */
	__u8 freed;   /* kfree_skb saw the skb freed inside the function */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct fn_running);
} fn_running SEC(".maps");

static __always_inline void fn_freed_inside(const struct sk_buff *skb, struct st_event *ev);

/*
 * The packet bytes each CPU last put into a record, by skb and a hash of the bytes. A record whose bytes
 * are the same (most of a packet's records: nothing rewrites it between two tracepoints) carries none,
 * and ST_F_SAME_BYTES: the analyzer takes them from the skb's previous record. A third fewer bytes through
 * the ring buffer and on disk.
 */
struct snap_last {
	__u64 skb;
	__u64 hash;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct snap_last);
} snap_last_map SEC(".maps");

/* Addresses and ports of a packet or socket, for the filters. */
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family; /* 0: unknown, no address or port filter can match */
	__u8 l4;
};

/*
 * Field reads: a plain (CO-RE relocated) load where the verifier knows the pointer's BTF type (tp_btf
 * and netfilter programs), bpf_probe_read_kernel otherwise. Plain loads cost a fraction of a helper call.
 */
#define R(btf, p, f) ((btf) ? (p)->f : BPF_CORE_READ(p, f))
#define R2(btf, p, f, g) ((btf) ? (p)->f->g : BPF_CORE_READ(p, f, g))

/* The record of the running program's nesting level (nest_enter() gave it one). */
static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&nest_map, &zero);
	if (!depth || *depth == 0 || *depth > ST_NEST_MAX)
		return NULL;
	__u32 level = *depth - 1;
	return bpf_map_lookup_elem(&scratch_map, &level);
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		atomic_add(n, 1);
}

/*
 * Entered at the start of every program, left at its end: claims the next nesting level of this CPU.
 * An interrupting program runs to completion before the interrupted one goes on, so levels are freed in
 * the order they were taken. Deeper than ST_NEST_MAX (NMI over hardirq over softirq over task): lost.
 * Returns the CPU plus one (0: no level), for nest_leave.
 */
static __always_inline __u32 nest_enter(void)
{
	__u32 zero = 0;
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 *depth = bpf_map_lookup_elem(&nest_map, &zero);
	if (!depth)
		return 0;
	if (*depth >= ST_NEST_MAX) {
		count_lost();
		return 0;
	}
	atomic_add(depth, 1);
	return cpu + 1;
}

/*
 * Frees the level on the CPU that gave it. A netfilter program on the local output path runs in process
 * context, which a fully preemptible kernel may preempt and move to another CPU: freeing the level there
 * would leave this CPU a level short for the rest of the recording. Atomic, as the other CPU may be
 * taking or freeing a level at that moment.
 */
static __always_inline void nest_leave(__u32 cpu_plus_one)
{
	__u32 zero = 0;
	__u32 *depth = lookup_cpu_elem(&nest_map, &zero, cpu_plus_one - 1);
	if (depth && *depth > 0)
		atomic_add(depth, -1);
}

static __always_inline __u32 dev_netns(const bool btf, const struct net_device *dev)
{
	if (!dev)
		return 0;
	return R2(btf, dev, nd_net.net, ns.inum);
}

static __always_inline __u32 sk_netns(const bool btf, const struct sock *sk)
{
	if (!sk)
		return 0;
	return R2(btf, sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool addr_eq(const __u8 *a, const volatile __u8 *b, __u8 family)
{
	if (family == AF_INET)
		return *(__u32 *)a == *(const volatile __u32 *)b;
	return *(__u64 *)a == *(const volatile __u64 *)b &&
	       *(__u64 *)(a + 8) == *(const volatile __u64 *)(b + 8);
}

static __always_inline bool name_eq(const char *a, const volatile char *b)
{
	return *(__u64 *)a == *(const volatile __u64 *)b &&
	       *(__u64 *)(a + 8) == *(const volatile __u64 *)(b + 8);
}

/* Whether a flow, seen in `netns` on `dev`, passes the capture filters. Unknown fields never match. */
static __always_inline bool flow_matches(const bool btf, const struct flow *f, __u32 netns, const struct net_device *dev,
					 __be16 protocol)
{
	__u32 want = cfg.filters;

	if ((want & ST_FLT_NETNS) && netns != cfg.netns)
		return false;
	if ((want & ST_FLT_PID) && (__u32)(bpf_get_current_pid_tgid() >> 32) != cfg.pid)
		return false;
	if ((want & ST_FLT_L3PROTO) && protocol != cfg.l3proto)
		return false;
	if (want & ST_FLT_IFNAME) {
		char name[16] = {};
		if (!dev)
			return false;
		BPF_CORE_READ_STR_INTO(&name, dev, name);
		if (!name_eq(name, cfg.ifname))
			return false;
	}
	if ((want & ST_FLT_L4PROTO) && f->l4 != cfg.l4proto)
		return false;
	if (want & (ST_FLT_SADDR | ST_FLT_DADDR | ST_FLT_ADDR)) {
		if (f->family != cfg.family)
			return false;
		if ((want & ST_FLT_SADDR) && !addr_eq(f->saddr, cfg.saddr, f->family))
			return false;
		if ((want & ST_FLT_DADDR) && !addr_eq(f->daddr, cfg.daddr, f->family))
			return false;
		if ((want & ST_FLT_ADDR) && !addr_eq(f->saddr, cfg.addr, f->family) &&
		    !addr_eq(f->daddr, cfg.addr, f->family))
			return false;
	}
	if (want & (ST_FLT_SPORT | ST_FLT_DPORT | ST_FLT_PORT)) {
		if (f->family == 0 ||
		    (f->l4 != IPPROTO_TCP && f->l4 != IPPROTO_UDP && f->l4 != IPPROTO_SCTP))
			return false;
		if ((want & ST_FLT_SPORT) && f->sport != cfg.sport)
			return false;
		if ((want & ST_FLT_DPORT) && f->dport != cfg.dport)
			return false;
		if ((want & ST_FLT_PORT) && f->sport != cfg.port && f->dport != cfg.port)
			return false;
	}
	return true;
}

/* Reads the flow out of the captured packet bytes (only what the filters need). */
static __always_inline void flow_from_packet(struct flow *f, struct scratch *s, __be16 protocol)
{
	__u32 snap = s->ev.snap;
	__u32 l4off;

	if (protocol == bpf_htons(ETH_P_IP)) {
		if (snap < 20)
			return;
		__u8 ihl = (s->data[0] & 0x0f) * 4;
		f->family = AF_INET;
		f->l4 = s->data[9];
		__builtin_memcpy(f->saddr, &s->data[12], 4);
		__builtin_memcpy(f->daddr, &s->data[16], 4);
		l4off = ihl;
		/* fragments after the first carry no ports */
		if ((bpf_ntohs(*(__u16 *)&s->data[6]) & 0x1fff) != 0)
			return;
	} else if (protocol == bpf_htons(ETH_P_IPV6)) {
		if (snap < 40)
			return;
		f->family = AF_INET6;
		f->l4 = s->data[6];
		__builtin_memcpy(f->saddr, &s->data[8], 16);
		__builtin_memcpy(f->daddr, &s->data[24], 16);
		l4off = 40;
	} else {
		return;
	}
	if (l4off < 20 || l4off > 60 || l4off + 4 > snap)
		return;
	if (f->l4 == IPPROTO_TCP || f->l4 == IPPROTO_UDP || f->l4 == IPPROTO_SCTP) {
		__u32 i = l4off & 0x3f; /* bounded for the verifier */
		f->sport = (__u16)s->data[i] << 8 | s->data[i + 1];
		f->dport = (__u16)s->data[i + 2] << 8 | s->data[i + 3];
	}
}

static __always_inline void flow_from_sock(const bool btf, struct flow *f, const struct sock *sk)
{
	if (!sk)
		return;
	__u16 family = R(btf, sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__u32 s = R(btf, sk, __sk_common.skc_rcv_saddr);
		__u32 d = R(btf, sk, __sk_common.skc_daddr);
		__builtin_memcpy(f->saddr, &s, 4);
		__builtin_memcpy(f->daddr, &d, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&f->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&f->daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return;
	}
	f->family = family;
	f->l4 = IPPROTO_TCP;
	f->sport = R(btf, sk, __sk_common.skc_num);
	f->dport = bpf_ntohs(R(btf, sk, __sk_common.skc_dport));
}

/* Fills the common part of a record. Returns NULL when there is no scratch space. */
static __always_inline struct scratch *begin(__u16 probe, bool with_task)
{
	struct scratch *s = get_scratch();
	if (!s)
		return NULL;
	struct st_event *ev = &s->ev;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = ST_REC_EVENT;
	ev->probe = probe;
	ev->ts = bpf_ktime_get_boot_ns();
	ev->cpu = bpf_get_smp_processor_id();
	if (with_task) {
		__u64 id = bpf_get_current_pid_tgid();
		ev->pid = id >> 32;
		ev->tid = (__u32)id;
		bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	}
	return s;
}

/* Copies skb fields and up to cfg.snaplen packet bytes from its L3 header into the record. */
/*
 * skb->dev, or NULL when the word holds something else: it shares it with dev_scratch, which UDP fills
 * for datagrams in a socket queue (length and flags, its top byte a flag). Read through, that is a
 * non-canonical address: no data, and a general protection fault with an exception-table search on
 * every datagram consumed (5% of a UDP flood's CPU). Kernel pointers are in the upper half (top byte
 * 0xff, or a tag of 0xf0 and up on arm64), UDP's scratch word never (its top byte is a bool).
 */
static __always_inline const struct net_device *skb_dev(const bool btf, const struct sk_buff *skb)
{
	const struct net_device *dev = R(btf, skb, dev);
	/* a compare, not a shift: the verifier allows no arithmetic on a typed pointer */
	return (__u64)dev >= 0x8000000000000000ULL ? dev : NULL;
}

static __always_inline void fill_skb(const bool btf, struct scratch *s, const struct sk_buff *skb, bool rx_path)
{
	struct st_event *ev = &s->ev;
	unsigned char *head = R(btf, skb, head);
	unsigned char *data = R(btf, skb, data);
	__u16 nh = R(btf, skb, network_header);
	__u32 tail = R(btf, skb, tail);
	const struct net_device *dev = skb_dev(btf, skb);
	__u32 off;

	ev->skb = (__u64)skb;
	ev->head = (__u64)head;
	ev->len = R(btf, skb, len);
	ev->mark = R(btf, skb, mark);
	ev->protocol = R(btf, skb, protocol);
	if (dev) {
		ev->ifindex = R(btf, dev, ifindex);
		ev->netns = dev_netns(btf, dev);
	} else {
		ev->netns = sk_netns(btf, R(btf, skb, sk));
	}

	/* Receive path: the stack sets the network header after these tracepoints; data is L3 there. */
	if (rx_path || nh == 0 || nh == 0xffff) {
		off = data - head;
		ev->l3_from = ST_L3_DATA;
	} else {
		off = nh;
		ev->l3_from = ST_L3_NETWORK;
	}
	__u32 snap = cfg.snaplen;
	if (tail <= off)
		snap = 0;
	else if (tail - off < snap)
		snap = tail - off;
	if (snap > ST_SNAPLEN_MAX)
		snap = ST_SNAPLEN_MAX;
	if (snap && bpf_probe_read_kernel(s->data, snap, head + off))
		snap = 0;
	if (!snap)
		ev->l3_from = ST_L3_NONE;
	ev->snap = snap;
}

/*
 * Decides whether an skb record is kept: it is when no filter is set, when the skb is tracked, or when
 * it matches now (then it becomes tracked). `freeing` ends tracking.
 */
static __always_inline bool keep_skb(const bool btf, struct scratch *s, const struct sk_buff *skb, bool freeing)
{
	if (!cfg.filters)
		return true;
	__u64 key = (__u64)skb;
	struct tracked_skb *seen = bpf_map_lookup_elem(&tracked, &key);
	if (seen && seen->head == s->ev.head && seen->protocol == s->ev.protocol) {
		s->ev.flags |= ST_F_TRACKED;
		if (freeing)
			bpf_map_delete_elem(&tracked, &key);
		return true;
	}
	/* not tracked, or a new skb at an address whose free was not seen: judge it on its own */
	struct flow f = {};
	flow_from_packet(&f, s, s->ev.protocol);
	bool match = flow_matches(btf, &f, s->ev.netns, skb_dev(btf, skb), s->ev.protocol);
	if (match && !freeing) {
		struct tracked_skb value = { .head = s->ev.head, .protocol = s->ev.protocol };
		bpf_map_update_elem(&tracked, &key, &value, BPF_ANY);
	} else if (seen) {
		bpf_map_delete_elem(&tracked, &key);
	}
	return match;
}

/* Records without a packet (sockets, routes, neighbours) pass the filters on what they do carry. */
static __always_inline bool keep_flow(const bool btf, struct scratch *s, const struct flow *f, const struct net_device *dev)
{
	if (!cfg.filters)
		return true;
	return flow_matches(btf, f, s->ev.netns, dev, 0) || (f->family == 0 && !(cfg.filters & ~ST_FLT_NETNS) &&
							 s->ev.netns == cfg.netns);
}

static __always_inline int finish(struct scratch *s)
{
	__u32 padded = (s->ev.snap + 7) & ~7U;
	if (padded > ST_SNAPLEN_MAX)
		padded = ST_SNAPLEN_MAX;
	__u32 size = sizeof(struct st_event) + padded;
	s->ev.size = size;
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 flags = waiting + size >= cfg.wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, s, size, flags)) {
		count_lost();
		/* The reader never sees these bytes: a later record must not be left without its own. */
		__u32 zero = 0;
		struct snap_last *last = bpf_map_lookup_elem(&snap_last_map, &zero);
		if (last && !(s->ev.flags & ST_F_NESTED))
			last->skb = 0;
	}
	return 0;
}

/*
 * Drops the packet bytes of a record when this CPU's previous record of the same skb had the same ones.
 * A program that interrupted another keeps its bytes and leaves the reference alone: its record reaches
 * the ring buffer before the interrupted one's, out of the order the reference assumes.
 */
static __always_inline void dedup_bytes(struct scratch *s, bool keep)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&nest_map, &zero);
	if (depth && *depth > 1) {
		s->ev.flags |= ST_F_NESTED;
		return;
	}
	struct snap_last *last = bpf_map_lookup_elem(&snap_last_map, &zero);
	__u32 snap = s->ev.snap;
	if (!last || !snap)
		return;
	__u64 w[8] = {};
	__builtin_memcpy(w, s->data, sizeof(w)); /* the headers: what any rewrite changes */
	__u64 h = 0xcbf29ce484222325ULL ^ snap;
#pragma unroll
	for (int i = 0; i < 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	if (!keep && last->skb == s->ev.skb && last->hash == h) {
		s->ev.snap = 0;
		s->ev.flags |= ST_F_SAME_BYTES;
		return;
	}
	last->skb = s->ev.skb;
	last->hash = h;
}

#define AF_UNIX 1
#define AF_NETLINK 16

/*
 * Unix-domain and netlink sockets carry their messages in skbs too, with no protocol and no device.
 * They are not network traffic: skipping them keeps a bundle about the network stack.
 */
static __always_inline bool local_ipc(const bool btf, const struct sk_buff *skb)
{
	if (R(btf, skb, protocol) != 0)
		return false;
	const struct sock *sk = R(btf, skb, sk);
	if (!sk)
		return false;
	__u16 family = R(btf, sk, __sk_common.skc_family);
	return family == AF_UNIX || family == AF_NETLINK;
}

/* The common shape: an skb-carrying tracepoint. Returns the record to complete, or NULL to skip. */
static __always_inline struct scratch *skb_event(const bool btf, __u16 probe, const struct sk_buff *skb, bool rx_path,
						 bool freeing)
{
	if (!skb || local_ipc(btf, skb))
		return NULL;
	struct scratch *s = begin(probe, true);
	if (!s)
		return NULL;
	fill_skb(btf, s, skb, rx_path);
	if (!keep_skb(btf, s, skb, freeing))
		return NULL;
	dedup_bytes(s, false);
	return s;
}

static __always_inline void fill_sock(const bool btf, struct st_args_sock *a, const struct sock *sk, bool tcp)
{
	struct flow f = {};
	if (!sk)
		return;
	a->sk = (__u64)sk;
	flow_from_sock(btf, &f, sk);
	__builtin_memcpy(a->saddr, f.saddr, 16);
	__builtin_memcpy(a->daddr, f.daddr, 16);
	a->sport = f.sport;
	a->dport = f.dport;
	a->family = f.family;
	a->state = R(btf, sk, __sk_common.skc_state);
	if (tcp && f.family) {
		const struct tcp_sock *tp = (const void *)sk;
		a->srtt_us = BPF_CORE_READ(tp, srtt_us); /* tcp_sock: beyond the typed struct sock */
		a->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd); /* tcp_sock: beyond the typed struct sock */
		a->snd_una = BPF_CORE_READ(tp, snd_una); /* tcp_sock: beyond the typed struct sock */
		a->snd_nxt = BPF_CORE_READ(tp, snd_nxt); /* tcp_sock: beyond the typed struct sock */
		a->packets_out = BPF_CORE_READ(tp, packets_out); /* tcp_sock: beyond the typed struct sock */
		a->retrans_out = BPF_CORE_READ(tp, retrans_out); /* tcp_sock: beyond the typed struct sock */
		a->total_retrans = BPF_CORE_READ(tp, total_retrans); /* tcp_sock: beyond the typed struct sock */
	}
}

/*
 * Two programs per tracepoint: tp_btf and raw_tp. ctx is the tracepoint's argument array in both. The
 * handler gets `btf`: true in tp_btf, where kernel pointers are typed and read with plain loads; false in
 * raw_tp, where every read goes through bpf_probe_read_kernel. The compiler drops the other branch.
 */
/* Runs `call` at the next nesting level of this CPU (see nest_enter). */
#define ST_NESTED(call)                         \
	do {                                    \
		__u32 nest_cpu = nest_enter();  \
		if (nest_cpu) {                 \
			call;                   \
			nest_leave(nest_cpu);   \
		}                               \
	} while (0)

#define ST_TRACEPOINT(tp, handler)                                                                 \
	SEC("tp_btf/" #tp) int btf_##tp(__u64 *ctx) { ST_NESTED(handler(ctx, true)); return 0; }  \
	SEC("raw_tp/" #tp) int raw_##tp(__u64 *ctx) { ST_NESTED(handler(ctx, false)); return 0; }

#define ARG(i, type) ((type)ctx[i])

/* ---- net: device layer ---- */

static __always_inline int rx_event(const bool btf, __u64 *ctx, __u16 probe)
{
	struct scratch *s = skb_event(btf, probe, ARG(0, const struct sk_buff *), true, false);
	return s ? finish(s) : 0;
}

static __always_inline int h_netif_receive_skb(__u64 *ctx, const bool btf) { return rx_event(btf, ctx, ST_P_NETIF_RECEIVE_SKB); }
static __always_inline int h_netif_rx(__u64 *ctx, const bool btf) { return rx_event(btf, ctx, ST_P_NETIF_RX); }
static __always_inline int h_napi_gro_receive_entry(__u64 *ctx, const bool btf) { return rx_event(btf, ctx, ST_P_NAPI_GRO_RECEIVE_ENTRY); }
ST_TRACEPOINT(netif_receive_skb, h_netif_receive_skb)
ST_TRACEPOINT(netif_rx, h_netif_rx)
ST_TRACEPOINT(napi_gro_receive_entry, h_napi_gro_receive_entry)

static __always_inline int h_net_dev_queue(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_NET_DEV_QUEUE, ARG(0, const struct sk_buff *), false, false);
	return s ? finish(s) : 0;
}
ST_TRACEPOINT(net_dev_queue, h_net_dev_queue)

static __always_inline int h_net_dev_start_xmit(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_NET_DEV_START_XMIT, ARG(0, const struct sk_buff *), false, false);
	return s ? finish(s) : 0;
}
ST_TRACEPOINT(net_dev_start_xmit, h_net_dev_start_xmit)

/* net_dev_xmit fires after the driver took the skb, which may be freed already: read nothing from it. */
static __always_inline int h_net_dev_xmit(__u64 *ctx, const bool btf)
{
	__u64 skb = ctx[0];
	const struct net_device *dev = ARG(2, const struct net_device *);
	struct scratch *s;

	if (cfg.filters && !bpf_map_lookup_elem(&tracked, &skb))
		return 0;
	s = begin(ST_P_NET_DEV_XMIT, true);
	if (!s)
		return 0;
	s->ev.skb = skb;
	s->ev.len = (__u32)ctx[3];
	s->ev.args.dev.rc = (__s32)ctx[1];
	if (dev) {
		s->ev.ifindex = R(btf, dev, ifindex);
		s->ev.netns = dev_netns(btf, dev);
	}
	if (cfg.filters)
		s->ev.flags |= ST_F_TRACKED;
	return finish(s);
}
ST_TRACEPOINT(net_dev_xmit, h_net_dev_xmit)

/* ---- skb: lifetime ---- */

/*
 * The kernel stacks of drops (--drop-stack): ids in the records, frames read by the recorder at the end.
 * One entry when not asked (the recorder sizes it before load).
 */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, ST_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

/* Drops whose stack the map did not take (another stack in its hash bucket, or full), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stack_misses SEC(".maps");

static __always_inline int h_kfree_skb(__u64 *ctx, const bool btf)
{
	const struct sk_buff *skb = ARG(0, const struct sk_buff *);
	struct scratch *s = skb_event(btf, ST_P_KFREE_SKB, skb, false, true);
	if (!s)
		return 0;
	s->ev.args.free.location = ctx[1];
	s->ev.args.free.reason = kfree_skb_reason(ctx);
	__u32 zero = 0;
	struct nf_last *last = bpf_map_lookup_elem(&nf_last_map, &zero);
	if (last && last->skb == (__u64)skb) {
		/*
		 * A bracket's, or a function's DROP verdict: nf_hook_slow frees the skb right after the
		 * table returns, so an old verdict (a free not recorded, a task moved) is not this free's.
		 * A function's sets ST_F_NF_FN alone: ST_F_NF_LAST means a bracket was passed.
		 */
		bool fresh = !last->fn || s->ev.ts - last->ts < ST_FN_FREE_NS;
		if (fresh) {
			s->ev.flags |= last->fn ? ST_F_NF_FN : ST_F_NF_LAST;
			s->ev.args.free.nf_pf = last->pf;
			s->ev.args.free.nf_hook = last->hook;
			s->ev.args.free.nf_bracket = last->bracket;
			s->ev.args.free.nf_fn = last->fn;
		}
		last->skb = 0;
	}
	fn_freed_inside(skb, &s->ev);
	if (cfg.options & ST_OPT_DROP_STACK) {
		/* the same stack twice is one entry (the map hashes the frames) */
		long id = bpf_get_stackid(ctx, &stacks, 0);
		if (id >= 0) {
			s->ev.args.free.stack = (__u32)id + 1;
		} else {
			__u32 zero = 0;
			__u64 *n = bpf_map_lookup_elem(&stack_misses, &zero);
			if (n)
				atomic_add(n, 1);
		}
	}
	return finish(s);
}
ST_TRACEPOINT(kfree_skb, h_kfree_skb)

static __always_inline int h_consume_skb(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_CONSUME_SKB, ARG(0, const struct sk_buff *), false, true);
	if (!s)
		return 0;
	s->ev.args.free.location = consume_skb_location(ctx);
	return finish(s);
}
ST_TRACEPOINT(consume_skb, h_consume_skb)

static __always_inline int h_skb_copy_datagram_iovec(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_SKB_COPY_DATAGRAM_IOVEC, ARG(0, const struct sk_buff *), false, false);
	if (!s)
		return 0;
	s->ev.args.misc.a = (__s32)ctx[1];
	return finish(s);
}
ST_TRACEPOINT(skb_copy_datagram_iovec, h_skb_copy_datagram_iovec)

/* ---- tcp and sockets ---- */

/* A socket probe with an optional skb: the skb decides the filter when there is one. */
static __always_inline struct scratch *sock_event(const bool btf, __u16 probe, const struct sock *sk, const struct sk_buff *skb,
						  bool tcp)
{
	struct scratch *s = begin(probe, true);
	if (!s)
		return NULL;
	if (skb) {
		fill_skb(btf, s, skb, false);
		if (!s->ev.netns)
			s->ev.netns = sk_netns(btf, sk);
		if (!keep_skb(btf, s, skb, false))
			return NULL;
		dedup_bytes(s, false);
	} else {
		struct flow f = {};
		flow_from_sock(btf, &f, sk);
		s->ev.netns = sk_netns(btf, sk);
		if (!keep_flow(btf, s, &f, 0))
			return NULL;
	}
	fill_sock(btf, &s->ev.args.sock, sk, tcp);
	return s;
}

/*
 * The skb here is the one in the retransmit queue: what went out is a clone with its own headers and its
 * own records. This one has no headers to filter on or capture (a port or address filter would drop
 * every retransmission), so the socket decides, and the record keeps only the skb's length.
 */
static __always_inline int h_tcp_retransmit_skb(__u64 *ctx, const bool btf)
{
	const struct sk_buff *skb = ARG(1, const struct sk_buff *);
	struct scratch *s = sock_event(btf, ST_P_TCP_RETRANSMIT_SKB, ARG(0, const struct sock *), 0, true);
	if (!s)
		return 0;
	if (skb)
		s->ev.len = R(btf, skb, len);
	return finish(s);
}
ST_TRACEPOINT(tcp_retransmit_skb, h_tcp_retransmit_skb)

static __always_inline int h_tcp_send_reset(__u64 *ctx, const bool btf)
{
	struct scratch *s = sock_event(btf, ST_P_TCP_SEND_RESET, ARG(0, const struct sock *),
				       ARG(1, const struct sk_buff *), true);
	if (!s)
		return 0;
	s->ev.args.sock.reason = tcp_send_reset_reason(ctx);
	return finish(s);
}
ST_TRACEPOINT(tcp_send_reset, h_tcp_send_reset)

static __always_inline int h_tcp_receive_reset(__u64 *ctx, const bool btf)
{
	struct scratch *s = sock_event(btf, ST_P_TCP_RECEIVE_RESET, ARG(0, const struct sock *), 0, true);
	return s ? finish(s) : 0;
}
ST_TRACEPOINT(tcp_receive_reset, h_tcp_receive_reset)

static __always_inline int h_tcp_bad_csum(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_TCP_BAD_CSUM, ARG(0, const struct sk_buff *), false, false);
	return s ? finish(s) : 0;
}
ST_TRACEPOINT(tcp_bad_csum, h_tcp_bad_csum)

static __always_inline int h_tcp_probe(__u64 *ctx, const bool btf)
{
	struct scratch *s = sock_event(btf, ST_P_TCP_PROBE, ARG(0, const struct sock *),
				       ARG(1, const struct sk_buff *), true);
	return s ? finish(s) : 0;
}
ST_TRACEPOINT(tcp_probe, h_tcp_probe)

static __always_inline int h_inet_sock_set_state(__u64 *ctx, const bool btf)
{
	struct scratch *s = sock_event(btf, ST_P_INET_SOCK_SET_STATE, ARG(0, const struct sock *), 0, true);
	if (!s)
		return 0;
	s->ev.args.sock.oldstate = (__u8)ctx[1];
	s->ev.args.sock.state = (__u8)ctx[2];
	return finish(s);
}
ST_TRACEPOINT(inet_sock_set_state, h_inet_sock_set_state)

static __always_inline int h_sock_rcvqueue_full(__u64 *ctx, const bool btf)
{
	const struct sock *sk = ARG(0, const struct sock *);
	struct scratch *s = sock_event(btf, ST_P_SOCK_RCVQUEUE_FULL, sk, ARG(1, const struct sk_buff *), false);
	if (!s)
		return 0;
	s->ev.args.sock.rcvbuf = R(btf, sk, sk_rcvbuf);
	return finish(s);
}
ST_TRACEPOINT(sock_rcvqueue_full, h_sock_rcvqueue_full)

/* ---- udp, icmp ---- */

static __always_inline int h_udp_fail_queue_rcv_skb(__u64 *ctx, const bool btf)
{
	struct scratch *s = sock_event(btf, ST_P_UDP_FAIL_QUEUE_RCV_SKB, ARG(1, const struct sock *),
				       udp_fail_queue_rcv_skb_skb(ctx), false);
	if (!s)
		return 0;
	s->ev.args.sock.reason = (__u32)ctx[0];
	return finish(s);
}
ST_TRACEPOINT(udp_fail_queue_rcv_skb, h_udp_fail_queue_rcv_skb)

static __always_inline int h_icmp_send(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_ICMP_SEND, ARG(0, const struct sk_buff *), false, false);
	if (!s)
		return 0;
	s->ev.args.misc.a = (__s32)ctx[1];
	s->ev.args.misc.b = (__s32)ctx[2];
	return finish(s);
}
ST_TRACEPOINT(icmp_send, h_icmp_send)

/* ---- routing and neighbours ---- */

static __always_inline int h_fib_table_lookup(__u64 *ctx, const bool btf)
{
	const struct flowi4 *fl = ARG(1, const struct flowi4 *);
	struct scratch *s = begin(ST_P_FIB_TABLE_LOOKUP, true);
	struct flow f = {};
	if (!s || !fl)
		return 0;
	struct st_args_route *a = &s->ev.args.route;
	a->table = (__u32)ctx[0];
	a->err = (__s32)ctx[3];
	a->family = AF_INET;
	a->oif = R(btf, fl, __fl_common.flowic_oif);
	a->iif = R(btf, fl, __fl_common.flowic_iif);
	a->proto = R(btf, fl, __fl_common.flowic_proto);
	__u32 saddr = R(btf, fl, saddr), daddr = R(btf, fl, daddr);
	__builtin_memcpy(a->saddr, &saddr, 4);
	__builtin_memcpy(a->daddr, &daddr, 4);
	f.family = AF_INET;
	f.l4 = a->proto;
	__builtin_memcpy(f.saddr, &saddr, 4);
	__builtin_memcpy(f.daddr, &daddr, 4);
	if (!keep_flow(btf, s, &f, 0))
		return 0;
	return finish(s);
}
ST_TRACEPOINT(fib_table_lookup, h_fib_table_lookup)

static __always_inline int h_fib6_table_lookup(__u64 *ctx, const bool btf)
{
	const struct fib6_table *table = ARG(2, const struct fib6_table *);
	const struct flowi6 *fl = ARG(3, const struct flowi6 *);
	struct scratch *s = begin(ST_P_FIB6_TABLE_LOOKUP, true);
	struct flow f = {};
	if (!s || !fl)
		return 0;
	struct st_args_route *a = &s->ev.args.route;
	a->table = table ? R(btf, table, tb6_id) : 0;
	a->family = AF_INET6;
	a->oif = R(btf, fl, __fl_common.flowic_oif);
	a->iif = R(btf, fl, __fl_common.flowic_iif);
	a->proto = R(btf, fl, __fl_common.flowic_proto);
	BPF_CORE_READ_INTO(&a->saddr, fl, saddr);
	BPF_CORE_READ_INTO(&a->daddr, fl, daddr);
	f.family = AF_INET6;
	f.l4 = a->proto;
	__builtin_memcpy(f.saddr, a->saddr, 16);
	__builtin_memcpy(f.daddr, a->daddr, 16);
	if (!keep_flow(btf, s, &f, 0))
		return 0;
	return finish(s);
}
ST_TRACEPOINT(fib6_table_lookup, h_fib6_table_lookup)

static __always_inline struct scratch *neigh_event(const bool btf, __u16 probe, const struct neighbour *n)
{
	struct scratch *s = begin(probe, true);
	if (!s || !n)
		return NULL;
	const struct net_device *dev = R(btf, n, dev);
	struct st_args_route *a = &s->ev.args.route;
	struct flow f = {};
	if (dev) {
		s->ev.ifindex = R(btf, dev, ifindex);
		s->ev.netns = dev_netns(btf, dev);
	}
	a->family = R2(btf, n, tbl, family);
	if (a->family == AF_INET)
		bpf_probe_read_kernel(a->daddr, 4, &n->primary_key);
	else if (a->family == AF_INET6)
		bpf_probe_read_kernel(a->daddr, 16, &n->primary_key);
	a->nud_state = R(btf, n, nud_state);
	BPF_CORE_READ_INTO(&a->lladdr, n, ha);
	if (!keep_flow(btf, s, &f, dev))
		return NULL;
	return s;
}

static __always_inline int h_neigh_update(__u64 *ctx, const bool btf)
{
	struct scratch *s = neigh_event(btf, ST_P_NEIGH_UPDATE, ARG(0, const struct neighbour *));
	if (!s)
		return 0;
	s->ev.args.route.nud_state = (__u8)ctx[2];
	return finish(s);
}
ST_TRACEPOINT(neigh_update, h_neigh_update)

static __always_inline int h_neigh_event_send_dead(__u64 *ctx, const bool btf)
{
	struct scratch *s = neigh_event(btf, ST_P_NEIGH_EVENT_SEND_DEAD, ARG(0, const struct neighbour *));
	if (!s)
		return 0;
	s->ev.args.route.err = (__s32)ctx[1];
	return finish(s);
}
ST_TRACEPOINT(neigh_event_send_dead, h_neigh_event_send_dead)

/* ---- qdisc, xdp ---- */

static __always_inline void fill_qdisc(const bool btf, struct st_args_dev *a, const struct Qdisc *q)
{
	if (!q)
		return;
	a->handle = R(btf, q, handle);
	a->parent = R(btf, q, parent);
	a->qlen = R(btf, q, q.qlen);
	BPF_CORE_READ_STR_INTO(&a->kind, q, ops, id);
}

static __always_inline int h_qdisc_enqueue(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_QDISC_ENQUEUE, ARG(2, const struct sk_buff *), false, false);
	if (!s)
		return 0;
	fill_qdisc(btf, &s->ev.args.dev, ARG(0, const struct Qdisc *));
	return finish(s);
}
ST_TRACEPOINT(qdisc_enqueue, h_qdisc_enqueue)

static __always_inline int h_qdisc_dequeue(__u64 *ctx, const bool btf)
{
	struct scratch *s = skb_event(btf, ST_P_QDISC_DEQUEUE, ARG(3, const struct sk_buff *), false, false);
	if (!s)
		return 0;
	fill_qdisc(btf, &s->ev.args.dev, ARG(0, const struct Qdisc *));
	s->ev.args.dev.rc = (__s32)ctx[2];
	return finish(s);
}
ST_TRACEPOINT(qdisc_dequeue, h_qdisc_dequeue)

static __always_inline int h_xdp_exception(__u64 *ctx, const bool btf)
{
	const struct net_device *dev = ARG(0, const struct net_device *);
	const struct bpf_prog *prog = ARG(1, const struct bpf_prog *);
	struct scratch *s = begin(ST_P_XDP_EXCEPTION, true);
	struct flow f = {};
	if (!s)
		return 0;
	if (dev) {
		s->ev.ifindex = R(btf, dev, ifindex);
		s->ev.netns = dev_netns(btf, dev);
	}
	if (prog)
		s->ev.args.dev.prog_id = R2(btf, prog, aux, id);
	s->ev.args.dev.rc = (__s32)ctx[2];
	if (!keep_flow(btf, s, &f, dev))
		return 0;
	return finish(s);
}
ST_TRACEPOINT(xdp_exception, h_xdp_exception)

/* ---- tier 2: netfilter BPF links ---- */

static __always_inline void read_tuple(const bool btf, struct st_ct_tuple *t, const struct nf_conntrack_tuple *src)
{
	BPF_CORE_READ_INTO(&t->src, src, src.u3);
	BPF_CORE_READ_INTO(&t->dst, src, dst.u3);
	t->sport = BPF_CORE_READ(src, src.u.all);
	t->dport = BPF_CORE_READ(src, dst.u.all);
	t->l3num = BPF_CORE_READ(src, src.l3num);
	t->protonum = BPF_CORE_READ(src, dst.protonum);
}

/* What identifies the packet's state at a bracket: a NAT, a mark or a new conntrack entry changes it. */
static __always_inline __u64 packet_sig(const bool btf, const struct sk_buff *skb)
{
	__u64 w[6] = {};
	unsigned char *head = R(btf, skb, head);
	__u16 nh = R(btf, skb, network_header);
	bpf_probe_read_kernel(&w, sizeof(w) - 8, head + nh); /* L3 header and the ports after it */
	w[5] = R(btf, skb, mark) ^ ((__u64)R(btf, skb, _nfct) << 7);
	__u64 h = 0xcbf29ce484222325ULL;
#pragma unroll
	for (int i = 0; i < 6; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return h;
}

static __always_inline int nf_bracket(const bool btf, struct bpf_nf_ctx *ctx, __u8 bracket, __s32 priority)
{
	const struct nf_hook_state *state = ctx->state;
	const struct sk_buff *skb = ctx->skb;
	__u32 zero = 0;
	struct nf_last *last = bpf_map_lookup_elem(&nf_last_map, &zero);
	if (!last || !skb || !state)
		return NF_ACCEPT;

	__u8 pf = R(btf, state, pf);
	__u8 hook = R(btf, state, hook);
	__u64 sig = packet_sig(btf, skb);
	bool same = last->skb == (__u64)skb && last->pf == pf && last->hook == hook;
	bool changed = same && last->sig != sig;
	last->skb = (__u64)skb;
	last->sig = sig;
	last->pf = pf;
	last->hook = hook;
	last->bracket = bracket;
	last->fn = 0;
	/* one record where the packet enters a hook, and one wherever a table changed it */
	if (same && !changed)
		return NF_ACCEPT;

	struct scratch *s = begin(ST_P_NF_BRACKET + bracket, false);
	if (!s)
		return NF_ACCEPT;
	fill_skb(btf, s, skb, false);
	const struct net_device *in = R(btf, state, in);
	const struct net_device *out = R(btf, state, out);
	struct st_args_nf *a = &s->ev.args.nf;
	a->pf = pf;
	a->hook = hook;
	a->bracket = bracket;
	a->priority = priority;
	a->in_ifindex = in ? R(btf, in, ifindex) : 0;
	a->out_ifindex = out ? R(btf, out, ifindex) : 0;
	s->ev.netns = R2(btf, state, net, ns.inum);
	if (!keep_skb(btf, s, skb, false))
		return NF_ACCEPT;
	dedup_bytes(s, true);

	unsigned long nfct = R(btf, skb, _nfct);
	const struct nf_conn *ct = (const void *)(nfct & ~7UL);
	if (ct) {
		s->ev.flags |= ST_F_CT;
		a->ctinfo = nfct & 7;
		a->ct_status = BPF_CORE_READ(ct, status);
		if (bpf_core_field_exists(ct->mark))
			a->ct_mark = BPF_CORE_READ(ct, mark);
		read_tuple(btf, &a->ct_orig, &ct->tuplehash[0].tuple);
		read_tuple(btf, &a->ct_reply, &ct->tuplehash[1].tuple);
	}
	finish(s);
	return NF_ACCEPT;
}

/* One program per bracket: the priority is a constant of the program (netfilter links have no cookie). */
#define ST_NF_PROGRAM(i, prio)                                                                     \
	SEC("netfilter") int nf_bracket_##i(struct bpf_nf_ctx *ctx)                                \
	{                                                                                          \
		ST_NESTED(nf_bracket(true, ctx, i, prio));                                         \
		return NF_ACCEPT;                                                                  \
	}

#define ST_NF_PROGRAM_ROW(i, prio, table) ST_NF_PROGRAM(i, prio)
ST_NF_BRACKET_TABLE(ST_NF_PROGRAM_ROW)

/* ---- tier 3: kernel functions (netfilter tables and chains, with their verdict) ---- */

/*
 * ipt_do_table's arguments moved in v5.16 ("netfilter: xtables: pass table pointer via nf_hook_ops"):
 * (skb, state, table) before, (priv = table, skb, state) after. The recorder sets this before load.
 */
const volatile __u8 fn_ipt_table_first = 1;

/* The bracket whose table range holds netfilter priority `prio`: the last one below it. */
static __always_inline __u8 bracket_of(__s32 prio)
{
	__u8 b = 0;
#define ST_BRACKET_BELOW(i, p, table) \
	if (prio > (p))               \
		b = i;
	ST_NF_BRACKET_TABLE(ST_BRACKET_BELOW)
#undef ST_BRACKET_BELOW
	return b;
}

/*
 * The hook each skb is in, from nf_hook_slow's entry (vmlinux, typed on every kernel): for a table's
 * function whose own arguments have no types here (5.10 has no module BTF). Every table runs inside
 * nf_hook_slow, so an skb's entry is the current hook's while one does.
 */
struct nf_hooking {
	__u8 pf;
	__u8 hook;
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct nf_hooking);
} nf_hooking SEC(".maps");

/* The skb a netfilter function runs on, from its arguments. */
static __always_inline const struct sk_buff *fn_skb(const struct fn_call *c)
{
	const struct sk_buff *skb = NULL;
	if (c->probe == ST_P_NFT_DO_CHAIN)
		/* nft_pktinfo starts with the skb on every kernel; a raw read needs no module BTF */
		bpf_probe_read_kernel(&skb, sizeof(skb), (const void *)c->a0);
	else
		skb = (const void *)(fn_ipt_table_first ? c->a1 : c->a0);
	return skb;
}

/* Where a netfilter function ran and on which skb; from its arguments. */
static __always_inline const struct sk_buff *fn_nf_where(const struct fn_call *c, struct st_args_fn *a,
							const struct nf_hook_state **state_out)
{
	const struct sk_buff *skb = NULL;
	const struct nf_hook_state *state = NULL;

	skb = fn_skb(c);
	if (c->probe == ST_P_NFT_DO_CHAIN) {
		const struct nft_pktinfo *pkt = (const void *)c->a0;
		if (bpf_core_type_exists(struct nft_chain)) {
			const struct nft_chain *chain = (const void *)c->a1;
			const char *name = BPF_CORE_READ(chain, name);
			if (name && bpf_probe_read_kernel_str(a->chain, sizeof(a->chain), name) > 0)
				a->nf |= ST_FN_NF_CHAIN;
			name = BPF_CORE_READ(chain, table, name);
			if (name && bpf_probe_read_kernel_str(a->table, sizeof(a->table), name) > 0)
				a->nf |= ST_FN_NF_TABLE;
		}
		if (bpf_core_type_exists(struct nft_base_chain)) {
			/* nft_do_chain runs on base chains: the chain sits inside its nft_base_chain */
			const struct nft_base_chain *base =
				(const void *)(c->a1 - bpf_core_field_offset(struct nft_base_chain, chain));
			a->priority = BPF_CORE_READ(base, ops.priority);
			a->pf = BPF_CORE_READ(base, ops.pf);
			a->hook = BPF_CORE_READ(base, ops.hooknum);
			a->nf |= ST_FN_NF_HOOK | ST_FN_NF_PRIORITY;
		}
		if (bpf_core_field_exists(pkt->state))
			state = BPF_CORE_READ(pkt, state);
	} else {
		const struct xt_table *table;
		if (fn_ipt_table_first) {
			table = (const void *)c->a0;
			state = (const void *)c->a2;
		} else {
			state = (const void *)c->a1;
			table = (const void *)c->a2;
		}
		if (bpf_core_type_exists(struct xt_table) &&
		    bpf_probe_read_kernel_str(a->table, sizeof(a->table), &table->name) > 0)
			a->nf |= ST_FN_NF_TABLE;
	}
	if (state) {
		/* the hook's own family: an inet chain's ops say NFPROTO_INET */
		a->pf = BPF_CORE_READ(state, pf);
		a->hook = BPF_CORE_READ(state, hook);
		if (!(a->nf & ST_FN_NF_PRIORITY) && (a->nf & ST_FN_NF_TABLE)) {
			/* iptables: the standard table priorities */
			char t0 = a->table[0], t1 = a->table[1];
			a->priority = t0 == 'r' ? -300 : t0 == 'm' ? -150 : t0 == 's' && t1 == 'e' ? 50 :
				      t0 == 'n' ? (a->hook == 0 || a->hook == 3 ? -100 : 100) : 0;
			a->nf |= ST_FN_NF_PRIORITY;
		}
		a->nf |= ST_FN_NF_HOOK;
	} else if (!(a->nf & ST_FN_NF_HOOK)) {
		/* no types for the function's arguments (no module BTF): the hook nf_hook_slow was called for */
		__u64 key = (__u64)skb;
		struct nf_hooking *h = bpf_map_lookup_elem(&nf_hooking, &key);
		if (h) {
			a->pf = h->pf;
			a->hook = h->hook;
			a->nf |= ST_FN_NF_HOOK;
		}
	}
	if (a->nf & ST_FN_NF_PRIORITY)
		a->bracket = bracket_of(a->priority);
	*state_out = state;
	return skb;
}

/*
 * The record of a netfilter function's exit: its verdict, where it ran, and the packet, which is still
 * the caller's (nf_hook_slow frees a dropped packet after the table returns). A DROP verdict is kept
 * for this CPU's next kfree_skb of the skb, as a bracket's is: its record then names hook and table.
 */
static __always_inline int fn_nf_exit(const struct fn_call *c, __s64 ret)
{
	const struct sk_buff *skb = fn_skb(c);
	if (!skb)
		return 0;
	__u64 key = (__u64)skb;
	struct fn_running *run = bpf_map_lookup_elem(&fn_running, &key);
	bool freed = run && run->freed && run->call.probe == c->probe;
	if (run)
		bpf_map_delete_elem(&fn_running, &key);
	/* freed inside (its free record named the function), or taken (NF_STOLEN: synproxy consumes
	 * it, nft fwd transmits it, 6.7+ frees a dropped one): the skb may be gone, nothing to read */
	if (freed || (ret & ST_NF_VERDICT_MASK) == ST_NF_STOLEN)
		return 0;
	if (local_ipc(false, skb))
		return 0;
	struct scratch *s = begin(c->probe, true);
	if (!s)
		return 0;
	const struct nf_hook_state *state = NULL;
	struct st_args_fn *a = &s->ev.args.fn;
	fn_nf_where(c, a, &state);
	a->ret = ret;
	fill_skb(false, s, skb, false);
	if (state) {
		const struct net *net = BPF_CORE_READ(state, net);
		if (net)
			s->ev.netns = BPF_CORE_READ(net, ns.inum);
	}
	if (!keep_skb(false, s, skb, false))
		return 0;
	dedup_bytes(s, false);
	if ((ret & ST_NF_VERDICT_MASK) == ST_NF_DROP && (a->nf & ST_FN_NF_HOOK)) {
		__u32 zero = 0;
		struct nf_last *last = bpf_map_lookup_elem(&nf_last_map, &zero);
		if (last) {
			last->skb = (__u64)skb;
			last->sig = 0;
			last->pf = a->pf;
			last->hook = a->hook;
			last->bracket = a->bracket;
			last->fn = a->nf & (ST_FN_NF_HOOK | ST_FN_NF_PRIORITY);
			last->ts = s->ev.ts;
		}
	}
	return finish(s);
}

/* A netfilter function starts on an skb: kept until its exit, for a free inside it. */
static __always_inline void fn_enter(const struct fn_call *c)
{
	const struct sk_buff *skb = fn_skb(c);
	if (!skb)
		return;
	__u64 key = (__u64)skb;
	struct fn_running run = { .call = *c, .task = bpf_get_current_task(), .ts = bpf_ktime_get_boot_ns() };
	bpf_map_update_elem(&fn_running, &key, &run, BPF_ANY);
}

/* kfree_skb: an skb freed inside a running netfilter function; its record names where. */
static __always_inline void fn_freed_inside(const struct sk_buff *skb, struct st_event *ev)
{
	__u64 key = (__u64)skb;
	struct fn_running *run = bpf_map_lookup_elem(&fn_running, &key);
	if (!run || run->freed)
		return;
	/*
	 * An entry whose exit was missed (attached late, skipped by recursion protection, kretprobe
	 * instances exhausted) must not name a later skb at this address: the free must run in the
	 * function's task, soon after its entry, and where the kernel gives reasons, for netfilter.
	 */
	if (run->task != bpf_get_current_task() || ev->ts - run->ts > ST_FN_FREE_NS ||
	    !netfilter_drop_reason(ev->args.free.reason)) {
		bpf_map_delete_elem(&fn_running, &key);
		return;
	}
	run->freed = 1;
	struct st_args_fn a = {};
	const struct nf_hook_state *state = NULL;
	fn_nf_where(&run->call, &a, &state);
	if (!(a.nf & ST_FN_NF_HOOK))
		return;
	struct st_args_free *f = &ev->args.free;
	ev->flags |= ST_F_NF_FN;
	f->nf_pf = a.pf;
	f->nf_hook = a.hook;
	f->nf_bracket = a.bracket;
	f->nf_fn = a.nf | ST_FN_NF_INSIDE;
	__builtin_memcpy(f->nf_table, a.table, sizeof(f->nf_table));
	__builtin_memcpy(f->nf_chain, a.chain, sizeof(f->nf_chain));
}

/* fentry: the arguments; fexit: the arguments are still in ctx, the return value after them. */
#define ST_FEXIT_NF(fn, nargs, id)                                                                \
	SEC("fentry/" #fn) int fentry_##fn(__u64 *ctx)                                            \
	{                                                                                          \
		struct fn_call c = { .a0 = ctx[0], .a1 = ctx[1], .a2 = (nargs) > 2 ? ctx[2] : 0,   \
				     .probe = (id) };                                              \
		fn_enter(&c);                                                                      \
		return 0;                                                                          \
	}                                                                                          \
	SEC("fexit/" #fn) int fexit_##fn(__u64 *ctx)                                              \
	{                                                                                          \
		struct fn_call c = { .a0 = ctx[0], .a1 = ctx[1], .a2 = (nargs) > 2 ? ctx[2] : 0,   \
				     .probe = (id) };                                              \
		ST_NESTED(fn_nf_exit(&c, (__s64)ctx[nargs]));                                     \
		return 0;                                                                          \
	}

ST_FEXIT_NF(ipt_do_table, 3, ST_P_IPT_DO_TABLE)
ST_FEXIT_NF(ip6t_do_table, 3, ST_P_IP6T_DO_TABLE)
ST_FEXIT_NF(nft_do_chain, 2, ST_P_NFT_DO_CHAIN)

/*
 * Tier 3, the functions of the packet's path (ST_FN_PATH_TABLE): a record like a tracepoint's, at the
 * function's entry; or at its exit, with the return value (only functions that never free the skb).
 */
static __always_inline int fn_path(__u16 probe, const struct sk_buff *skb, bool exit, __s64 ret)
{
	struct scratch *s = skb_event(false, probe, skb, false, false);
	if (!s)
		return 0;
	if (exit) {
		s->ev.args.fn.ret = ret;
		s->ev.args.fn.nf = ST_FN_RET;
	}
	return finish(s);
}

/* fentry_<name> or fexit_<name>: the skb is argument `arg` (from 1); fexit's return value follows the
 * `nargs` arguments in ctx */
#define ST_FN_PATH_TRAMPOLINE_ENTRY(fn, arg, nargs, id)                                            \
	SEC("fentry/" #fn) int fentry_##fn(__u64 *ctx)                                            \
	{                                                                                          \
		ST_NESTED(fn_path(id, (const void *)ctx[(arg) - 1], false, 0));                   \
		return 0;                                                                          \
	}
#define ST_FN_PATH_TRAMPOLINE_EXIT(fn, arg, nargs, id)                                             \
	SEC("fexit/" #fn) int fexit_##fn(__u64 *ctx)                                              \
	{                                                                                          \
		ST_NESTED(fn_path(id, (const void *)ctx[(arg) - 1], true, (__s64)ctx[nargs]));    \
		return 0;                                                                          \
	}
#define ST_FN_PATH_TRAMPOLINE(X, E, name, id, group, arg, nargs, at) \
	ST_FN_PATH_TRAMPOLINE_##at(name, arg, nargs, ST_P_##E)
ST_FN_PATH_TABLE(ST_FN_PATH_TRAMPOLINE, unused)

#if defined(__TARGET_ARCH_x86)
/*
 * kprobe and kretprobe, where fexit cannot attach (no BTF for the function's module, as on 5.10). The
 * kprobe keeps the arguments by the stack pointer at entry, which points at the return address; the
 * kretprobe finds them 8 bytes below its own (the return popped that address). A stack address names
 * one call, across CPUs (a preempted task moves) and nesting (an interrupt runs on another stack).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct fn_call);
} fn_calls SEC(".maps");

/* The kprobe's side of a pair: keeps the call by its stack pointer. */
static __always_inline void fn_call_keep(struct pt_regs *regs, const struct fn_call *c)
{
	__u64 sp = PT_REGS_SP(regs);
	bpf_map_update_elem(&fn_calls, &sp, c, BPF_ANY);
}

/* The kretprobe's side: the call its kprobe kept, taken out of fn_calls; false when there is none. */
static __always_inline bool fn_call_returned(struct pt_regs *regs, __u16 probe, struct fn_call *out)
{
	__u64 sp = PT_REGS_SP(regs) - 8;
	struct fn_call *found = bpf_map_lookup_elem(&fn_calls, &sp);
	if (!found || found->probe != probe)
		return false;
	*out = *found;
	bpf_map_delete_elem(&fn_calls, &sp);
	return true;
}

#define ST_KPROBE_NF(fn, id)                                                                    \
	SEC("kprobe/" #fn) int kprobe_##fn(struct pt_regs *regs)                                 \
	{                                                                                          \
		struct fn_call c = { .a0 = PT_REGS_PARM1(regs), .a1 = PT_REGS_PARM2(regs),          \
				     .a2 = PT_REGS_PARM3(regs), .probe = (id) };                   \
		fn_call_keep(regs, &c);                                                            \
		fn_enter(&c);                                                                      \
		return 0;                                                                          \
	}                                                                                          \
	SEC("kretprobe/" #fn) int kretprobe_##fn(struct pt_regs *regs)                           \
	{                                                                                          \
		struct fn_call c;                                                                  \
		if (fn_call_returned(regs, (id), &c))                                              \
			ST_NESTED(fn_nf_exit(&c, (__s64)PT_REGS_RC(regs)));                       \
		return 0;                                                                          \
	}

/* nf_hook_slow(skb, state, ...): the hook, for the tables' functions (see nf_hooking) */
SEC("kprobe/nf_hook_slow") int kprobe_nf_hook_slow(struct pt_regs *regs)
{
	__u64 key = PT_REGS_PARM1(regs);
	const struct nf_hook_state *state = (const void *)PT_REGS_PARM2(regs);
	struct nf_hooking h = { .pf = BPF_CORE_READ(state, pf), .hook = BPF_CORE_READ(state, hook) };
	if (key)
		bpf_map_update_elem(&nf_hooking, &key, &h, BPF_ANY);
	return 0;
}

ST_KPROBE_NF(ipt_do_table, ST_P_IPT_DO_TABLE)
ST_KPROBE_NF(ip6t_do_table, ST_P_IP6T_DO_TABLE)
ST_KPROBE_NF(nft_do_chain, ST_P_NFT_DO_CHAIN)

/* kprobe_<name>, and for a record at the exit kretprobe_<name>, which finds the skb by the stack
 * pointer as the netfilter functions' pair does */
#define ST_FN_PATH_KPROBE_ENTRY(fn, arg, nargs, id)                                                \
	SEC("kprobe/" #fn) int kprobe_##fn(struct pt_regs *regs)                                 \
	{                                                                                          \
		ST_NESTED(fn_path(id, (const void *)PT_REGS_PARM##arg(regs), false, 0));          \
		return 0;                                                                          \
	}
#define ST_FN_PATH_KPROBE_EXIT(fn, arg, nargs, id)                                                 \
	SEC("kprobe/" #fn) int kprobe_##fn(struct pt_regs *regs)                                 \
	{                                                                                          \
		struct fn_call c = { .a0 = PT_REGS_PARM##arg(regs), .probe = (id) };               \
		fn_call_keep(regs, &c);                                                            \
		return 0;                                                                          \
	}                                                                                          \
	SEC("kretprobe/" #fn) int kretprobe_##fn(struct pt_regs *regs)                           \
	{                                                                                          \
		struct fn_call c;                                                                  \
		if (fn_call_returned(regs, (id), &c))                                              \
			ST_NESTED(fn_path(id, (const void *)c.a0, true, (__s64)PT_REGS_RC(regs)));        \
		return 0;                                                                          \
	}
#define ST_FN_PATH_KPROBE(X, E, name, id, group, arg, nargs, at) ST_FN_PATH_KPROBE_##at(name, arg, nargs, ST_P_##E)
ST_FN_PATH_TABLE(ST_FN_PATH_KPROBE, unused)
#endif
