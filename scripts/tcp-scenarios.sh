#!/usr/bin/env bash
# TCP and latency scenarios for skbtrail: each builds two network namespaces joined by a veth pair, sets
# up a delay (tc netem) or a loss (iptables DROP on every Nth data segment), records one TCP transfer
# with skbtrail-record, writes the kernel's own figures (rule counter, /proc/net/snmp) to OUTPUT.expect,
# and removes everything again (namespaces, veths, qdiscs, rules, processes), whatever happens.
#
#   scripts/tcp-scenarios.sh NAME OUTPUT.skbt [extra skbtrail-record flags]
#   scripts/tcp-scenarios.sh list
#
# Scenarios:
#   tcp-delay   client egress through `tbf rate 8mbit latency 20ms`: RTT and the qdisc hop up to ~20 ms
#   tcp-loss    server drops every 10th data segment in filter INPUT: the client retransmits them
# Environment:
#   RECORDER    the skbtrail-record binary (default: .build/debug/skbtrail-record in this repository)
#   SX_PREFIX   prefix of namespace and interface names (default: sx)
#
# Needs root, iproute2 (tc), iptables and python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDER=${RECORDER:-$ROOT/.build/debug/skbtrail-record}
P=${SX_PREFIX:-sx}
SCENARIOS="tcp-delay tcp-loss"

LAB_NAME=tcp-scenarios.sh
# shellcheck source=scripts/lab.sh
source "$ROOT/scripts/lab.sh"

# A receiver that reads everything and closes; started in the background, its PID remembered.
receiver() {
    local ns=$1 addr=$2 port=$3
    ip netns exec "$ns" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
while True:
    c, _ = s.accept()
    while c.recv(65536): pass
    c.close()' "$addr" "$port" >/dev/null &
    PIDS+=("$!")
    wait_listen "$ns" t "$port"
}

# The sender: connects, writes BYTES, waits until all of it is acknowledged (so the connection stays
# ESTABLISHED, where tcp_probe samples every ACK), closes its side and waits for the receiver's close.
SENDER='
import fcntl, socket, struct, sys, termios, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(b"x" * int(sys.argv[3]))
deadline = time.time() + 20
while time.time() < deadline and struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0" * 4))[0] > 0:
    time.sleep(0.002)
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
s.close()'

common_facts() {
    expect client_ns "$1"; expect client_netns "$(inode "$1")"
    expect server_ns "$2"; expect server_netns "$(inode "$2")"
    expect client_if "$3"; expect client_ifindex "$(ifindex "$1" "$3")"
    expect server_if "$4"; expect server_ifindex "$(ifindex "$2" "$4")"
}

# Client A sends BYTES to server B through a token bucket on A's veth (tbf rate RATE latency LAT): A's
# segments queue in the tbf, so the qdisc hop (qdisc_enqueue to qdisc_dequeue) and the RTT grow up to
# about LAT (tbf drops what would wait longer).
scenario_tcp_delay() {
    local A=$P-da B=$P-db IA=$P-da0 IB=$P-db0 CA=10.199.11.1 SB=10.199.11.2 port=5411
    local bytes=${BYTES:-262144} rate=${RATE:-8mbit} burst=${BURST:-4kb} latency=${LAT:-20}
    netns "$A"; netns "$B"
    veth "$A" "$IA" $CA/24 "$B" "$IB" $SB/24
    ip -n "$A" link set dev "$IA" gso_max_segs 1  # one MSS per skb: no GSO burst larger than the bucket
    ip netns exec "$A" tc qdisc add dev "$IA" root handle 1: tbf rate $rate burst $burst latency ${latency}ms
    receiver "$B" $SB $port
    say "$A ($CA) sends $bytes bytes to $B ($SB:$port) through tbf rate $rate latency ${latency}ms on $IA"
    record ip netns exec "$A" python3 -c "$SENDER" $SB $port $bytes
    expect scenario tcp-delay
    common_facts "$A" "$B" "$IA" "$IB"
    expect client_addr $CA; expect server_addr $SB; expect tcp_port $port; expect bytes $bytes
    expect qdisc "tbf rate $rate burst $burst latency ${latency}ms on $IA (client egress)"
    expect tbf_rate "$rate"; expect tbf_latency_ms "$latency"
    local stats
    stats=$(ip netns exec "$A" tc -s qdisc show dev "$IA" | awk '/Sent/ { sub(",", "", $7); print $2, $4, $7; exit }')
    expect qdisc_sent_bytes "${stats%% *}"
    stats=${stats#* }
    expect qdisc_sent_packets "${stats%% *}"
    expect qdisc_dropped "${stats#* }"
    expect client_tcp_retranssegs "$(snmp "$A" Tcp RetransSegs)"
}

# Client A sends 128 KiB to server B, one MSS per skb (gso_max_segs 1 on A's veth); B drops every 10th
# data segment in filter INPUT, so A retransmits: the rule's counter and A's RetransSegs are the truth.
scenario_tcp_loss() {
    local A=$P-la B=$P-lb IA=$P-la0 IB=$P-lb0 CA=10.199.12.1 SB=10.199.12.2 port=5412 bytes=131072 every=10
    netns "$A"; netns "$B"
    veth "$A" "$IA" $CA/24 "$B" "$IB" $SB/24
    ip -n "$A" link set dev "$IA" gso_max_segs 1
    ip netns exec "$B" iptables -w -A INPUT -p tcp --dport $port -m length --length 1000:65535 \
        -m statistic --mode nth --every $every --packet $((every - 1)) -j DROP
    receiver "$B" $SB $port
    say "$A ($CA) sends $bytes bytes to $B ($SB:$port), which drops every ${every}th data segment in filter INPUT"
    record ip netns exec "$A" python3 -c "$SENDER" $SB $port $bytes
    expect scenario tcp-loss
    common_facts "$A" "$B" "$IA" "$IB"
    expect client_addr $CA; expect server_addr $SB; expect tcp_port $port; expect bytes $bytes
    expect drop_rule "filter INPUT -p tcp --dport $port -m length --length 1000:65535 -m statistic --mode nth --every $every -j DROP"
    expect drop_rule_packets "$(rule_packets "$B" filter INPUT 1)"
    expect client_tcp_retranssegs "$(snmp "$A" Tcp RetransSegs)"
    expect client_tcp_outsegs "$(snmp "$A" Tcp OutSegs)"
}

[[ ${1:-} == list ]] && { echo "$SCENARIOS"; exit 0; }
[[ $# -ge 2 ]] || die "usage: tcp-scenarios.sh NAME OUTPUT.skbt [skbtrail-record flags] (scenarios: $SCENARIOS)"
NAME=$1 OUT=$2
shift 2
EXTRA=("$@")
[[ $(id -u) == 0 ]] || die "needs root (network namespaces and BPF)"
[[ -x $RECORDER ]] || die "no recorder at $RECORDER: build it with 'swift build --product skbtrail-record' or set RECORDER"
rm -f "$OUT" "$OUT.expect"
case $NAME in
    tcp-delay) scenario_tcp_delay ;;
    tcp-loss) scenario_tcp_loss ;;
    *) die "unknown scenario '$NAME' (scenarios: $SCENARIOS)" ;;
esac
say "wrote $OUT and $OUT.expect"
