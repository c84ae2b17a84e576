/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel-version differences, in one place. Each helper picks the right access for the running
 * kernel through CO-RE; libbpf resolves the checks at load, and the verifier prunes the dead branch.
 */
#ifndef SKBTRAIL_CORE_FIXES_BPF_H
#define SKBTRAIL_CORE_FIXES_BPF_H

struct sock;
struct sk_buff;

/* v6.3 ("net: add location to trace_consume_skb()") added the caller address to consume_skb. */
typedef void (*btf_trace_consume_skb___loc)(void *, struct sk_buff *, void *);

static __always_inline __u64 consume_skb_location(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_consume_skb___loc))
		return ctx[1];
	return 0;
}

/* v6.10 ("tcp: rstreason: ...") added the reset reason to tcp_send_reset. */
typedef void (*btf_trace_tcp_send_reset___reason)(void *, const struct sock *, const struct sk_buff *, int);

static __always_inline __u32 tcp_send_reset_reason(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_tcp_send_reset___reason))
		return (__u32)ctx[2];
	return 0;
}

/*
 * v5.17 ("net: skb: introduce kfree_skb_reason()") added the drop reason to kfree_skb, as its third
 * argument, with the enum skb_drop_reason; before it the tracepoint has (skb, location) only. The enum's
 * presence tells the two apart (its values grow every release; later arguments come after the reason).
 */
enum skb_drop_reason { SKB_DROP_REASON_NOT_SPECIFIED___local };

static __always_inline __u32 kfree_skb_reason(__u64 *ctx)
{
	if (bpf_core_type_exists(enum skb_drop_reason))
		return (__u32)ctx[2];
	return 0;
}

/* The kernel's number for SKB_DROP_REASON_NETFILTER_DROP (5.19+): enum values differ by kernel. */
enum skb_drop_reason___nf { SKB_DROP_REASON_NETFILTER_DROP = 1 };

/* Whether `reason` can be a netfilter drop: it is NETFILTER_DROP, or the kernel gives no reasons. */
static __always_inline bool netfilter_drop_reason(__u32 reason)
{
	if (!bpf_core_enum_value_exists(enum skb_drop_reason___nf, SKB_DROP_REASON_NETFILTER_DROP))
		return true;
	return reason == bpf_core_enum_value(enum skb_drop_reason___nf, SKB_DROP_REASON_NETFILTER_DROP);
}

/*
 * v6.10 ("net: udp: add IP/port data to the tracepoint udp/udp_fail_queue_rcv_skb") added the skb to
 * udp_fail_queue_rcv_skb; before it the tracepoint has (rc, sk) only, and a tp_btf program that reads a
 * third argument is refused ("reg type unsupported for arg#0"). No skb: the record comes from the socket.
 */
typedef void (*btf_trace_udp_fail_queue_rcv_skb___skb)(void *, int, struct sock *, struct sk_buff *);

static __always_inline const struct sk_buff *udp_fail_queue_rcv_skb_skb(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_udp_fail_queue_rcv_skb___skb))
		return (const struct sk_buff *)ctx[2];
	return 0;
}

/*
 * An atomic add whose old value is not wanted. Clang 20+ compiles __sync_fetch_and_add to
 * BPF_ATOMIC | BPF_FETCH (v5.12, "bpf: Add instructions for atomic_[cmp]xchg/fetch_add"), even with
 * its result unused, which the verifier of 5.10 refuses; a relaxed __atomic_fetch_add with its result
 * unused is the plain BPF_XADD every kernel takes.
 */
#define atomic_add(p, v) ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))

/*
 * v5.19 ("bpf: add bpf_map_lookup_percpu_elem for percpu map") lets a program reach another CPU's
 * value. Before it, this CPU's value: only netfilter programs (v6.4+) can be moved to another CPU
 * while they run, so on those older kernels the CPU is always this one.
 */
static __always_inline void *lookup_cpu_elem(void *map, const void *key, __u32 cpu)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_map_lookup_percpu_elem))
		return bpf_map_lookup_percpu_elem(map, key, cpu);
	return bpf_map_lookup_elem(map, key);
}

#endif /* SKBTRAIL_CORE_FIXES_BPF_H */
