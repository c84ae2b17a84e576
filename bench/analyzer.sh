#!/usr/bin/env bash
# Analyzer speed: records a real bundle (ping flood and UDP flood across a veth pair), replays its
# records into bundles of 1 M and EVENTS events (bench/replay.py), and times decode + rebuild, diag
# and a typical SQL query on each, with peak memory. Called by bench/run.sh; runs alone too:
#
#   bench/analyzer.sh [EVENTS] [BIN_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
events=${1:-10000000}
bin=${2:-$here/.build/release}
[ -x "$bin/skbtrail" ] || (cd "$here" && swift build -c release --product skbtrail >/dev/null)
[ -x "$bin/skbtrail-record" ] || (cd "$here" && swift build -c release --product skbtrail-record >/dev/null)
# Debian's python3 and its packages (a python3 earlier on PATH, e.g. pyenv's, would lack them)
py=/usr/bin/python3
"$py" -c 'import zstandard, numpy' 2>/dev/null || apt-get install -y -qq python3-zstandard python3-numpy >/dev/null
for pair in iperf3:iperf3 sqlite3:sqlite3 bc:bc; do
    command -v "${pair%%:*}" >/dev/null || apt-get install -y -qq "${pair#*:}" >/dev/null
done
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null

work=$(mktemp -d /tmp/skbtrail-bench-an.XXXXXX)
ns_a=stba-a-$$
ns_b=stba-b-$$
cleanup() {
    [ -f "$work/iperf.pid" ] && kill "$(cat "$work/iperf.pid")" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A real recording: every probe, netfilter included, on a ping flood and a short UDP flood.
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add stba-a0 netns "$ns_a" type veth peer name stba-b0 netns "$ns_b"
ip -n "$ns_a" addr add 10.202.0.1/24 dev stba-a0
ip -n "$ns_b" addr add 10.202.0.2/24 dev stba-b0
ip -n "$ns_a" link set stba-a0 up
ip -n "$ns_b" link set stba-b0 up
ip netns exec "$ns_b" iperf3 -s -D -p 5201 --pidfile "$work/iperf.pid" >/dev/null
sleep 0.5
echo "recording the source bundle..." >&2
"$bin/skbtrail-record" -q -o "$work/source.skbt" --addr 10.202.0.2 -- ip netns exec "$ns_a" bash -c \
    "ping -f -c 20000 -q 10.202.0.2 >/dev/null; iperf3 -c 10.202.0.2 -u -b 20M -l 200 -t 1 >/dev/null" >&2

measure() { # NAME COMMAND...: prints "seconds peak_rss_kib"
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
    cat "$work/$name.time"
}

echo
echo "Analyzer (bundles replayed from a real recording; one core; release build)"
printf '%-10s %-30s %10s %12s %10s\n' events step seconds events/s "peak MiB"
for n in 1000000 "$events"; do
    bundle="$work/replay-$n.skbt"
    "$py" "$here/bench/replay.py" "$work/source.skbt" "$bundle" "$n" 2>/dev/null
    total=$(sqlite3 "$bundle" "SELECT sum(records) FROM chunk")
    export SKBTRAIL_CACHE_DIR="$work/cache-$n"
    read -r s m < <(SKBTRAIL_TIMING=1 measure decode-$n "$bin/skbtrail" info "$bundle")
    printf '%-10s %-30s %10.2f %12.0f %10.0f\n' "$total" "decode+rebuild (info, cold)" "$s" "$(echo "$total / $s" | bc -l)" "$(echo "$m / 1024" | bc -l)"
    # where the decode's time went (SKBTRAIL_TIMING): each phase alone, as events per second of it
    grep -E '^time ' "$work/decode-$n.err" | while read -r _ phase secs _; do
        case ${phase%:} in
            read) what="read chunks (zstd, split)" ;;
            walk) what="walk records, parse headers" ;;
            order) what="time order" ;;
            rebuild) what="packets: assign records" ;;
            rows) what="write event rows" ;;
            packets) what="packets: fate, NAT, write" ;;
            finish) what="clones, last packets" ;;
            indexes) what="indexes" ;;
            *) what=${phase%:} ;;
        esac
        printf '%-10s   %-28s %10.2f %12.0f\n' "" "$what" "$secs" "$(echo "$total / ($secs + 0.0001)" | bc -l)"
    done
    grep -E '^held: ' "$work/decode-$n.err" | sed 's/^/             /' || true
    read -r s m < <(measure info-$n "$bin/skbtrail" info "$bundle")
    printf '%-10s %-30s %10.2f %12s %10.0f\n' "$total" "info (cached)" "$s" "-" "$(echo "$m / 1024" | bc -l)"
    if "$bin/skbtrail" --help | grep -q ' diag '; then
        read -r s m < <(measure diag-$n "$bin/skbtrail" diag --quiet "$bundle")
        printf '%-10s %-30s %10.2f %12.0f %10.0f\n' "$total" "diag --quiet (cached decode)" "$s" "$(echo "$total / $s" | bc -l)" "$(echo "$m / 1024" | bc -l)"
    fi
    read -r s m < <(measure sql-$n "$bin/skbtrail" sql "$bundle" \
        "SELECT fate, drop_reason, count(*) FROM packet GROUP BY 1, 2 ORDER BY 3 DESC")
    printf '%-10s %-30s %10.2f %12s %10.0f\n' "$total" "sql: packets by fate" "$s" "-" "$(echo "$m / 1024" | bc -l)"
    read -r s m < <(measure sql2-$n "$bin/skbtrail" sql "$bundle" \
        "SELECT probe_name, count(*) FROM event GROUP BY 1 ORDER BY 2 DESC")
    printf '%-10s %-30s %10.2f %12s %10.0f\n' "$total" "sql: events by probe" "$s" "-" "$(echo "$m / 1024" | bc -l)"
    # probe_name LIKE is served from the probe names (ev's plan 4), as rule netfilter-path uses it
    read -r s m < <(measure sql3-$n "$bin/skbtrail" sql "$bundle" \
        "SELECT nf_hook, count(*) FROM event WHERE probe_name LIKE 'nf:%' GROUP BY 1 ORDER BY 2 DESC")
    printf '%-10s %-30s %10.2f %12s %10.0f\n' "$total" "sql: netfilter steps (LIKE)" "$s" "-" "$(echo "$m / 1024" | bc -l)"
    rm -rf "$work/cache-$n" "$bundle"
done
