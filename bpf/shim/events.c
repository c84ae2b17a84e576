/* The tables of bpf/include/events.h, for Swift: the probe table, the functions of the packet's path and the
 * netfilter brackets. */
#include "events.h"

#define ST_PROBE_ROW(E, name, id, group, kind, args, role) \
	{ #name, #group, id, ST_KIND_##kind, ST_ARGS_##args, ST_ROLE_##role },
static const struct st_probe_info probe_rows[] = { ST_PROBE_TABLE(ST_PROBE_ROW) };

#define ST_NF_BRACKET_ROW(index, priority, table) [index] = { priority, table },
static const struct st_nf_bracket_info bracket_rows[ST_NF_BRACKETS] = { ST_NF_BRACKET_TABLE(ST_NF_BRACKET_ROW) };

#define ST_FN_PATH_ROW(X, E, name, id, group, skb, nargs, at) { id, skb, nargs, ST_FN_AT_##at },
static const struct st_fn_path_info fn_path_rows[] = { ST_FN_PATH_TABLE(ST_FN_PATH_ROW, unused) };

const struct st_fn_path_info *st_fn_path_rows(__u32 *count)
{
	*count = sizeof(fn_path_rows) / sizeof(fn_path_rows[0]);
	return fn_path_rows;
}

const struct st_probe_info *st_probe_rows(__u32 *count)
{
	*count = sizeof(probe_rows) / sizeof(probe_rows[0]);
	return probe_rows;
}

const struct st_nf_bracket_info *st_nf_bracket_rows(__u32 *count)
{
	*count = ST_NF_BRACKETS;
	return bracket_rows;
}
