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

scripts/setup.sh
echo "demo: swift build (the first build takes a few minutes)" >&2
swift build -q
SKBTRAIL=$ROOT/.build/debug/skbtrail

RECORDER=$ROOT/.build/debug/skbtrail-record scripts/scenarios.sh demo "$OUT" --addr 10.199.1.2

show() {
    echo
    echo "\$ skbtrail $*"
    "$SKBTRAIL" "$@"
}
show info "$OUT"
show drops "$OUT"
show diag --quiet "$OUT"
echo
echo "demo: the bundle is $OUT; try: .build/debug/skbtrail paths $OUT" >&2
