# Shared by the scenario scripts (scenarios.sh, fault-scenarios.sh, tcp-scenarios.sh): namespaces,
# veths, background processes, and the one cleanup trap that removes all of them whatever happens.
# Source it after setting LAB_NAME (the script's name, for messages) and P (the name prefix).
# Deleting a namespace deletes its veth ends (and so their peers), its qdiscs and its rules.

die() { echo "$LAB_NAME: $*" >&2; exit 1; }
say() { [[ ${QUIET:-0} == 1 ]] || echo "$LAB_NAME: $*" >&2; }

NAMESPACES=()
PIDS=()
WORK=""

cleanup() {
    local rc=$? pid ns
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # wait only works for our own children; they all are
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
    [[ -n $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Creates a namespace with lo up; refuses one that exists (a run with the same prefix is going on, or
# an earlier one was killed -9: `ip netns delete` it).
netns() {
    local ns=$1
    [[ -e /run/netns/$ns ]] && die "namespace $ns exists: another run with prefix $P is going on, or remove it with 'ip netns delete $ns'"
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
}

# veth NS1 IF1 ADDR1/LEN NS2 IF2 ADDR2/LEN: a veth pair between two namespaces, addressed and up.
veth() {
    local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6
    ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2"
    ip -n "$ns1" addr add "$a1" dev "$if1"
    ip -n "$ns2" addr add "$a2" dev "$if2"
    ip -n "$ns1" link set "$if1" up
    ip -n "$ns2" link set "$if2" up
}

# Runs a command in a namespace in the background and remembers its PID (ip netns exec execs it, so
# the PID is the command's own): cleanup ends it by that PID.
background() {
    local ns=$1; shift
    ip netns exec "$ns" "$@" >/dev/null 2>&1 &
    PIDS+=("$!")
}

# wait_listen NS t|u PORT: waits until a TCP (t) or UDP (u) port listens in a namespace.
wait_listen() {
    local ns=$1 flag=$2 port=$3 i
    for i in $(seq 50); do
        if ip netns exec "$ns" ss -H "-${flag}ln" "sport = :$port" | grep -q .; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on port $port in namespace $ns after 5 s"
}

inode() { stat -L -c %i "/run/netns/$1"; }
ifindex() { ip -n "$1" -o link show dev "$2" | cut -d: -f1; }

# snmp NS Udp NoPorts: a counter from /proc/net/snmp in a namespace.
snmp() {
    ip netns exec "$1" awk -v t="$2:" -v k="$3" '
        $1 == t && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
        $1 == t && h  { print $(col[k]); exit }' /proc/net/snmp
}

# rule_packets NS TABLE CHAIN N: packets counted by the rule on line N of a chain.
rule_packets() {
    ip netns exec "$1" iptables -w -t "$2" -L "$3" -v -x -n --line-numbers | awk -v n="$4" '$1 == n { print $2 }'
}

# Records the command into $OUT with the extra recorder flags in EXTRA.
record() {
    say "recording: $RECORDER -o $OUT ${EXTRA[*]} -- $*"
    "$RECORDER" -o "$OUT" "${EXTRA[@]}" -- "$@"
}

expect() { printf '%s=%s\n' "$1" "$2" >>"$OUT.expect"; }
