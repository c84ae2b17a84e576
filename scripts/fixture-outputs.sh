#!/usr/bin/env bash
# Writes every analyzer command's output on every committed fixture into OUTDIR, one file per
# (fixture, command), so two builds can be compared with `diff -r`: a change that must not alter
# behaviour (a refactor, a speed-up) shows no difference.
#
#   scripts/fixture-outputs.sh OUTDIR [SKBTRAIL]      (SKBTRAIL: default .build/debug/skbtrail)
#   scripts/fixture-outputs.sh --compare BEFORE AFTER  (diff -r, exit 1 on any difference)
#
# Covered: info (text and json), drops, paths (text, json, --date, --detail), diag (text, --quiet,
# json, --date), rules FILE, latency (lifetime, --summary, json), tcp (text, --samples json), and
# every view through sql as CSV.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ ${1:-} == --compare ]]; then
    [[ $# == 3 ]] || { echo "usage: $0 --compare BEFORE AFTER" >&2; exit 2; }
    if diff -r "$2" "$3" >/dev/null; then
        echo "fixture-outputs: identical ($(find "$2" -type f | wc -l) files)"
        exit 0
    fi
    diff -r "$2" "$3" | head -60
    echo "fixture-outputs: $(diff -rq "$2" "$3" | wc -l) files differ" >&2
    exit 1
fi

[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [SKBTRAIL]" >&2; exit 2; }
OUT=$1
BIN=${2:-$ROOT/.build/debug/skbtrail}
[[ -x $BIN ]] || { echo "fixture-outputs: $BIN is not built (swift build)" >&2; exit 2; }
mkdir -p "$OUT"
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
export SKBTRAIL_CACHE_DIR=$CACHE

# Every view, in an order that does not depend on how rows were written.
VIEWS=(
    "recording|SELECT * FROM recording"
    "probe|SELECT * FROM probe ORDER BY probe, family, hook, name"
    "event|SELECT * FROM event ORDER BY id"
    "packet|SELECT * FROM packet ORDER BY id"
    "path_step|SELECT * FROM path_step ORDER BY packet_id, step"
    "clone|SELECT * FROM clone ORDER BY child_id"
    "nat_rewrite|SELECT packet_id, event_id, ts, t_ns, kind, proto, before_saddr, before_sport, before_daddr, before_dport, after_saddr, after_sport, after_daddr, after_dport, nf_family, nf_hook, nf_table, netns, netns_name, ifindex, ifname, ct_orig, ct_reply, text FROM nat_rewrite ORDER BY event_id, kind"
    "lost|SELECT * FROM lost ORDER BY cpu"
    "finding|SELECT packet_id, event_id, level, severity, code, rule, message, advice, confidence, inferred, tuple, fate FROM finding ORDER BY packet_id, event_id, code, message"
    "tcp_sample|SELECT * FROM tcp_sample ORDER BY 1, 2, 3"
    "tcp_connection|SELECT * FROM tcp_connection ORDER BY 1"
)

run() {  # run NAME ARGS...: stdout and stderr, and the exit status, into one file
    local name=$1; shift
    { "$BIN" "$@" 2>&1; echo "exit $?"; } >"$dir/$name" || true
}

n=0
while IFS= read -r bundle; do
    rel=${bundle#"$ROOT/fixtures/"}
    dir=$OUT/${rel%.skbt}
    mkdir -p "$dir"
    run info info "$bundle"
    run info.json info "$bundle" --format json
    run drops drops "$bundle"
    run drops.json drops "$bundle" --format json
    run paths paths "$bundle"
    run paths.json paths "$bundle" --format json
    run paths.date paths "$bundle" --date
    run paths.detail paths "$bundle" --detail
    run diag diag "$bundle"
    run diag.quiet diag "$bundle" --quiet
    run diag.json diag "$bundle" --format json
    run diag.date diag "$bundle" --date
    run rules rules "$bundle"
    run latency latency "$bundle"
    run latency.summary latency "$bundle" --summary
    run latency.json latency "$bundle" --format json
    run tcp tcp "$bundle"
    run tcp.json tcp "$bundle" --samples --format json
    for v in "${VIEWS[@]}"; do
        run "sql.${v%%|*}" sql "$bundle" --format csv "${v#*|}"
    done
    n=$((n + 1))
done < <(find "$ROOT/fixtures" -name '*.skbt' | sort)
echo "fixture-outputs: $n fixtures, $(find "$OUT" -type f | wc -l) files in $OUT" >&2
