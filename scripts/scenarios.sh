#!/usr/bin/env bash
# Real-traffic scenarios for skbtrail: each one builds network namespaces, veths and rules, records real
# traffic with skbtrail-record around a command, writes the kernel's own counters to OUTPUT.expect, and
# tears everything down again (namespaces, veths, rules, background processes), whatever happens.
#
#   scripts/scenarios.sh NAME OUTPUT.skbt [extra skbtrail-record flags]
#   scripts/scenarios.sh list
#
# Scenarios: netfilter-drop, closed-port, nat-router, afpacket, demo.
# Environment:
#   RECORDER    the skbtrail-record binary (default: .build/debug/skbtrail-record in this repository)
#   ST_PREFIX   prefix of namespace and interface names (default: st). Two runs at the same time need
#               different prefixes; keep it short: interface names are at most 15 characters.
#
# Needs root, iproute2, iptables, ping, nc (OpenBSD netcat) and tcpdump.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDER=${RECORDER:-$ROOT/.build/debug/skbtrail-record}
P=${ST_PREFIX:-st}
SCENARIOS="netfilter-drop closed-port nat-router afpacket demo"

LAB_NAME=scenarios.sh
# shellcheck source=scripts/lab.sh
source "$ROOT/scripts/lab.sh"

# ---- scenarios -------------------------------------------------------------------------------------

# Two namespaces; B drops ICMP in filter INPUT, allows UDP and TCP. A pings B (dropped), then sends a UDP
# datagram and makes a TCP connection that are delivered.
scenario_netfilter_drop() {
    local A=$P-a B=$P-b IA=$P-a0 IB=$P-b0 CA=10.199.1.1 SB=10.199.1.2 pings=5 udp=5301 tcp=5302
    netns "$A"; netns "$B"
    veth "$A" "$IA" $CA/24 "$B" "$IB" $SB/24
    ip netns exec "$B" iptables -w -A INPUT -p icmp -j DROP
    background "$B" nc -k -l $SB $tcp
    # reads one datagram and exits (nc -u -l with stdin at EOF may never read it)
    background "$B" python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('$SB', $udp)); s.recv(100)"
    wait_listen "$B" t $tcp
    wait_listen "$B" u $udp
    say "namespace $A ($CA) pings $B ($SB), which drops ICMP in filter INPUT; UDP :$udp and TCP :$tcp get through"
    record ip netns exec "$A" bash -c "
        ping -c $pings -i 0.2 -W 1 $SB >/dev/null
        echo udp-hello >/dev/udp/$SB/$udp
        sleep 0.5   # the UDP listener reads it (and the skb's free is recorded) before the end
        echo tcp-hello | nc -N -w 2 $SB $tcp
        exit 0"
    expect scenario netfilter-drop
    expect client_ns "$A"; expect client_netns "$(inode "$A")"
    expect server_ns "$B"; expect server_netns "$(inode "$B")"
    expect client_if "$IA"; expect client_ifindex "$(ifindex "$A" "$IA")"
    expect server_if "$IB"; expect server_ifindex "$(ifindex "$B" "$IB")"
    expect client_addr $CA; expect server_addr $SB
    expect pings $pings; expect udp_port $udp; expect tcp_port $tcp
    expect drop_rule "filter INPUT -p icmp -j DROP"
    expect drop_rule_packets "$(rule_packets "$B" filter INPUT 1)"
    expect server_udp_indatagrams "$(snmp "$B" Udp InDatagrams)"
    expect server_tcp_passiveopens "$(snmp "$B" Tcp PassiveOpens)"
}

# Nobody listens: a TCP connect gets a RST, a UDP datagram an ICMP port unreachable.
scenario_closed_port() {
    local C=$P-c S=$P-s IC=$P-c0 IS=$P-s0 CA=10.199.2.1 SA=10.199.2.2 tcp=5400 udp=5401
    netns "$C"; netns "$S"
    veth "$C" "$IC" $CA/24 "$S" "$IS" $SA/24
    say "namespace $C ($CA) connects to TCP :$tcp and sends to UDP :$udp on $S ($SA), where nothing listens"
    record ip netns exec "$C" bash -c "
        nc -z -w 2 $SA $tcp
        echo udp-hello >/dev/udp/$SA/$udp
        sleep 0.3
        exit 0"
    expect scenario closed-port
    expect client_ns "$C"; expect client_netns "$(inode "$C")"
    expect server_ns "$S"; expect server_netns "$(inode "$S")"
    expect client_if "$IC"; expect client_ifindex "$(ifindex "$C" "$IC")"
    expect server_if "$IS"; expect server_ifindex "$(ifindex "$S" "$IS")"
    expect client_addr $CA; expect server_addr $SA
    expect tcp_port $tcp; expect udp_port $udp
    expect server_tcp_outrsts "$(snmp "$S" Tcp OutRsts)"
    expect server_udp_noports "$(snmp "$S" Udp NoPorts)"
    expect server_icmp_outdestunreachs "$(snmp "$S" Icmp OutDestUnreachs)"
    expect client_tcp_attemptfails "$(snmp "$C" Tcp AttemptFails)"
}

# client -- router -- server. The router forwards, DNATs its client-side address (ICMP, and TCP :80 to
# :8080) to the server and masquerades on the server side.
scenario_nat_router() {
    local C=$P-nc R=$P-nr S=$P-ns IC=$P-nc0 IR0=$P-nr0 IR1=$P-nr1 IS=$P-ns0
    local CA=10.199.3.1 RC=10.199.3.254 RS=10.199.4.254 SA=10.199.4.2 vport=80 sport=8080 pings=3
    netns "$C"; netns "$R"; netns "$S"
    veth "$C" "$IC" $CA/24 "$R" "$IR0" $RC/24
    veth "$R" "$IR1" $RS/24 "$S" "$IS" $SA/24
    ip -n "$C" route add default via $RC
    ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$R" iptables -w -t nat -A PREROUTING -d $RC -p icmp -j DNAT --to-destination $SA
    ip netns exec "$R" iptables -w -t nat -A PREROUTING -d $RC -p tcp --dport $vport -j DNAT --to-destination $SA:$sport
    ip netns exec "$R" iptables -w -t nat -A POSTROUTING -o "$IR1" -j MASQUERADE
    background "$S" nc -k -l $SA $sport
    wait_listen "$S" t $sport
    say "namespace $C ($CA) pings and connects to $RC:$vport on router $R, DNAT to $S ($SA:$sport), masqueraded as $RS"
    record ip netns exec "$C" bash -c "
        ping -c $pings -i 0.2 -W 1 $RC >/dev/null
        echo tcp-hello | nc -N -w 2 $RC $vport
        exit 0"
    expect scenario nat-router
    expect client_ns "$C"; expect client_netns "$(inode "$C")"
    expect router_ns "$R"; expect router_netns "$(inode "$R")"
    expect server_ns "$S"; expect server_netns "$(inode "$S")"
    expect client_if "$IC"; expect client_ifindex "$(ifindex "$C" "$IC")"
    expect router_client_if "$IR0"; expect router_client_ifindex "$(ifindex "$R" "$IR0")"
    expect router_server_if "$IR1"; expect router_server_ifindex "$(ifindex "$R" "$IR1")"
    expect server_if "$IS"; expect server_ifindex "$(ifindex "$S" "$IS")"
    expect client_addr $CA
    expect orig_daddr $RC; expect orig_dport $vport
    expect dnat_daddr $SA; expect dnat_dport $sport
    expect snat_saddr $RS
    expect pings $pings
    expect dnat_icmp_rule_packets "$(rule_packets "$R" nat PREROUTING 1)"
    expect dnat_tcp_rule_packets "$(rule_packets "$R" nat PREROUTING 2)"
    expect masquerade_rule_packets "$(rule_packets "$R" nat POSTROUTING 1)"
    expect router_forwarded "$(snmp "$R" Ip ForwDatagrams)"
    expect server_tcp_passiveopens "$(snmp "$S" Tcp PassiveOpens)"
}

# tcpdump listens on B's veth while A pings B: every packet on it is cloned to the packet socket.
scenario_afpacket() {
    local A=$P-pa B=$P-pb IA=$P-pa0 IB=$P-pb0 CA=10.199.5.1 SB=10.199.5.2 pings=4
    netns "$A"; netns "$B"
    veth "$A" "$IA" $CA/24 "$B" "$IB" $SB/24
    WORK=$(mktemp -d /tmp/skbtrail-afpacket.XXXXXX)
    ip netns exec "$B" tcpdump -i "$IB" -n -U -w "$WORK/cap.pcap" icmp 2>"$WORK/tcpdump.err" &
    local tcpdump=$!
    PIDS+=("$tcpdump")
    local i
    for i in $(seq 50); do
        grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break
        sleep 0.1
    done
    grep -q "listening on" "$WORK/tcpdump.err" || die "tcpdump did not start: $(cat "$WORK/tcpdump.err")"
    say "tcpdump (pid $tcpdump) captures on $IB in $B while $A ($CA) pings $SB $pings times"
    record ip netns exec "$A" ping -c $pings -i 0.2 -W 1 -q $SB
    sleep 0.2
    kill -INT "$tcpdump"
    wait "$tcpdump" || true
    local captured
    captured=$(awk '/packets captured/ { print $1 }' "$WORK/tcpdump.err")
    expect scenario afpacket
    expect client_ns "$A"; expect client_netns "$(inode "$A")"
    expect server_ns "$B"; expect server_netns "$(inode "$B")"
    expect client_if "$IA"; expect client_ifindex "$(ifindex "$A" "$IA")"
    expect server_if "$IB"; expect server_ifindex "$(ifindex "$B" "$IB")"
    expect client_addr $CA; expect server_addr $SB
    expect pings $pings
    expect tcpdump_if "$IB"
    expect tcpdump_captured "${captured:-0}"
    expect server_icmp_inechos "$(snmp "$B" Icmp InEchos)"
    expect server_icmp_outechoreps "$(snmp "$B" Icmp OutEchoReps)"
}

# The README's demo: netfilter-drop, told as it happens.
scenario_demo() {
    cat >&2 <<EOF
skbtrail demo: two network namespaces joined by a veth. The second one drops ICMP with
  iptables -A INPUT -p icmp -j DROP
and lets UDP and TCP through. skbtrail-record records the kernel's packet path while the first
namespace pings (dropped), sends a UDP datagram and opens a TCP connection (delivered).

EOF
    scenario_netfilter_drop
    echo >&2
    echo "skbtrail demo: the kernel's own count of dropped pings: $(grep '^drop_rule_packets=' "$OUT.expect" | cut -d= -f2) (iptables rule counter)" >&2
    echo "skbtrail demo: bundle written to $OUT" >&2
}

# ---- main ------------------------------------------------------------------------------------------
usage() {
    echo "usage: scripts/scenarios.sh NAME OUTPUT.skbt [skbtrail-record flags]" >&2
    echo "       scripts/scenarios.sh list" >&2
    echo "scenarios: $SCENARIOS" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
NAME=$1
if [[ $NAME == list ]]; then
    tr ' ' '\n' <<<"$SCENARIOS"
    exit 0
fi
[[ $# -ge 2 ]] || usage
OUT=$2
shift 2
EXTRA=("$@")
[[ " $SCENARIOS " == *" $NAME "* ]] || die "unknown scenario '$NAME'; scenarios: $SCENARIOS"
[[ $(id -u) == 0 ]] || die "scenarios need root (network namespaces and eBPF): run with sudo"
[[ -x $RECORDER ]] || die "no recorder at $RECORDER: run 'swift build' first or set RECORDER"
[[ ! -e $OUT ]] || die "$OUT exists: skbtrail-record never overwrites a bundle; remove it or choose another name"
rm -f "$OUT.expect"
# Netfilter hooks are attached in the namespaces that exist when the recorder starts: every scenario
# creates its namespaces before calling `record`.
"scenario_${NAME//-/_}"
