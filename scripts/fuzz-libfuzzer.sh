#!/usr/bin/env bash
# libFuzzer (with AddressSanitizer) on what reads a chunk before any SQL: the chunk codecs, the record
# walker, the packet header parser, and the split codec's round trip (Sources/Fuzz/main.swift).
#
#   scripts/fuzz-libfuzzer.sh [SECONDS]      fuzz for SECONDS (default 60), seeded from the fixtures
#
# Builds into .build/libfuzzer; the corpus grows in .build/libfuzzer/corpus, and an input that crashes
# is saved to .build/libfuzzer/crash-* (replay it: .build/libfuzzer/release/skbtrail-fuzz FILE). Exits 1
# on a crash, a leak, a timeout (10 s per input) or an input that needs more than 2 GiB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-60}
out=.build/libfuzzer

swift build -c release --product skbtrail-fuzz --build-path "$out" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSKBTRAIL_LIBFUZZER -Xswiftc -use-ld=lld

# seeds: every fixture chunk as stored (target byte = its codec), its records raw (target 3), and the
# packet bytes of a few records (target 4)
mkdir -p "$out/corpus"
python3 - "$out/corpus" <<'PY'
import glob, os, sqlite3, subprocess, sys
corpus = sys.argv[1]
codecs = {"none": 0, "zstd": 1, "zstd-split": 2}
n = 0
for path in sorted(glob.glob("fixtures/**/*.skbt", recursive=True)):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for cid, codec, data in db.execute("SELECT id, codec, data FROM chunk"):
        name = os.path.basename(path)[:-5]
        with open(os.path.join(corpus, f"{name}-{cid}-stored"), "wb") as f:
            f.write(bytes([codecs.get(codec, 1)]) + data)
        if codec == "zstd":
            raw = subprocess.run(["zstd", "-dc"], input=data, capture_output=True).stdout
            with open(os.path.join(corpus, f"{name}-{cid}-raw"), "wb") as f:
                f.write(bytes([3]) + raw[:65536])
            off = 0
            for i in range(8):
                if off + 192 > len(raw):
                    break
                size = int.from_bytes(raw[off + 2:off + 4], "little")
                snap = int.from_bytes(raw[off + 6:off + 8], "little")
                if snap:
                    with open(os.path.join(corpus, f"{name}-{cid}-pkt{i}"), "wb") as f:
                        f.write(bytes([4, i % 2]) + raw[off + 192:off + 192 + snap])
                off += max(size, 8)
        n += 1
print(f"fuzz-libfuzzer: {n} chunks of the fixtures seed {corpus}")
PY

cd "$out"
rc=0
# the Swift runtime's backtracer would read the crashed stack under ASan: libFuzzer reports instead
SWIFT_BACKTRACE=enable=no ./release/skbtrail-fuzz corpus -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 >fuzz.log 2>&1 || rc=$?
grep -E "^(#[0-9]+ +DONE|INFO: Seed|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY|Test unit written|.*Fatal error)" fuzz.log || true
if [[ $rc -ne 0 ]]; then
    echo "fuzz-libfuzzer: failed (exit $rc); the whole log is $out/fuzz.log" >&2
    exit 1
fi
