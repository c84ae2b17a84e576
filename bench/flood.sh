#!/usr/bin/env bash
# Analyzer at production scale on many short packets, side by side with perf script: a UDP flood of
# 64-byte datagrams between two namespaces is recorded once by skbtrail-record and once by
# `perf record -a` on the same four tracepoints (net_dev_queue, netif_receive_skb, kfree_skb,
# consume_skb); the skbtrail bundle is replayed (bench/replay.py) to each size in PACKETS, and every
# analyzer command is timed on it (user+sys CPU, wall, peak memory), with the events/s of `perf script`
# on its own perf.data beside, and the ratio of the two. Run as root from a clone:
#
#   bench/flood.sh [SECONDS] [PACKETS...]        (default: 4 s; 100000 1000000 10000000 packets)
#   BIN=.build/release bench/flood.sh 4 100000   (the built binaries to use)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-4}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000 10000000)
bin=${BIN:-$here/.build/release}
[ "$(id -u)" = 0 ] || { echo "bench/flood.sh: run as root (it records with eBPF and makes namespaces)" >&2; exit 1; }
[ -x "$bin/skbtrail" ] || (cd "$here" && swift build -c release --product skbtrail >/dev/null)
[ -x "$bin/skbtrail-record" ] || (cd "$here" && swift build -c release --product skbtrail-record >/dev/null)
for pair in iperf3:iperf3 perf:linux-perf sqlite3:sqlite3 bc:bc; do
    command -v "${pair%%:*}" >/dev/null || apt-get install -y -qq "${pair#*:}" >/dev/null
done
# Debian's python3 and its packages (a python3 earlier on PATH, e.g. pyenv's, would lack them)
py=/usr/bin/python3
"$py" -c 'import zstandard, numpy' 2>/dev/null || apt-get install -y -qq python3-zstandard python3-numpy >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null

work=$(mktemp -d /tmp/skbtrail-bench-flood.XXXXXX)
ns_a=stbf-a-$$
ns_b=stbf-b-$$
cleanup() {
    [ -f "$work/iperf.pid" ] && kill "$(cat "$work/iperf.pid")" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add stbf-a0 netns "$ns_a" type veth peer name stbf-b0 netns "$ns_b"
ip -n "$ns_a" addr add 10.204.0.1/24 dev stbf-a0
ip -n "$ns_b" addr add 10.204.0.2/24 dev stbf-b0
ip -n "$ns_a" link set stbf-a0 up
ip -n "$ns_b" link set stbf-b0 up
ip netns exec "$ns_b" iperf3 -s -D -p 5201 --pidfile "$work/iperf.pid" >/dev/null
sleep 0.5
flood=(ip netns exec "$ns_a" iperf3 -c 10.204.0.2 -u -b 0 -l 64 -t "$seconds")
tracepoints=net:net_dev_queue,net:netif_receive_skb,skb:kfree_skb,skb:consume_skb

echo "recording the flood with skbtrail-record and with perf record (${seconds} s each)..." >&2
"$bin/skbtrail-record" -q -o "$work/source.skbt" --probes net_dev_queue,netif_receive_skb,kfree_skb,consume_skb \
    -- "${flood[@]}" >/dev/null
perf record -q -a -e "$tracepoints" -o "$work/perf.data" -- "${flood[@]}" >/dev/null 2>&1
perf_events=$(perf script -i "$work/perf.data" 2>/dev/null | wc -l)
read -r perf_cpu perf_wall _ < <(/usr/bin/time -f "%U %S %e" perf script -i "$work/perf.data" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2, $3}')
perf_rate=$(echo "$perf_events / $perf_cpu" | bc -l)
source_events=$(sqlite3 "$work/source.skbt" "SELECT sum(records) FROM chunk")
source_packets=$(SKBTRAIL_CACHE_DIR="$work/cache-source" "$bin/skbtrail" sql "$work/source.skbt" --format csv "SELECT packets FROM recording" | tail -1 | tr -d '\r')

measure() { # COMMAND...: prints "cpu_seconds wall_seconds peak_MiB"
    /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
    awk '{printf "%.2f %.2f %.0f\n", $1 + $2, $3, $4 / 1024}' "$work/time"
}

echo
printf 'perf script: %d events of perf.data in %.2f s CPU: %.0f events/s\n' "$perf_events" "$perf_cpu" "$perf_rate"
printf 'skbtrail source bundle: %d events, %d packets (%s)\n\n' "$source_events" "$source_packets" "$(du -h "$work/source.skbt" | cut -f1)"
printf '%-9s %-9s %-24s %8s %8s %11s %8s %9s\n' packets events command "cpu s" "wall s" events/s "MiB" "vs perf"
for n in "${sizes[@]}"; do
    bundle="$work/replay-$n.skbt"
    # replay.py counts events: as many per packet as the source has
    "$py" "$here/bench/replay.py" "$work/source.skbt" "$bundle" "$((n * source_events / source_packets))" 2>/dev/null
    export SKBTRAIL_CACHE_DIR="$work/cache-$n"
    read -r c w m < <(measure "$bin/skbtrail" info "$bundle")
    events=$(sqlite3 "$bundle" "SELECT sum(records) FROM chunk")
    packets=$("$bin/skbtrail" sql "$bundle" --format csv "SELECT packets FROM recording" | tail -1 | tr -d '\r')
    row() { printf '%-9s %-9s %-24s %8.2f %8.2f %11.0f %8s %8.2fx\n' "$packets" "$events" "$1" "$2" "$3" "$(echo "$events / $2" | bc -l)" "$4" "$(echo "$events / $2 / $perf_rate" | bc -l)"; }
    row "info (cold decode)" "$c" "$w" "$m"
    for cmd in "paths" "diag --quiet" "drops" "latency" "tcp"; do
        # shellcheck disable=SC2086 # the command's words
        read -r c w m < <(measure "$bin/skbtrail" $cmd "$bundle")
        row "$cmd" "$c" "$w" "$m"
    done
    read -r c w m < <(measure "$bin/skbtrail" sql "$bundle" "SELECT probe_name, count(*) FROM event GROUP BY 1")
    row "sql: events by probe" "$c" "$w" "$m"
    rm -rf "$work/cache-$n" "$bundle"
done
echo
echo "cpu s: user+sys CPU of the command; vs perf: its events/s over perf script's (perf script prints each"
echo "event as text; the skbtrail commands rebuild packets, run the rules or print paths)."
