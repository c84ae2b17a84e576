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

#endif /* SKBTRAIL_CORE_FIXES_BPF_H */
