#!/usr/bin/env bash
# The tests, in the order they fail fastest:
#   1. swift test: unit and fixture tests of the analyzer; as root with eBPF, the recorder's end-to-end
#      tests too (real programs, real traffic in their own namespaces, checked against kernel counters)
#   2. the fuzz harness: damaged copies of the fixtures through every analyzer command (no crash, no
#      hang, no error that is not a sentence), then 8 concurrent diag runs on one fresh cache, repeated
#   3. libFuzzer with AddressSanitizer on the chunk codecs, the record walker and the header parser
#
#   scripts/test.sh                   everything
#   FUZZ_BUDGET=600 scripts/test.sh   a longer fuzz run (seconds of new mutants; default 120)
#   LIBFUZZER_SECONDS=600 ...         a longer libFuzzer run (default 60)
#   SKIP_FUZZ=1 scripts/test.sh       swift test only
#
# Reports of the fuzz harness go to .build/fuzz/ (summary.txt, and a reproducer per failure), libFuzzer's
# to .build/libfuzzer/ (fuzz.log, crash-* inputs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH

swift build --build-tests
swift test --skip-build

[[ -n ${SKIP_FUZZ:-} ]] && exit 0
swift build -c release --product skbtrail
python3 scripts/fuzz-bundles.py --skbtrail .build/release/skbtrail --budget "${FUZZ_BUDGET:-120}" --out .build/fuzz
python3 scripts/fuzz-bundles.py --skbtrail .build/release/skbtrail --concurrency 8 --repeat 10 --out .build/fuzz-concurrency
scripts/fuzz-libfuzzer.sh "${LIBFUZZER_SECONDS:-60}"
