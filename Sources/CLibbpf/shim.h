#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <unistd.h>
#include <sys/syscall.h>

/* libbpf's print callback takes a va_list: format it here so Swift gets a plain string.
 * skbtrail_log_line is defined in Swift with @_cdecl. */
#include <stdio.h>
#include <stdarg.h>
extern void skbtrail_log_line(int level, const char *line);
#include <stdlib.h>
static int skbtrail_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	/* whole: a verifier log is one message of up to megabytes, and its reason is at its end */
	va_list copy;
	va_copy(copy, args);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	char *line = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!line)
		return 0;
	vsnprintf(line, (size_t)n + 1, fmt, args);
	skbtrail_log_line((int)level, line);
	free(line);
	return 0;
}
static inline void skbtrail_capture_libbpf_log(void)
{
	libbpf_set_print(skbtrail_libbpf_print);
}

#include <string.h>
#include <errno.h>

/* Number of values of the enum `name` in `btf`, or -1 when the kernel has no such enum. */
static inline int skbtrail_btf_enum_count(const struct btf *btf, const char *name)
{
	__s32 id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM);
	if (id < 0)
		id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM64);
	if (id < 0)
		return -1;
	return btf_vlen(btf__type_by_id(btf, id));
}

/* The i-th value of enum `name`: its name (owned by btf) and value. Returns 0 on success. */
static inline int skbtrail_btf_enum_at(const struct btf *btf, const char *name, int i,
				       const char **out_name, long long *out_value)
{
	__s32 id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM);
	if (id >= 0) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		if (i < 0 || i >= btf_vlen(t))
			return -1;
		const struct btf_enum *e = btf_enum(t) + i;
		*out_name = btf__name_by_offset(btf, e->name_off);
		*out_value = btf_kflag(t) ? (long long)e->val : (long long)(unsigned)e->val;
		return 0;
	}
	id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM64);
	if (id < 0)
		return -1;
	const struct btf_type *t = btf__type_by_id(btf, id);
	if (i < 0 || i >= btf_vlen(t))
		return -1;
	const struct btf_enum64 *e = btf_enum64(t) + i;
	*out_name = btf__name_by_offset(btf, e->name_off);
	*out_value = (long long)btf_enum64_value(e);
	return 0;
}

/* Whether `btf` has a type (any kind) called `name`: e.g. btf_trace_kfree_skb for tp_btf. */
static inline int skbtrail_btf_has_type(const struct btf *btf, const char *name)
{
	return btf__find_by_name(btf, name) >= 0;
}

/*
 * The parameters of function `name` in `btf`: how many (-1 when `btf` has no such function), and in
 * `is_skb` whether parameter `skb_arg` (from 1) is a pointer to struct sk_buff.
 */
static inline int skbtrail_btf_func_params(const struct btf *btf, const char *name, int skb_arg, int *is_skb)
{
	*is_skb = 0;
	__s32 id = btf__find_by_name_kind(btf, name, BTF_KIND_FUNC);
	if (id < 0)
		return -1;
	const struct btf_type *fn = btf__type_by_id(btf, id);
	const struct btf_type *proto = fn ? btf__type_by_id(btf, fn->type) : NULL;
	if (!proto || !btf_is_func_proto(proto))
		return -1;
	int n = btf_vlen(proto);
	if (skb_arg >= 1 && skb_arg <= n) {
		__s32 t = btf__resolve_type(btf, btf_params(proto)[skb_arg - 1].type);
		const struct btf_type *ptr = t > 0 ? btf__type_by_id(btf, t) : NULL;
		if (ptr && btf_is_ptr(ptr)) {
			__s32 target = btf__resolve_type(btf, ptr->type);
			const struct btf_type *st = target > 0 ? btf__type_by_id(btf, target) : NULL;
			if (st && btf_is_struct(st) && strcmp(btf__name_by_offset(btf, st->name_off), "sk_buff") == 0)
				*is_skb = 1;
		}
	}
	return n;
}

/* Offset of global variable `var` inside the object's .rodata, or -1. */
static inline long skbtrail_rodata_offset(const struct bpf_object *obj, const char *var)
{
	const struct btf *btf = bpf_object__btf(obj);
	if (!btf)
		return -1;
	__s32 id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (id < 0)
		return -1;
	const struct btf_type *sec = btf__type_by_id(btf, id);
	const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *v = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, v->name_off), var) == 0)
			return vs->offset;
	}
	return -1;
}

/* BPF_LINK_CREATE for a netfilter program (kernel 6.4+). Returns the link fd or -errno. The attr
 * layout (prog_fd, target_fd, attach_type, flags, then netfilter {pf, hooknum, priority, flags}) is
 * the kernel's UAPI; Debian's headers predate it. */
static inline int skbtrail_nf_link_create(int prog_fd, unsigned int attach_type, unsigned int pf,
					  unsigned int hooknum, int priority)
{
	union {
		struct {
			__u32 prog_fd, target_fd, attach_type, flags;
			__u32 pf, hooknum;
			__s32 priority;
			__u32 nf_flags;
		} s;
		char pad[128];
	} attr;
	memset(&attr, 0, sizeof(attr));
	attr.s.prog_fd = prog_fd;
	attr.s.attach_type = attach_type;
	attr.s.pf = pf;
	attr.s.hooknum = hooknum;
	attr.s.priority = priority;
	int fd = (int)syscall(__NR_bpf, 28 /* BPF_LINK_CREATE */, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

/* setns(fd, CLONE_NEWNET) without _GNU_SOURCE: netfilter hooks are per namespace, so the recorder
 * enters each one to create its links there. */
static inline int skbtrail_enter_netns(int fd)
{
	return (int)syscall(__NR_setns, fd, 0x40000000 /* CLONE_NEWNET */);
}
