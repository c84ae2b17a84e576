#!/usr/bin/env bash
# The tests, in the order they fail fastest:
#   1. swift test: unit and fixture tests of the analyzer; as root with eBPF, the recorder's end-to-end
#      tests too (real programs, real traffic in their own namespaces, checked against kernel counters)
#   2. the fuzz harness: damaged copies of the fixtures through every analyzer command (no crash, no
#      hang, no error that is not a sentence), then 8 concurrent diag runs on one fresh cache, repeated
#   3. libFuzzer with AddressSanitizer on the chunk codecs, the record walker and the header parser
#   4. the kernel matrix (scripts/kernels.sh matrix): the release recorder's --check and end-to-end
#      tests under Debian's 5.10, 6.1 and 6.12 kernels in QEMU, where QEMU can run and as root
#
#   scripts/test.sh                   everything
#   FUZZ_BUDGET=600 scripts/test.sh   a longer fuzz run (seconds of new mutants; default 120)
#   LIBFUZZER_SECONDS=600 ...         a longer libFuzzer run (default 60)
#   SKIP_FUZZ=1 scripts/test.sh       no fuzzing (steps 2 and 3)
#   SKIP_KERNELS=1 scripts/test.sh    no kernel matrix (step 4)
#   KERNELS="6.1" scripts/test.sh     the matrix on these kernels only (default: 5.10 6.1 6.12)
#
# Reports of the fuzz harness go to .build/fuzz/ (summary.txt, and a reproducer per failure), libFuzzer's
# to .build/libfuzzer/ (fuzz.log, crash-* inputs), the kernel matrix's to .build/kernels/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH

swift build --build-tests
swift test --skip-build

if [[ -z ${SKIP_FUZZ:-} ]]; then
    swift build -c release --product skbtrail
    python3 scripts/fuzz-bundles.py --skbtrail .build/release/skbtrail --budget "${FUZZ_BUDGET:-120}" --out .build/fuzz
    python3 scripts/fuzz-bundles.py --skbtrail .build/release/skbtrail --concurrency 8 --repeat 10 --out .build/fuzz-concurrency
    scripts/fuzz-libfuzzer.sh "${LIBFUZZER_SECONDS:-60}"
fi

# Why the kernel matrix cannot run here, or nothing when it can.
kernels_skip() {
    [[ -n ${SKIP_KERNELS:-} ]] && { echo "SKIP_KERNELS is set"; return; }
    [[ $(uname -s) == Linux ]] || { echo "the recorder runs on Linux only"; return; }
    [[ $(id -u) == 0 ]] || { echo "not root: the guests' tests load BPF programs (run as root, or scripts/setup.sh first)"; return; }
    command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64 (scripts/setup.sh installs qemu-system-x86)"; return; }
    [[ $(uname -m) == x86_64 ]] || { echo "the matrix boots x86_64 kernels, this is $(uname -m)"; return; }
    # a QEMU that cannot start a machine (no TCG, no memory) would fail every kernel the same way
    timeout 30 qemu-system-x86_64 -nodefaults -no-user-config -display none -accel tcg -machine none -S \
        -monitor none -serial none </dev/null >/dev/null 2>&1 & local pid=$!
    sleep 1
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null; return; fi
    wait "$pid" 2>/dev/null || echo "qemu-system-x86_64 cannot start a TCG machine here"
}
why=$(kernels_skip)
if [[ -n $why ]]; then
    echo "test.sh: skipping the kernel matrix: $why" >&2
    exit 0
fi
# the recorder's tests run the analyzer beside it (diag, paths and sql of what they recorded)
swift build -c release --product skbtrail-record
swift build -c release --product skbtrail
start=$SECONDS
# shellcheck disable=SC2086  # KERNELS is a list of versions
SKBTRAIL_RECORDER=.build/release/skbtrail-record scripts/kernels.sh matrix ${KERNELS:-}
echo "test.sh: the kernel matrix took $((SECONDS - start)) s" >&2
