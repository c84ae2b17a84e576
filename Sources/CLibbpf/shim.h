#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <unistd.h>
#include <sys/syscall.h>

/* Swift cannot call the variadic syscall(2); BPF_LINK_CREATE for netfilter links needs it
 * (Debian's libbpf 1.1 predates netfilter links). */
static inline int skbtrail_bpf_syscall(int cmd, void *attr, unsigned int size)
{
	return (int)syscall(__NR_bpf, cmd, attr, size);
}

/* libbpf's print callback takes a va_list: format it here so Swift gets a plain string. */
#include <stdio.h>
#include <stdarg.h>
typedef void (*skbtrail_log_fn)(int level, const char *line);
static skbtrail_log_fn skbtrail_log_sink;
static int skbtrail_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char buf[1024];
	if (!skbtrail_log_sink)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, args);
	skbtrail_log_sink((int)level, buf);
	return 0;
}
static inline void skbtrail_set_libbpf_log(skbtrail_log_fn fn)
{
	skbtrail_log_sink = fn;
	libbpf_set_print(fn ? skbtrail_libbpf_print : NULL);
}
