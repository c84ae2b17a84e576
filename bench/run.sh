#!/usr/bin/env bash
# skbtrail benchmarks: recorder overhead, losses, CPU cost and size against perf record and bpftrace,
# and analyzer speed. Prints one table per part. Runs as root on Linux; see docs/performance.md.
#
#   bench/run.sh [--seconds N] [--rounds R] [--events N] [--only recorder|analyzer]
#
# TRACERS="none skbtrail-3 perf-3" and LOADS=udp narrow the recorder part. Tracers: none, skbtrail-3 and
# perf-3 (3 tracepoints: a packet's send, receive and free), skbtrail and perf (8 tracepoints of the
# device layer and skb lifetime), skbtrail-all (every probe, netfilter brackets included), bpftrace
# (the 8 tracepoints, printf to a file), skbtrail-1m and perf-1m (the 8 tracepoints with 1 MiB of
# buffer in all instead of 16, to compare losses).
#
# Tracers are run interleaved (round 1: none, skbtrail, perf, bpftrace; round 2: ...) and every figure
# is a ratio to "no tracer" of the same round: shared machines drift, ratios drift less.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
seconds=3
rounds=3
events=10000000
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --events) events=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h|--help) sed -n "2,15p" "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (it loads eBPF and makes namespaces)" >&2; exit 1; }
# The tracers to compare and the load: installed from Debian's packages when missing.
missing=()
for pair in iperf3:iperf3 perf:linux-perf bpftrace:bpftrace sqlite3:sqlite3 python3:python3 bc:bc; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench/run.sh: installing ${missing[*]}" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >&2 ||
        { echo "bench/run.sh: could not install ${missing[*]}: install them and run again" >&2; exit 1; }
fi

work=$(mktemp -d /tmp/skbtrail-bench.XXXXXX)
ns_a=stb-a-$$
ns_b=stb-b-$$
iperf_pid=""
cleanup() {
    [ -n "$iperf_pid" ] && kill "$iperf_pid" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "building release binaries..." >&2
(cd "$here" && swift build -c release --product skbtrail-record >/dev/null)
[ "$only" = recorder ] || (cd "$here" && swift build -c release --product skbtrail >/dev/null)
bin="$here/.build/release"

# The same tracepoints for every tracer: the device layer and the skb lifetime.
tps="net:netif_receive_skb net:netif_rx net:net_dev_queue net:net_dev_start_xmit net:net_dev_xmit skb:kfree_skb skb:consume_skb skb:skb_copy_datagram_iovec"
perf_events=$(echo "$tps" | tr ' ' ',')
skbtrail_probes="netif_receive_skb,netif_rx,net_dev_queue,net_dev_start_xmit,net_dev_xmit,kfree_skb,consume_skb,skb_copy_datagram_iovec"
# The small set: three records per packet (sent, received, freed), the issue's "3+ events per packet".
perf_events3="net:net_dev_queue,net:netif_receive_skb,skb:consume_skb,skb:kfree_skb"
skbtrail_probes3="net_dev_queue,netif_receive_skb,consume_skb,kfree_skb"
bt_probes=$(for t in $tps; do printf 'tracepoint:%s,' "$t"; done | sed 's/,$//')

setup_pair() {
    ip netns add "$ns_a"
    ip netns add "$ns_b"
    ip link add stb-a0 netns "$ns_a" type veth peer name stb-b0 netns "$ns_b"
    ip -n "$ns_a" addr add 10.201.0.1/24 dev stb-a0
    ip -n "$ns_b" addr add 10.201.0.2/24 dev stb-b0
    for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
    ip -n "$ns_a" link set stb-a0 up
    ip -n "$ns_b" link set stb-b0 up
    ip netns exec "$ns_b" iperf3 -s -D -p 5201 --pidfile "$work/iperf.pid" >/dev/null
    sleep 0.5
    iperf_pid=$(cat "$work/iperf.pid")
}

# One workload run: prints packets/s as the receiver counted them.
workload() {
    case "$1" in
        udp) ip netns exec "$ns_a" iperf3 -c 10.201.0.2 -u -b 0 -l 64 -t "$seconds" -J |
                 python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(round(s["packets"]*(1-s["lost_percent"]/100)/s["seconds"]))' ;;
        tcp) ip netns exec "$ns_a" iperf3 -c 10.201.0.2 -t "$seconds" -M 1400 -J |
                 python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum_received"]; print(round(s["bytes"]/1448/s["seconds"]))' ;;
    esac
}

# Runs the workload under a tracer; prints "pps events lost cpu_seconds bytes".
traced() {
    local tracer=$1 load=$2 out="$work/$1-$2"
    rm -rf "$out"*
    case "$tracer" in
        none)
            echo "$(workload "$load") 0 0 0 0" ;;
        skbtrail|skbtrail-all|skbtrail-3|skbtrail-1m)
            # In the background like the others, so its CPU time is its own, not the workload's.
            local probes=(--probes "$skbtrail_probes")
            [ "$tracer" = skbtrail-all ] && probes=()
            [ "$tracer" = skbtrail-3 ] && probes=(--probes "$skbtrail_probes3")
            local ring=16
            [ "$tracer" = skbtrail-1m ] && ring=1
            /usr/bin/time -f "%U %S" -o "$out.time" "$bin/skbtrail-record" -o "$out.skbt" --ring-size "$ring" "${probes[@]}" 2>"$out.err" &
            local ts=$!
            for _ in $(seq 100); do grep -q "recording into" "$out.err" 2>/dev/null && break; sleep 0.1; done
            local pps; pps=$(workload "$load" | tail -1)
            kill -INT "$(pgrep -P $ts skbtrail-record || echo $ts)" 2>/dev/null || true
            wait $ts 2>/dev/null || true
            local ev lost
            ev=$(sqlite3 "$out.skbt" "SELECT coalesce(sum(records),0) FROM chunk")
            lost=$(sqlite3 "$out.skbt" "SELECT coalesce(sum(events),0) FROM lost")
            echo "$pps $ev $lost $(tail -1 "$out.time" | awk '{print $1+$2}') $(stat -c %s "$out.skbt")" ;;
        perf|perf-3|perf-1m)
            # -m: pages per CPU; 2048 x 4 KiB x 2 CPUs = 16 MiB like skbtrail's ring, 128 pages = 1 MiB
            local events=$perf_events pages=$((16 * 256 / $(nproc)))
            [ "$tracer" = perf-3 ] && events=$perf_events3
            [ "$tracer" = perf-1m ] && pages=$((256 / $(nproc)))
            /usr/bin/time -f "%U %S" -o "$out.time" perf record -q -a -m "$pages" -e "$events" -o "$out.data" 2>"$out.err" &
            local tp=$!
            sleep 1
            local pps; pps=$(workload "$load" | tail -1)
            kill -INT "$(pgrep -P $tp perf || echo $tp)" 2>/dev/null || true
            wait $tp 2>/dev/null || true
            local ev lost
            ev=$(perf report -i "$out.data" --stats 2>/dev/null | awk '/SAMPLE events/ {print $3; exit}')
            lost=$(perf report -i "$out.data" --stats 2>/dev/null | awk '/LOST_SAMPLES events|LOST events/ {s+=$3} END {print s+0}')
            echo "$pps ${ev:-0} ${lost:-0} $(tail -1 "$out.time" | awk '{print $1+$2}') $(stat -c %s "$out.data")" ;;
        bpftrace)
            /usr/bin/time -f "%U %S" -o "$out.time" bpftrace -o "$out.txt" -e \
                "$bt_probes { printf(\"%llu %d %s %p\\n\", nsecs, cpu, probe, args->skbaddr); }" 2>"$out.err" &
            local tb=$!
            for _ in $(seq 50); do grep -q "Attaching" "$out.txt" 2>/dev/null && break; sleep 0.2; done
            local pps; pps=$(workload "$load" | tail -1)
            kill -INT "$(pgrep -P $tb bpftrace || echo $tb)" 2>/dev/null || true
            wait $tb 2>/dev/null || true
            local ev lost
            ev=$(grep -c '^[0-9]' "$out.txt" || true)
            lost=$(grep -ho 'Lost [0-9]* events' "$out.txt" "$out.err" | awk '{s+=$2} END {print s+0}')
            echo "$pps ${ev:-0} ${lost:-0} $(tail -1 "$out.time" | awk '{print $1+$2}') $(stat -c %s "$out.txt")" ;;
    esac
}

if [ "$only" != analyzer ]; then
    setup_pair
    tracers="${TRACERS:-none skbtrail-3 perf-3 skbtrail skbtrail-all perf skbtrail-1m perf-1m bpftrace}"
    loads="${LOADS:-udp tcp}"
    for load in $loads; do
        : >"$work/results-$load"
        for round in $(seq "$rounds"); do
            for tracer in $tracers; do
                echo "round $round/$rounds: $load under $tracer..." >&2
                echo "$round $tracer $(traced "$tracer" "$load" | tr '\n' ' ' | tr -s ' ')" >>"$work/results-$load"
            done
        done
        echo
        echo "Recorder overhead, $load flood over veth ($seconds s x $rounds rounds; ratios to 'none' of the same round)"
        python3 - "$work/results-$load" "$seconds" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
base = {r[0]: float(r[2]) for r in rows if r[1] == "none"}
order = []
for r in rows:
    if r[1] not in order: order.append(r[1])
print(f"{'tracer':<14}{'pps':>10}{'ratio':>8}{'events/s':>11}{'lost':>10}{'lost %':>8}{'cpu s/Mev':>11}{'B/event':>9}")
for t in order:
    rs = [r for r in rows if r[1] == t]
    pps = statistics.median(float(r[2]) for r in rs)
    ratio = statistics.median(float(r[2]) / base[r[0]] for r in rs if base.get(r[0]))
    ev = sum(float(r[3]) for r in rs); lost = sum(float(r[4]) for r in rs)
    cpu = sum(float(r[5]) for r in rs); size = sum(float(r[6]) for r in rs)
    evs = statistics.median(float(r[3]) for r in rs)
    if t == "none":
        print(f"{t:<14}{pps:>10.0f}{1:>8.2f}{'-':>11}{'-':>10}{'-':>8}{'-':>11}{'-':>9}")
        continue
    lp = 100 * lost / (ev + lost) if ev + lost else 0
    print(f"{t:<14}{pps:>10.0f}{ratio:>8.2f}{evs / float(sys.argv[2]):>11.0f}{lost:>10.0f}{lp:>7.2f}%{(cpu / (ev / 1e6)) if ev else 0:>11.2f}{(size / ev) if ev else 0:>9.1f}")
PY
    done
fi

if [ "$only" != recorder ]; then
    "$here/bench/analyzer.sh" "$events" "$bin"
fi
