#!/usr/bin/env bash
# The recorder's start-up and stop cost with NS network namespaces on the machine (default 6, each
# with a veth pair to the next, as the end-to-end tests build): wall time of a --duration 1 recording,
# which loads, attaches, takes the start and end snapshots and writes the bundle, minus its second.
#
#   bench/startup.sh [RECORDER [NS [RUNS]]]      (default .build/release/skbtrail-record 6 3; as root)
#
# Under the kernel matrix: scripts/kernels.sh run 6.1 -- bench/startup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
recorder=$(realpath "${1:-.build/release/skbtrail-record}") n=${2:-6} runs=${3:-3}
tag=stb$$ dir=$(mktemp -d)
cleanup() { for i in $(seq 1 "$n"); do ip netns del "$tag$i" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
for i in $(seq 1 "$n"); do
    ip netns add "$tag$i"
    ip -n "$tag$i" link set lo up
    if [[ $i -gt 1 ]]; then
        ip link add "${tag}v$i" netns "$tag$((i - 1))" type veth peer name "${tag}w$i" netns "$tag$i"
        ip -n "$tag$((i - 1))" addr add "10.253.$i.1/24" dev "${tag}v$i"
        ip -n "$tag$i" addr add "10.253.$i.2/24" dev "${tag}w$i"
        ip -n "$tag$((i - 1))" link set "${tag}v$i" up
        ip -n "$tag$i" link set "${tag}w$i" up
    fi
done
for r in $(seq 1 "$runs"); do
    start=$EPOCHREALTIME
    "$recorder" -o "$dir/run$r.skbt" --duration 1 --addr 10.254.254.254 -q
    awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$n" 'BEGIN { printf "start-up and stop with %d namespaces: %.2f s\n", n, b - a - 1 }'
done
sqlite3 "$dir/run1.skbt" "SELECT phase, count(*), count(DISTINCT netns) FROM snapshot GROUP BY phase" 2>/dev/null |
    sed 's/^/snapshot rows (phase|rows|namespaces): /' || true
