#!/usr/bin/env bash
# Inside a scripts/kernels.sh guest, for `kernels.sh matrix`: the recorder's checks on this kernel.
#
#   matrix-guest.sh VER LOGDIR RECORDER TESTS      (TESTS: the skbtrailPackageTests.xctest binary)
#
# Writes into LOGDIR (shared with the host): VER.release (uname -r), VER.boot (seconds from the kernel's
# start to here), VER.check (skbtrail-record --check) and VER.xml (the RecorderTests' JUnit report).
# Exits with the tests' status.
set -uo pipefail
ver=$1 logs=$2 recorder=$3 tests=$4

uname -r > "$logs/$ver.release"
cut -d' ' -f1 /proc/uptime > "$logs/$ver.boot"
echo "== $(uname -r): up after $(<"$logs/$ver.boot") s"

# the tables' modules, so --check verifies the kernel-function programs too (a module not loaded is
# "not in this kernel" to the recorder, rightly)
modprobe -q -a nf_tables ip_tables ip6_tables bridge nf_conntrack nf_nat 2>/dev/null || echo "(modprobe nf_tables ip_tables ip6_tables bridge nf_conntrack nf_nat failed)"
echo "== skbtrail-record --check"
start=$EPOCHREALTIME
"$recorder" --check -o /tmp/check.skbt > "$logs/$ver.check"
echo "(exit $?, $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
cat "$logs/$ver.check"

echo "== RecorderTests"
echo "(recorder: $recorder)"
SKBTRAIL_RECORDER=$recorder "$tests" --testing-library swift-testing --filter RecorderTests --skip TicketRecordingTests \
    --xunit-output "$logs/$ver.xml"
