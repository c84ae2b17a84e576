#!/usr/bin/env bash
# Fault scenarios for `skbtrail diag`: each builds namespaces (prefix sf-), veths, rules, routes, sysctls
# or tc, records real traffic that hits one fault with skbtrail-record, writes what to expect to
# OUTPUT.expect (the scenario's own counts and the kernel's counters), and tears everything down.
#
#   scripts/fault-scenarios.sh NAME OUTPUT.skbt [extra skbtrail-record flags]
#   scripts/fault-scenarios.sh list
#
# Environment: RECORDER (default .build/debug/skbtrail-record), SF_PREFIX (default sf).
# Needs root, iproute2, iptables, nft, tc, clang (BPF target), ping, nc, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDER=${RECORDER:-$ROOT/.build/debug/skbtrail-record}
P=${SF_PREFIX:-sf}
SCENARIOS="iptables-forward-drop nft-drop rp-filter no-route forwarding-disabled ttl-expired mtu-too-big
neighbour-failure tc-ingress-drop xdp-drop bad-checksum qdisc-loss conntrack-invalid rcvbuf-full listen-overflow tcp-reset healthy
noisy-host ipv6-forwarding-noise bridge-nft-drop bridge-iptables-drop partial-netns nat-closed-port policy-prohibit"

LAB_NAME=fault-scenarios.sh
# shellcheck source=scripts/lab.sh
source "$ROOT/scripts/lab.sh"

nsx() { ip netns exec "$@"; }
netstat_ext() { ip netns exec "$1" awk -v k="$2" '$1 == "TcpExt:" && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next } $1 == "TcpExt:" && h { print $(col[k]); exit }' /proc/net/netstat; }

# Client A (10.210.N.1) - router R (10.210.N.2 | 10.210.M.1) - server B (10.210.M.2), forwarding on.
A=$P-a; R=$P-r; B=$P-b
router3() {
    local n=$1 m=$2
    netns "$A"; netns "$R"; netns "$B"
    veth "$A" "$P-a0" "10.210.$n.1/24" "$R" "$P-r0" "10.210.$n.2/24"
    veth "$R" "$P-r1" "10.210.$m.1/24" "$B" "$P-b0" "10.210.$m.2/24"
    ip -n "$A" route add default via "10.210.$n.2"
    ip -n "$B" route add default via "10.210.$m.1"
    nsx "$R" sysctl -qw net.ipv4.ip_forward=1
}
pair() {  # A (10.210.N.1) - B (10.210.N.2)
    netns "$A"; netns "$B"
    veth "$A" "$P-a0" "10.210.$1.1/24" "$B" "$P-b0" "10.210.$1.2/24"
}
# A (10.210.N.1) and B (10.210.N.2) on two ports of bridge $P-br in namespace H ($P-h).
bridged() {
    netns "$H"; netns "$A"; netns "$B"
    ip -n "$H" link add "$P-br" type bridge
    ip link add "$P-a0" netns "$A" type veth peer name "$P-ha" netns "$H"
    ip link add "$P-b0" netns "$B" type veth peer name "$P-hb" netns "$H"
    ip -n "$H" link set "$P-ha" master "$P-br"; ip -n "$H" link set "$P-hb" master "$P-br"
    for l in "$P-br" "$P-ha" "$P-hb"; do ip -n "$H" link set "$l" up; done
    ip -n "$A" addr add "10.210.$1.1/24" dev "$P-a0"; ip -n "$A" link set "$P-a0" up
    ip -n "$B" addr add "10.210.$1.2/24" dev "$P-b0"; ip -n "$B" link set "$P-b0" up
}
# A knows B's MAC without ARP (where the fault would eat the ARP exchange too).
static_neigh() {
    ip -n "$A" neigh replace "$1" lladdr "$(ip -n "$B" -br link show "$P-b0" | awk '{ print $3 }')" dev "$P-a0"
}

# iptables filter FORWARD drops ICMP on the router.
scenario_iptables_forward_drop() {
    router3 1 2
    nsx "$R" iptables -w -A FORWARD -p icmp -j DROP
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.2.2 >/dev/null || true
    expect pings 3
    expect drop_rule_packets "$(nsx "$R" iptables -w -L FORWARD -v -x -n | awk '/DROP/ { print $1; exit }')"
}

# nftables (inet table) drops UDP port 6003 at input.
scenario_nft_drop() {
    pair 3
    nsx "$B" nft -f - <<'NFT'
table inet sffilter {
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 6003 counter drop
    }
}
NFT
    record ip netns exec "$A" bash -c 'for i in 1 2 3; do echo hi >/dev/udp/10.210.3.2/6003; sleep 0.1; done'
    expect datagrams 3
}

# Strict reverse path filtering: A sends from an address B has no route back to.
scenario_rp_filter() {
    pair 4
    ip -n "$A" addr add 10.210.99.1/32 dev "$P-a0"
    nsx "$B" sysctl -qw net.ipv4.conf.all.rp_filter=1 "net.ipv4.conf.$P-b0.rp_filter=1"
    # B would not answer ARP for that source either (rp_filter applies to ARP): resolve it by hand
    ip -n "$A" neigh replace 10.210.4.2 lladdr "$(ip -n "$B" -br link show "$P-b0" | awk '{ print $3 }')" dev "$P-a0"
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 -I 10.210.99.1 10.210.4.2 >/dev/null || true
    expect pings 3
    expect in_rpfilter_drops "$(nsx "$B" nstat -az TcpExtIPReversePathFilter | awk 'NR > 1 && $1 == "TcpExtIPReversePathFilter" { print $2 }')"
}

# The router has no route for the destination.
scenario_no_route() {
    router3 5 6
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.77.1 >/dev/null || true
    expect pings 3
    expect router_in_noroutes "$(nsx "$R" nstat -az IpExtInNoRoutes | awk '$1 == "IpExtInNoRoutes" { print $2 }')"
}

# The router does not forward.
scenario_forwarding_disabled() {
    router3 7 8
    nsx "$R" sysctl -qw net.ipv4.ip_forward=0
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.8.2 >/dev/null || true
    expect pings 3
    expect router_in_addr_errors "$(snmp "$R" Ip InAddrErrors)"
}

# TTL 1 across a router.
scenario_ttl_expired() {
    router3 9 10
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 -t 1 10.210.10.2 >/dev/null || true
    expect pings 3
    expect router_time_exceeded "$(snmp "$R" Icmp OutTimeExcds)"
}

# A DF ping bigger than the router's MTU toward B (1280).
scenario_mtu_too_big() {
    router3 11 12
    ip -n "$R" link set "$P-r1" mtu 1280
    ip -n "$B" link set "$P-b0" mtu 1280
    record ip netns exec "$A" ping -c 2 -i 0.3 -W 1 -M do -s 1400 10.210.12.2 >/dev/null || true
    expect pings 2
    expect router_frag_needed "$(snmp "$R" Icmp OutDestUnreachs)"
}

# A route via a gateway that does not exist on the link: ARP fails, queued packets are dropped.
scenario_neighbour_failure() {
    pair 13
    nsx "$A" sysctl -qw "net.ipv4.neigh.$P-a0.mcast_solicit=1" "net.ipv4.neigh.$P-a0.retrans_time_ms=200"
    ip -n "$A" route add 10.210.55.0/24 via 10.210.13.99
    record ip netns exec "$A" bash -c 'ping -c 2 -i 0.5 -W 1 10.210.55.1 >/dev/null; sleep 0.5; exit 0'
    expect pings 2
}

# A tc ingress filter on B drops everything (a BPF classifier returning TC_ACT_SHOT: cls_bpf is
# built in where matchall/u32 actions may be modules that are missing).
scenario_tc_ingress_drop() {
    pair 14
    WORK=$(mktemp -d /tmp/sf-tc.XXXXXX)
    printf '%s\n' '#define SEC(n) __attribute__((section(n), used))' \
        'SEC("tc") int sf_drop(void *skb) { return 2; /* TC_ACT_SHOT */ }' \
        'char _license[] SEC("license") = "GPL";' >"$WORK/drop.bpf.c"
    clang -target bpf -O2 -c "$WORK/drop.bpf.c" -o "$WORK/drop.bpf.o"
    tc -n "$B" qdisc add dev "$P-b0" clsact
    tc -n "$B" filter add dev "$P-b0" ingress protocol ip bpf da obj "$WORK/drop.bpf.o" sec tc
    static_neigh 10.210.14.2
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.14.2 >/dev/null || true
    expect pings 3
}

# An XDP program (generic XDP) on B's veth drops everything: kfree_skb reason XDP.
scenario_xdp_drop() {
    pair 21
    WORK=$(mktemp -d /tmp/sf-xdp.XXXXXX)
    printf '%s\n' '#define SEC(n) __attribute__((section(n), used))' \
        'SEC("xdp") int sf_xdp_drop(void *ctx) { return 1; /* XDP_DROP */ }' \
        'char _license[] SEC("license") = "GPL";' >"$WORK/xdp.bpf.c"
    clang -target bpf -O2 -c "$WORK/xdp.bpf.c" -o "$WORK/xdp.bpf.o"
    ip -n "$B" link set dev "$P-b0" xdpgeneric obj "$WORK/xdp.bpf.o" sec xdp
    static_neigh 10.210.21.2
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.21.2 >/dev/null || true
    expect pings 3
}

# A sends TCP SYNs with a wrong checksum from a raw socket to a port B listens on: tcp_bad_csum and
# kfree_skb TCP_CSUM (veth keeps the skb's CHECKSUM_NONE, so B's TCP verifies the sum).
scenario_bad_checksum() {
    pair 22
    background "$B" nc -k -l 10.210.22.2 6022
    wait_listen "$B" t 6022
    static_neigh 10.210.22.2
    record ip netns exec "$A" python3 -c '
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(3):
    # source port 40000+i, destination 6022, SYN, window 1024, checksum 0xdead (wrong)
    syn = struct.pack("!HHIIBBHHH", 40000 + i, 6022, 1000 + i, 0, 5 << 4, 0x02, 1024, 0xdead, 0)
    s.sendto(syn, ("10.210.22.2", 0))
    time.sleep(0.1)'
    expect segments 3
    expect in_csum_errors "$(snmp "$B" Tcp InCsumErrors)"
}

# A qdisc that holds nothing (pfifo limit 0) on A: the TCP SYN is dropped by the qdisc and retransmitted.
scenario_qdisc_loss() {
    pair 15
    background "$B" nc -k -l 10.210.15.2 6015
    wait_listen "$B" t 6015
    tc -n "$A" qdisc add dev "$P-a0" root pfifo limit 0
    static_neigh 10.210.15.2
    record ip netns exec "$A" bash -c 'nc -w 2 10.210.15.2 6015 </dev/null; exit 0'
    expect connects 1
    expect syn_retrans "$(netstat_ext "$A" TCPSynRetrans)"
}

# conntrack INVALID: B drops INVALID and is strict (tcp_loose=0); A sends a bare ACK.
scenario_conntrack_invalid() {
    pair 16
    nsx "$B" iptables -w -A INPUT -m conntrack --ctstate INVALID -j DROP
    nsx "$B" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
    record ip netns exec "$A" python3 -c '
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
src, dst = "10.210.16.1", "10.210.16.2"
for i in range(3):
    hdr = struct.pack("!HHIIBBHHH", 40000 + i, 6016, 1000, 2000, 5 << 4, 0x10, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.sendto(hdr, (dst, 0))
'
    expect acks 3
    expect invalid_rule_packets "$(nsx "$B" iptables -w -L INPUT -v -x -n | awk '/INVALID/ { print $1; exit }')"
}

# A UDP receiver with the smallest buffer that never reads.
scenario_rcvbuf_full() {
    pair 17
    background "$B" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
s.bind(("10.210.17.2", 6017))
time.sleep(60)'
    wait_listen "$B" u 6017
    record ip netns exec "$A" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20): s.sendto(b"x" * 1000, ("10.210.17.2", 6017))'
    expect datagrams 20
    expect rcvbuf_errors "$(snmp "$B" Udp RcvbufErrors)"
}

# A listener with backlog 0 that never accepts; several clients connect at once.
scenario_listen_overflow() {
    pair 18
    nsx "$B" sysctl -qw net.ipv4.tcp_syncookies=0
    background "$B" python3 -c '
import socket, time
s = socket.socket(); s.bind(("10.210.18.2", 6018)); s.listen(0); time.sleep(60)'
    wait_listen "$B" t 6018
    record ip netns exec "$A" bash -c 'for i in 1 2 3 4 5 6; do (nc -w 2 10.210.18.2 6018 </dev/null >/dev/null 2>&1 &); done; sleep 2.5; exit 0'
    expect connects 6
    expect listen_overflows "$(netstat_ext "$B" ListenOverflows)"
}

# The server accepts and aborts the connection (SO_LINGER 0): a RST goes to the client.
scenario_tcp_reset() {
    pair 19
    background "$B" python3 -c '
import socket, struct
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.210.19.2", 6019)); s.listen(5)
c, _ = s.accept(); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.recv(100); c.close()
import time; time.sleep(30)'
    wait_listen "$B" t 6019
    record ip netns exec "$A" bash -c 'echo hello | nc -w 2 10.210.19.2 6019 >/dev/null 2>&1; sleep 0.3; exit 0'
    expect connects 1
    expect server_out_rsts "$(snmp "$B" Tcp OutRsts)"
}

# No fault: ping, UDP and TCP between two namespaces.
scenario_healthy() {
    pair 20
    background "$B" nc -k -l 10.210.20.2 6020
    background "$B" nc -k -u -l 10.210.20.2 6021
    wait_listen "$B" t 6020
    wait_listen "$B" u 6021
    record ip netns exec "$A" bash -c '
        ping -c 3 -i 0.2 -W 1 10.210.20.2 >/dev/null
        echo udp >/dev/udp/10.210.20.2/6021
        echo tcp | nc -N -w 2 10.210.20.2 6020
        exit 0'
    expect pings 3
}

# The normal noise of a host, recorded without filters: a bridge with two "pods" and a routed
# neighbour come up during the recording, with IPv6 on (DAD, MLD reports, neighbour and router
# solicitations, ff02:: multicast), the `ip` commands' netlink messages, then healthy ping, ping6, TCP
# and UDP. Every drop in it is normal: diag must find no WARN and no ERROR.
scenario_noisy_host() {
    local H=$P-h P1=$P-p1 P2=$P-p2 N=$P-n
    netns "$H"; netns "$P1"; netns "$P2"; netns "$N"
    ip -n "$H" link add "$P-br" type bridge
    ip link add "$P-p1e" netns "$P1" type veth peer name "$P-hp1" netns "$H"
    ip link add "$P-p2e" netns "$P2" type veth peer name "$P-hp2" netns "$H"
    ip link add "$P-n0" netns "$N" type veth peer name "$P-hn" netns "$H"
    ip -n "$H" link set "$P-hp1" master "$P-br"
    ip -n "$H" link set "$P-hp2" master "$P-br"
    ip -n "$H" addr add 10.210.30.1/24 dev "$P-br"; ip -n "$H" addr add fd00:30::1/64 dev "$P-br"
    ip -n "$P1" addr add 10.210.30.2/24 dev "$P-p1e"; ip -n "$P1" addr add fd00:30::2/64 dev "$P-p1e"
    ip -n "$P2" addr add 10.210.30.3/24 dev "$P-p2e"; ip -n "$P2" addr add fd00:30::3/64 dev "$P-p2e"
    ip -n "$H" addr add 10.210.31.1/24 dev "$P-hn"; ip -n "$H" addr add fd00:31::1/64 dev "$P-hn"
    ip -n "$N" addr add 10.210.31.2/24 dev "$P-n0"; ip -n "$N" addr add fd00:31::2/64 dev "$P-n0"
    # the host routes between the bridge and the neighbour, both families (so ff02:: meets forwarding)
    nsx "$H" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    background "$N" nc -k -l 10.210.31.2 6030
    background "$P2" nc -k -u -l 10.210.30.3 6031
    wait_listen "$N" t 6030
    wait_listen "$P2" u 6031
    WORK=$(mktemp -d /tmp/sf-noise.XXXXXX)
    cat >"$WORK/traffic.sh" <<EOS
set -e
ip -n $H link set $P-br up; ip -n $H link set $P-hp1 up; ip -n $H link set $P-hp2 up; ip -n $H link set $P-hn up
ip -n $P1 link set $P-p1e up; ip -n $P2 link set $P-p2e up; ip -n $N link set $P-n0 up
ip -n $P1 route add default via 10.210.30.1; ip -n $P1 -6 route add default via fd00:30::1
ip -n $N route add default via 10.210.31.1; ip -n $N -6 route add default via fd00:31::1
sleep 2.5    # DAD, MLD reports, router solicitations
ip netns exec $P1 ping -c 2 -i 0.2 -W 1 10.210.30.3 >/dev/null
ip netns exec $P1 ping -6 -c 2 -i 0.2 -W 1 fd00:30::3 >/dev/null
ip netns exec $P1 ping -c 2 -i 0.2 -W 1 10.210.31.2 >/dev/null
ip netns exec $P1 ping -6 -c 2 -i 0.2 -W 1 fd00:31::2 >/dev/null
ip netns exec $P1 bash -c 'echo udp >/dev/udp/10.210.30.3/6031'
ip netns exec $P1 bash -c 'echo tcp | nc -N -w 2 10.210.31.2 6030'
sleep 0.5
EOS
    record bash "$WORK/traffic.sh"
    expect pings 8
    expect h_in_no_routes6 "$(nsx "$H" awk '$1 == "Ip6InNoRoutes" { print $2 }' /proc/net/snmp6)"
}

# Two IPv6 routers (forwarding on) whose link comes up during the recording: their MLD reports to
# ff02::16 and solicitations find no route on the receiving side (Ip6InNoRoutes): normal, not a fault.
scenario_ipv6_forwarding_noise() {
    netns "$A"; netns "$B"
    ip link add "$P-a0" netns "$A" type veth peer name "$P-b0" netns "$B"
    nsx "$A" sysctl -qw net.ipv6.conf.all.forwarding=1
    nsx "$B" sysctl -qw net.ipv6.conf.all.forwarding=1
    record bash -c "ip -n $A link set $P-a0 up; ip -n $B link set $P-b0 up; sleep 3; ip -n $A link set $P-a0 down; ip -n $A link set $P-a0 up; sleep 3"
    expect in_no_routes6 "$(( $(nsx "$A" awk '$1 == "Ip6InNoRoutes" { print $2 }' /proc/net/snmp6) + $(nsx "$B" awk '$1 == "Ip6InNoRoutes" { print $2 }' /proc/net/snmp6) ))"
}

# nftables in the bridge family: the bridge's forward chain drops ICMP between its two ports.
scenario_bridge_nft_drop() {
    local H=$P-h
    bridged 32
    nsx "$H" nft -f - <<'NFT'
table bridge sfbridge {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip protocol icmp counter drop
    }
}
NFT
    static_neigh 10.210.32.2
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.32.2 >/dev/null || true
    expect pings 3
    expect drop_rule_packets "$(nsx "$H" nft list chain bridge sfbridge forward | awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1); exit }')"
}

# br_netfilter hands bridged IPv4 to iptables (net.bridge.bridge-nf-call-iptables=1): the bridge
# namespace's FORWARD chain drops ICMP between two ports of its bridge.
scenario_bridge_iptables_drop() {
    local H=$P-h
    bridged 38
    nsx "$H" sysctl -qw net.bridge.bridge-nf-call-iptables=1 || die "no br_netfilter: modprobe br_netfilter"
    nsx "$H" iptables -w -A FORWARD -p icmp -j DROP
    static_neigh 10.210.38.2
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.38.2 >/dev/null || true
    expect pings 3
    expect drop_rule_packets "$(nsx "$H" iptables -w -L FORWARD -v -x -n | awk '/DROP/ { print $1; exit }')"
}

# Recorded with --netns A only while B's INPUT chain drops the pings: B's brackets are not attached.
scenario_partial_netns() {
    pair 33
    nsx "$B" iptables -w -A INPUT -p icmp -j DROP
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.33.2 >/dev/null || true
    expect pings 3
    expect drop_rule_packets "$(nsx "$B" iptables -w -L INPUT -v -x -n | awk '/DROP/ { print $1; exit }')"
}

# The router DNATs its port 8080 to B's port 80, where nothing listens: B answers with a RST.
scenario_nat_closed_port() {
    router3 34 35
    nsx "$R" iptables -w -t nat -A PREROUTING -p tcp -d 10.210.34.2 --dport 8080 -j DNAT --to-destination 10.210.35.2:80
    record ip netns exec "$A" bash -c 'nc -w 1 10.210.34.2 8080 </dev/null; exit 0'
    expect connects 1
    expect dnat_rule_packets "$(nsx "$R" iptables -w -t nat -L PREROUTING -v -x -n | awk '/DNAT/ { print $1; exit }')"
    expect server_out_rsts "$(snmp "$B" Tcp OutRsts)"
}

# A policy routing rule on the router prohibits what A sends: ip_error answers ICMP and frees it.
scenario_policy_prohibit() {
    router3 36 37
    ip -n "$R" rule add from 10.210.36.1 to 10.210.37.2 prohibit
    record ip netns exec "$A" ping -c 3 -i 0.2 -W 1 10.210.37.2 >/dev/null || true
    expect pings 3
    expect router_out_dest_unreachs "$(snmp "$R" Icmp OutDestUnreachs)"
}

case ${1:-} in
list) echo "$SCENARIOS"; trap - EXIT; exit 0 ;;
"" ) die "usage: fault-scenarios.sh NAME OUTPUT.skbt [recorder flags] | list" ;;
esac
NAME=$1; OUT=$2; shift 2; EXTRA=("$@")
[[ " $(echo $SCENARIOS) " == *" $NAME "* ]] || die "unknown scenario '$NAME' (try: list)"
[[ $(id -u) == 0 ]] || die "needs root"
[[ -x $RECORDER ]] || die "no recorder at $RECORDER: swift build --scratch-path .build-diag --product skbtrail-record"
rm -f "$OUT" "$OUT.expect"
expect scenario "$NAME"
"scenario_${NAME//-/_}"
