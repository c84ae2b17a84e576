#!/usr/bin/env bash
# The README's first command. On a fresh Debian machine, as root: installs what the build needs, builds,
# records the demo scenario (a ping dropped by an iptables rule between two network namespaces, plus UDP
# and TCP that get through) and analyzes the bundle.
#
#   scripts/demo.sh [BUNDLE]      (default: /tmp/skbtrail-demo-TIME.skbt)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
OUT=${1:-/tmp/skbtrail-demo-$(date +%Y%m%d-%H%M%S).skbt}

LOG=${OUT%.skbt}.log
: >"$LOG"
# One line per step; the step's whole output goes to $LOG, and its end is shown when it fails.
step() {
    local what=$1; shift
    printf 'demo: %s ... ' "$what" >&2
    local start=$SECONDS
    if "$@" >>"$LOG" 2>&1; then
        echo "done ($((SECONDS - start)) s)" >&2
    else
        echo "failed" >&2
        tail -n 20 "$LOG" >&2
        echo "demo: $what failed: the whole log is $LOG" >&2
        exit 1
    fi
}
step "installing packages (scripts/setup.sh)" env SETUP_LOG="$LOG" scripts/setup.sh
step "building (swift build; the first build takes a few minutes)" swift build -q
step "installing man pages and shell completions (scripts/setup.sh docs)" env SETUP_LOG="$LOG" scripts/setup.sh docs
SKBTRAIL=$ROOT/.build/debug/skbtrail
step "recording a ping dropped by iptables, with UDP and TCP that pass" \
    env RECORDER="$ROOT/.build/debug/skbtrail-record" scripts/scenarios.sh demo "$OUT" --addr 10.199.1.2

show() {
    echo
    echo "\$ skbtrail $*"
    "$SKBTRAIL" "$@" --no-pager
}
show info "$OUT"
show drops "$OUT"
show diag --quiet --limit 1 "$OUT"
echo
echo "demo: the bundle is $OUT (its log: $LOG); next: skbtrail diag --quiet $OUT (all of them), skbtrail paths $OUT, man skbtrail" >&2
