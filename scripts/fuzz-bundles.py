#!/usr/bin/env python3
"""Fuzzes the analyzer with damaged bundles: crashes, hangs and unclear errors.

    scripts/fuzz-bundles.py [--seed S] [--count N] [--budget SEC] [--timeout SEC] [--out DIR]
                            [--skbtrail PATH] [--kinds KIND,...] [--workers 2]
    scripts/fuzz-bundles.py --concurrency N --repeat M [--fixture F] [--concurrency-cmd "diag"]
    scripts/fuzz-bundles.py --replay OUT/mutants/ID/recipe.json     (rebuild one mutant, run its commands)

Takes the committed fixtures (fixtures/**/*.skbt), makes mutants of them and runs every analyzer command
on each mutant under a timeout. Mutant kinds (each mutant is a JSON recipe, deterministic from --seed,
the kind and its index; `--replay` rebuilds it):

  bitflip   1-4 flipped bits anywhere in the file (header, schema page, b-tree page headers, anywhere)
  byteflip  bytes set to 00/FF/random, runs of bytes or a whole page zeroed
  record    chunks decompressed, their records damaged (type, size, probe, snap, ts, cpu, flags, args,
            packet bytes, duplicated/dropped/truncated records, the zstd-split prefix), stored back with
            the same codec, so the damage passes zstd and reaches the record walker
  truncate  the file cut at many lengths (in the header page, at and inside pages, just before the end),
            half of them with an orphaned -wal beside it (from a killed recording of the same fixture)
  wal       a killed recording (WAL mode, ended_ns NULL, half of the chunks only in FILE-wal): intact,
            -wal truncated/flipped/removed/from another bundle, main file truncated, garbage -shm, a hot
            or garbage rollback -journal
  meta      metadata edits with PRAGMA ignore_check_constraints=1 (NOT NULL is removed from the table's
            schema when an edit needs it): NULLs, wrong types, negative and huge values in every column
            of every metadata table, empty and dropped tables, format/byte order/event size, header
            pragmas
  sql       hostile user SQL through `skbtrail sql B QUERY` (and on stdin): heap limits, multi-statement
            queries, fts3_tokenizer, huge blobs, endless recursive CTEs, ATTACH, VACUUM INTO, writes
  rules     the same SQL (and broken rule files) as a rule directory given with --rules DIR

Commands per bundle mutant, sequentially in one fresh SKBTRAIL_CACHE_DIR (so later commands read the
cache the first one wrote), plus three with --no-cache: info, info --format json, drops, paths,
paths --format json, paths --date, diag, diag --quiet --date, diag --format json, rules FILE, latency,
pcap -o -, slice and redact into a file,
tcp, sql FILE "SELECT count(*) FROM event", sql FILE "SELECT * FROM finding". sql and rules mutants run
their query/rules, then check that the bundle is unchanged, no file appeared beside it, and the
analysis still answers as before. TMPDIR points into the mutant's own directory.

Classes: OK (exit 0); CLEAN-ERROR (exit 1 or 64, stderr one line `error: ...` of one or two sentences
without Swift runtime text or GRDB/SQLite API names); CRASH (signal, exit >= 128, "Fatal error" or
"Swift runtime failure"); HANG (timeout); BAD-ERROR (any other non-zero exit or message); UNSAFE (a
query or rule changed the bundle or the analysis, or created a file). The run exits 1 when any CRASH,
HANG, BAD-ERROR or UNSAFE occurred, and writes into --out: summary.txt (the table and the distinct
failure signatures, each with a minimized reproducer), failures.jsonl (every failing run), mutants/ID/
(each failing mutant's files, recipe.json and its failures) and repro/NN/ (the minimized mutant of
each signature, README.txt with the command and stderr).

Dependencies: Python 3.11 standard library and the `zstd` command line (Debian/Ubuntu: apt-get install
zstd; macOS: brew install zstd). No pip packages.

Defaults fit a CI job of 3-5 minutes on 2 cores with a release build: --budget 150 s of new mutants,
2 workers, then at most ~60 s to finish running mutants and minimize the signatures.
"""
import argparse
import concurrent.futures
import glob
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENT_SIZE = 192          # struct st_event, recording.event_size
PAGE = 4096               # the fixtures' SQLite page size (checked at start)
KINDS = ["bitflip", "byteflip", "record", "truncate", "wal", "meta", "sql", "rules"]
CLASSES = ["OK", "CLEAN-ERROR", "CRASH", "HANG", "BAD-ERROR", "UNSAFE"]
FAILING = {"CRASH", "HANG", "BAD-ERROR", "UNSAFE"}
HEAD = 64 * 1024          # bytes of stdout/stderr kept per run

# Every command a bundle mutant gets: {B} is the bundle. The --no-cache ones come last.
FILE_COMMANDS = [
    ["info", "{B}"],
    ["info", "--format", "json", "{B}"],
    ["drops", "{B}"],
    ["paths", "{B}"],
    ["paths", "--format", "json", "{B}"],
    ["paths", "--date", "{B}"],
    ["diag", "{B}"],
    ["diag", "--quiet", "--date", "{B}"],
    ["diag", "--format", "json", "{B}"],
    ["rules", "{B}"],
    ["latency", "{B}"],
    ["tcp", "{B}"],
    ["sql", "{B}", "SELECT count(*) FROM event"],
    ["sql", "{B}", "SELECT * FROM finding"],
    ["drops", "--addr", "10.0.0.0/8", "--format", "jsonl", "{B}"],
    ["drops", "--stack", "{B}"],
    ["sql", "{B}", "SELECT * FROM stack_frame"],
    ["tcp", "--port", "80", "--dropped", "--format", "json", "{B}"],
    ["info", "--proto", "icmp6", "--since", "1s", "--until", "1h", "{B}"],
    ["pcap", "{B}", "-o", "-"],
    ["slice", "{B}", "--dropped", "-o", "{O}", "--force"],
    ["redact", "{B}", "--key", "5a" * 32, "-o", "{O}", "--force"],
    ["info", "--no-cache", "{B}"],
    ["diag", "--no-cache", "--format", "json", "{B}"],
    ["sql", "--no-cache", "{B}", "SELECT count(*) FROM event"],
]
COUNT_QUERY = "SELECT count(*) FROM event"


def fail(message):
    print(f"fuzz-bundles: {message}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------------------------
# zstd through its command line (no pip package needed)

def zstd_bin():
    path = shutil.which("zstd")
    if not path:
        fail("needs the zstd command line to re-compress chunks: apt-get install zstd (or brew install zstd)")
    return path


def zstd_decompress(data):
    r = subprocess.run([zstd_bin(), "-q", "-d", "-c"], input=bytes(data), capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"zstd -d failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def zstd_compress(data):
    # --stream-size makes the frame record its content size, as the recorder's frames do
    r = subprocess.run([zstd_bin(), "-q", "-c", "-3", f"--stream-size={len(data)}"], input=bytes(data),
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"zstd failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


# ----------------------------------------------------------------------------------------------
# chunk codecs (docs/bundle-format.md, bench/replay.py)

def record_offsets(raw):
    """Start offsets of the records of an intact chunk."""
    offsets, off = [], 0
    while off + 4 <= len(raw):
        size = struct.unpack_from("<H", raw, off + 2)[0]
        if size < 8 or off + size > len(raw):
            break
        offsets.append(off)
        off += size
    return offsets


def split_join(payload):
    n, fixed = struct.unpack_from("<II", payload, 0)
    planes = payload[8:8 + n * fixed]
    headers = [planes[j::n] for j in range(n)] if n else []
    out = bytearray()
    tail = 8 + n * fixed
    for h in headers:
        size = struct.unpack_from("<H", h, 2)[0]
        out += h
        out += payload[tail:tail + size - fixed]
        tail += max(0, size - fixed)
    return bytes(out)


def split_encode(raw, offsets, fixed=EVENT_SIZE):
    """The zstd-split payload of `raw`, laid out by `offsets` (the record starts the writer knew),
    whatever the size fields inside say now: the reader's join sees the damage."""
    offsets = [o for o in offsets if o + fixed <= len(raw)]
    if not offsets or offsets[0] != 0:
        offsets = [0] + offsets if len(raw) >= fixed else []
    n = len(offsets)
    headers = b"".join(raw[o:o + fixed] for o in offsets)
    planes = b"".join(headers[i::fixed] for i in range(fixed)) if n else b""
    tails = b"".join(raw[o + fixed:(offsets[k + 1] if k + 1 < n else len(raw))] for k, o in enumerate(offsets))
    if not n:
        tails = raw
    return struct.pack("<II", n, fixed) + planes + tails


def chunk_raw(codec, data):
    if codec == "none":
        return bytes(data)
    if codec == "zstd":
        return zstd_decompress(data)
    if codec == "zstd-split":
        return split_join(zstd_decompress(data))
    raise RuntimeError(f"unknown codec {codec}")


# ----------------------------------------------------------------------------------------------
# fixtures

class Fixtures:
    """The committed bundles and what generators need to know about them (chunks, records, columns)."""

    def __init__(self, paths):
        self.paths = paths            # relative to ROOT, sorted
        self._info = {}
        self._lock = threading.Lock()

    def info(self, rel):
        with self._lock:
            if rel not in self._info:
                self._info[rel] = self._load(rel)
            return self._info[rel]

    @staticmethod
    def _load(rel):
        con = sqlite3.connect(f"file:{os.path.join(ROOT, rel)}?mode=ro", uri=True)
        info = {"chunks": [], "tables": {}, "probes": [], "size": os.path.getsize(os.path.join(ROOT, rel))}
        for cid, codec, raw_size, records, data in con.execute(
                "SELECT id, codec, raw_size, records, data FROM chunk ORDER BY id"):
            raw = chunk_raw(codec, data)
            offs = record_offsets(raw)
            recs = []
            for k, o in enumerate(offs):
                size = struct.unpack_from("<H", raw, o + 2)[0]
                snap = struct.unpack_from("<H", raw, o + 6)[0]
                recs.append((size, snap))
            info["chunks"].append({"id": cid, "codec": codec, "raw_size": raw_size, "records": recs})
        for (table,) in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"):
            cols = [(r[1], r[2], r[5]) for r in con.execute(f"PRAGMA table_info({table})")]
            info["tables"][table] = cols   # (name, type, pk)
        info["probes"] = [r[0] for r in con.execute("SELECT DISTINCT probe FROM probe ORDER BY probe")]
        info["page_size"] = con.execute("PRAGMA page_size").fetchone()[0]
        con.close()
        return info


# ----------------------------------------------------------------------------------------------
# mutant generation: kind + index + seed -> recipe (JSON)

RECORD_FIELDS = {  # name: (offset, width)
    "type": (0, 2), "size": (2, 2), "probe": (4, 2), "snap": (6, 2), "ts": (8, 8), "skb": (16, 8),
    "head": (24, 8), "cpu": (32, 4), "pid": (36, 4), "netns": (40, 4), "ifindex": (44, 4), "mark": (48, 4),
    "len": (52, 4), "protocol": (56, 2), "l3_from": (58, 1), "flags": (59, 1), "tid": (60, 4),
    "comm": (64, 8),
}


def field_values(rng, field, width, size, snap):
    top = (1 << (8 * width)) - 1
    common = [0, 1, top, top - 1, 1 << (8 * width - 1), (1 << (8 * width - 1)) - 1, rng.randint(0, top)]
    special = {
        "type": [0, 2, 3, 0xffff],
        "size": [0, 4, 7, 8, 16, 184, 191, 192, 193, 200, size + 8, max(0, size - 8), size + 1, 0xfff8, 0xffff],
        "probe": [0, 63, 64, 79, 80, 255, 256, 0xffff],
        "snap": [0, 1, snap + 1, snap + 8, max(0, size - EVENT_SIZE) + 1, 256, 0xffff],
        "ts": [0, 1, (1 << 63) - 1, 1 << 63, top, rng.randint(0, top)],
        "cpu": [8191, 8192, 1000, 0x7fffffff, 0xffffffff],
        "l3_from": [0, 1, 2, 3, 0xff],
        "flags": [0, 1, 2, 4, 8, 16, 8 | 16, 0xff],
        "protocol": [0x0008, 0xdd86, 0x0608, 0x0081, 0xa888, 0],
    }.get(field, [])
    return rng.choice(special + common if special else common)


def gen_bitflip(rng, fx, rel):
    size = fx.info(rel)["size"]
    ops = []
    for _ in range(rng.choice([1, 1, 1, 2, 3, 4])):
        region = rng.choice(["db-header", "page1", "page-header", "any", "any"])
        if region == "db-header":
            off = rng.randrange(0, 100)
        elif region == "page1":
            off = rng.randrange(100, PAGE)
        elif region == "page-header":
            off = rng.randrange(1, size // PAGE) * PAGE + rng.randrange(0, 12)
        else:
            off = rng.randrange(0, size)
        ops.append({"op": "bitflip", "offset": off, "bit": rng.randrange(8), "region": region})
    return ops


def gen_byteflip(rng, fx, rel):
    size = fx.info(rel)["size"]
    what = rng.choice(["bytes", "bytes", "fill", "zero-page"])
    if what == "zero-page":
        return [{"op": "fill", "offset": rng.randrange(0, size // PAGE) * PAGE, "length": PAGE, "value": 0}]
    if what == "fill":
        return [{"op": "fill", "offset": rng.randrange(0, size), "length": rng.choice([16, 64, 512]),
                 "value": rng.choice([0, 0xff, rng.randrange(256)])}]
    ops = []
    for _ in range(rng.choice([1, 2, 4, 8])):
        off = rng.randrange(0, 100) if rng.random() < 0.2 else rng.randrange(0, size)
        ops.append({"op": "byte", "offset": off, "value": rng.choice([0, 0xff, rng.randrange(256)])})
    return ops


def gen_record(rng, fx, rel):
    info = fx.info(rel)
    chunks = [c for c in info["chunks"] if c["records"]]
    if not chunks:
        return None
    ops = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        c = rng.choice(chunks)
        j = rng.randrange(len(c["records"]))
        size, snap = c["records"][j]
        what = rng.choices(["field", "args", "packet", "rawbytes", "dup", "drop", "truncate", "append",
                            "prefix", "count"], weights=[10, 3, 3, 2, 1, 1, 2, 1, 2, 1])[0]
        if what == "field":
            name = rng.choice(list(RECORD_FIELDS) + ["size", "snap", "ts", "probe", "cpu", "flags"])
            off, width = RECORD_FIELDS[name]
            ops.append({"op": "field", "chunk": c["id"], "record": j, "field": name,
                        "value": field_values(rng, name, width, size, snap)})
        elif what == "args":
            width = rng.choice([1, 2, 4, 8])
            off = rng.randrange(80, EVENT_SIZE - width + 1)
            ops.append({"op": "field", "chunk": c["id"], "record": j, "field": f"args+{off - 80}", "offset": off,
                        "width": width, "value": field_values(rng, "args", width, size, snap)})
        elif what == "packet":
            if size <= EVENT_SIZE:
                ops.append({"op": "field", "chunk": c["id"], "record": j, "field": "snap", "value": 0xffff})
                continue
            off = EVENT_SIZE + rng.randrange(0, min(64, size - EVENT_SIZE))
            ops.append({"op": "field", "chunk": c["id"], "record": j, "field": f"packet+{off - EVENT_SIZE}",
                        "offset": off, "width": 1, "value": rng.choice([0, 0xff, 0x0f, 0xf0, rng.randrange(256)])})
        elif what == "rawbytes":
            total = sum(s for s, _ in c["records"])
            ops.append({"op": "rawbytes", "chunk": c["id"], "offset": rng.randrange(total),
                        "value": rng.randrange(256)})
        elif what == "dup":
            ops.append({"op": "dup-record", "chunk": c["id"], "record": j, "fix_count": rng.random() < 0.5})
        elif what == "drop":
            ops.append({"op": "drop-record", "chunk": c["id"], "record": j, "fix_count": rng.random() < 0.5})
        elif what == "truncate":
            total = sum(s for s, _ in c["records"])
            ops.append({"op": "truncate-raw", "chunk": c["id"],
                        "length": rng.choice([0, 1, 3, 4, 7, 8, EVENT_SIZE - 1, EVENT_SIZE, total - 1, total - 4,
                                              rng.randrange(total)])})
        elif what == "append":
            ops.append({"op": "append-raw", "chunk": c["id"],
                        "hex": rng.choice(["00", "0000", "01000000", "0100080000000000", "ffff" * 4,
                                           "0100c000" + "00" * 188, "0200" + "1000" + "00" * 12])})
        elif what == "prefix":
            if c["codec"] != "zstd-split":
                continue
            n = len(c["records"])
            which = rng.choice(["n", "fixed", "both"])
            ops.append({"op": "split-prefix", "chunk": c["id"],
                        "n": rng.choice([0, 1, n - 1, n + 1, 2 * n, 0x7fffffff, 0xffffffff]) if which != "fixed" else None,
                        "fixed": rng.choice([0, 1, 3, 4, 8, 191, 193, 384, 0x7fffffff, 0xffffffff]) if which != "n" else None})
        elif what == "count":
            ops.append({"op": "chunk-records", "chunk": c["id"],
                        "value": rng.choice([0, len(c["records"]) - 1, len(c["records"]) + 1, 2 ** 31, 2 ** 62])})
    return ops or None


def truncation_lengths(rng, size):
    return rng.choice([
        0, 1, 15, 16, 50, 99, 100, 101, rng.randrange(1, PAGE), PAGE - 1,
        PAGE, PAGE + 1, 2 * PAGE, rng.randrange(1, size // PAGE) * PAGE,
        rng.randrange(1, size // PAGE) * PAGE + rng.randrange(1, PAGE), rng.randrange(1, size),
        size - 1, size - 8, size - 512, size - PAGE, size - PAGE + 1,
    ])


def gen_truncate(rng, fx, rel):
    size = fx.info(rel)["size"]
    ops = [{"op": "truncate", "length": truncation_lengths(rng, size)}]
    if rng.random() < 0.5:
        ops.append({"op": "orphan-wal", "fixture": rel})
    return ops


def gen_wal(rng, fx, rel, index):
    """(base, ops): base 'killed' (a killed recording with FILE-wal) or 'fixture'."""
    size = fx.info(rel)["size"]
    frame = 24 + PAGE
    what = "intact" if index == 0 else rng.choice(
        ["wal-truncate", "wal-truncate", "wal-flip", "truncate", "wal-remove", "shm-garbage", "wal-from",
         "hot-journal", "journal-garbage", "intact"])
    if what == "intact":
        return "killed", []
    if what == "wal-truncate":
        k = rng.randrange(1, 6)
        return "killed", [{"op": "wal-truncate", "length": rng.choice(
            [0, 1, 31, 32, 33, 32 + 24, 32 + frame - 1, 32 + frame, 32 + k * frame + rng.randrange(1, frame),
             32 + k * frame, -1, -PAGE])}]
    if what == "wal-flip":
        region = rng.choice(["wal-header", "frame-header", "any"])
        if region == "wal-header":
            off = rng.randrange(32)
        elif region == "frame-header":
            off = 32 + rng.randrange(0, 6) * frame + rng.randrange(24)
        else:
            off = rng.randrange(32, 32 + 6 * frame)
        return "killed", [{"op": "wal-flip", "offset": off, "bit": rng.randrange(8), "region": region}]
    if what == "truncate":
        return "killed", [{"op": "truncate", "length": truncation_lengths(rng, size)}]
    if what == "wal-remove":
        return "killed", [{"op": "wal-remove"}]
    if what == "shm-garbage":
        return "killed", [{"op": "shm-garbage", "length": rng.choice([1, 136, 32768]),
                           "value": rng.choice([0, 0xff, 0x5a])}]
    if what == "wal-from":
        other = rng.choice([p for p in fx.paths if p != rel] or [rel])
        return "killed", [{"op": "wal-from", "fixture": other}]
    if what == "hot-journal":
        ops = [{"op": "hot-journal"}]
        if rng.random() < 0.5:
            ops.append({"op": "journal-truncate", "length": rng.choice([0, 1, 27, 28, 512, 600, 4096, 4100])})
        return "fixture", ops
    return "fixture", [{"op": "journal-garbage", "length": rng.choice([1, 28, 512, 8192])}]


META_PRIORITY = [
    "UPDATE chunk SET raw_size=1099511627776 WHERE id=1",
    "INSERT INTO lost VALUES (0,9223372036854775807),(1,9223372036854775807)",
    "UPDATE probe SET attached='' WHERE probe=64",
    "UPDATE recording SET boot_to_unix_ns=9223372036854775807",
    "UPDATE chunk SET first_ts='abc' WHERE id=1",
    "UPDATE chunk SET data=NULL",
    "UPDATE recording SET format_version=0",
    "UPDATE recording SET format_version=-1",
    "UPDATE recording SET format_version='one'",
    "UPDATE recording SET byte_order='big'",
    "UPDATE recording SET event_size=100",
    "UPDATE recording SET event_size=0",
    "UPDATE recording SET format_version=2",
    "PRAGMA user_version=2",
    "PRAGMA application_id=0",
    "DELETE FROM recording",
    "INSERT INTO recording SELECT 2, format_version, recorder_version, uuid, command_line, filters, host, kernel_release, kernel_version, machine, byte_order, boot_to_unix_ns, codec, codec_level, snaplen, event_size, started_ns, ended_ns, stop_reason FROM recording",
    "DELETE FROM chunk",
    "DELETE FROM probe",
    "DROP TABLE chunk",
    "DROP TABLE probe",
    "DROP TABLE recording",
    "UPDATE chunk SET records=9223372036854775807",
    "UPDATE chunk SET raw_size=-1 WHERE id=1",
    "UPDATE chunk SET codec='lz4' WHERE id=1",
    "UPDATE chunk SET last_ts=first_ts-1",
    "UPDATE chunk SET id=-id",
    "INSERT INTO chunk SELECT NULL, first_ts, last_ts, records, raw_size, codec, data FROM chunk",
    "UPDATE recording SET boot_to_unix_ns=-9223372036854775808",
    "UPDATE recording SET started_ns=9223372036854775807, ended_ns=-9223372036854775808",
    "UPDATE recording SET uuid=''",
    "UPDATE recording SET uuid='../../x/y'",
    "UPDATE recording SET command_line='not json', filters='[1,'",
    "UPDATE recording SET snaplen=-1",
    "UPDATE recording SET snaplen=100000",
    "ALTER TABLE chunk RENAME COLUMN data TO d",
    "ALTER TABLE chunk DROP COLUMN codec",
    "DROP TABLE lost; CREATE VIEW lost AS SELECT 'x' AS cpu, 'y' AS events",
    "UPDATE symbol SET name=NULL",
    "UPDATE interface SET flags='{not json'",
    "UPDATE snapshot SET content=printf('%.*c', 20000000, 'x') WHERE id=(SELECT min(id) FROM snapshot)",
    "UPDATE snapshot SET content=CAST(X'C328FF00FE' AS TEXT)",
]

META_VALUES = ["NULL", "'abc'", "X'00FF'", "-1", "0", "9223372036854775807", "-9223372036854775808", "1.5",
               "''", "1e300", "printf('%.*c', 100000, 'x')", "CAST(X'C328FF00' AS TEXT)"]
PK_VALUES = ["-1", "0", "9223372036854775807", "-9223372036854775808"]


def meta_edits(fx):
    """Every generated metadata edit (without the priority ones), in a fixed order."""
    info = fx.info(fx.paths[0])
    edits = []
    for table, cols in sorted(info["tables"].items()):
        if table.startswith("sqlite_"):
            continue
        for name, typ, pk in cols:
            values = PK_VALUES if pk and typ.upper() == "INTEGER" else META_VALUES
            for v in values:
                edits.append(f"UPDATE {table} SET {name}={v}")
                edits.append(f"UPDATE {table} SET {name}={v} WHERE rowid=(SELECT min(rowid) FROM {table})")
        edits.append(f"DELETE FROM {table}")
        edits.append(f"DROP TABLE {table}")
    for v in ["-1", "1000000", "2147483647"]:
        edits.append(f"PRAGMA user_version={v}")
    return edits


def gen_meta(rng, fx, rel, index, generated):
    if index < len(META_PRIORITY):
        return [{"op": "sql", "sql": META_PRIORITY[index]}]
    ops = [{"op": "sql", "sql": rng.choice(generated)}]
    if rng.random() < 0.2:
        ops.append({"op": "sql", "sql": rng.choice(generated)})
    return ops


# hostile queries: {DIR} is the bundle's directory (nothing may appear there), {B} the bundle
SQL_PRIORITY = [
    "PRAGMA hard_heap_limit=1",
    "PRAGMA hard_heap_limit=1; SELECT * FROM event",
    "SELECT 1; SELECT 2",
    "SELECT fts3_tokenizer('x')",
    "SELECT zeroblob(500000000)",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r) SELECT count(*) FROM r",
    "ATTACH '{DIR}/attached.db' AS x",
    "ATTACH '{DIR}/attached.db' AS x; CREATE TABLE x.t(a)",
    "DELETE FROM ev",
    "PRAGMA query_only=0; DELETE FROM ev",
]
SQL_OTHERS = [
    "PRAGMA soft_heap_limit=1; SELECT * FROM event",
    "PRAGMA hard_heap_limit=100000; SELECT * FROM event a, event b LIMIT 100000",
    "SELECT 1; DROP VIEW event",
    "SELECT 1;;;",
    ";",
    "-- only a comment",
    "/* unterminated",
    "SELECT '",
    "SELEC 1",
    "SELECT fts3_tokenizer('simple', X'4141414141414141')",
    "SELECT randomblob(1000000000)",
    "SELECT zeroblob(2147483647)",
    "SELECT printf('%.*c', 2147483647, 'x')",
    "SELECT length(printf('%.*c', 100000000, 'x'))",
    "SELECT replace(zeroblob(100000000), X'00', 'abcdefghij')",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r) SELECT x FROM r",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r) SELECT x FROM r ORDER BY x",
    "SELECT count(*) FROM event a, event b, event c, event d",
    "SELECT " + "(" * 3000 + "1" + ")" * 3000,
    "SELECT 1" + " UNION SELECT 1" * 600,
    "SELECT abs(-9223372036854775808)",
    "SELECT 9223372036854775807 + 1, -9223372036854775808 / -1, 1e308 * 10, 0.0 / 0",
    "SELECT X'00FFFE' AS b, char(0) AS nul, CAST(X'C328' AS TEXT) AS bad_utf8, 1e999 AS inf, NULL AS \"\", 'a\"b' AS \"c,d\"",
    "ATTACH 'file:{DIR}/uri.db?mode=rwc' AS y; CREATE TABLE y.t(a)",
    "ATTACH '{B}' AS b; DELETE FROM b.chunk",
    "ATTACH ':memory:' AS m; CREATE TABLE m.t(a); SELECT 1",
    "VACUUM INTO '{DIR}/copy.db'",
    "DETACH main",
    "DROP VIEW event",
    "CREATE TABLE t(a)",
    "CREATE TEMP TABLE t AS SELECT * FROM event",
    "INSERT INTO meta VALUES ('x', 'y')",
    "UPDATE meta SET value='0' WHERE key='complete'",
    "PRAGMA query_only=0; UPDATE meta SET value='0' WHERE key='complete'",
    "PRAGMA writable_schema=1; UPDATE sqlite_schema SET sql='x'",
    "PRAGMA journal_mode=WAL",
    "PRAGMA user_version=5",
    "REINDEX",
    "ANALYZE",
    "VACUUM",
    "PRAGMA optimize",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "SELECT load_extension('/nonexistent/ext')",
    "SELECT readfile('/etc/passwd')",
    "PRAGMA mmap_size=1099511627776; SELECT count(*) FROM event",
    "PRAGMA cache_size=-1000000000; SELECT count(*) FROM event",
    "PRAGMA temp_store_directory='{DIR}'",
    "SELECT * FROM sqlite_schema",
    "PRAGMA integrity_check",
    "EXPLAIN SELECT * FROM packet",
    "SELECT * FROM event ORDER BY randomblob(100000)",
    "SELECT * FROM pragma_function_list",
    "SELECT sqlite_offset(ts) FROM event",
    "BEGIN; SELECT 1",
    "COMMIT",
    "SAVEPOINT a",
]


def gen_sql(rng, fx, rel, index, queries):
    q = queries[index % len(queries)]
    via = "stdin" if rng.random() < 0.25 else "arg"
    if len(q) > 100000:
        via = "stdin"
    return [{"op": "query", "sql": q, "via": via, "format": rng.choice(["table", "csv", "json"])}]


RULE_HEADER = "-- id: {id}\n-- title: fuzz rule\n-- level: WARN\n-- needs: kfree_skb\n"
RULE_SPECIAL = [
    ("no header", "SELECT 1 AS packet_id"),
    ("empty file", ""),
    ("only header", RULE_HEADER.format(id="fuzz-empty")),
    ("binary", "\x00\xff\xfe garbage \x01"),
    ("wrong columns", RULE_HEADER.format(id="fuzz-cols") + "SELECT 1 AS x"),
    ("wrong types", RULE_HEADER.format(id="fuzz-types") +
     "SELECT 'abc' AS packet_id, X'00' AS event_id, 'FATAL' AS level, NULL AS code, NULL AS message, 1e300 AS advice"),
    ("missing packet", RULE_HEADER.format(id="fuzz-missing") +
     "SELECT 99999999 AS packet_id, -1 AS event_id, 'ERROR' AS level, 'x' AS code, 'm' AS message, 'a' AS advice"),
    ("huge message", RULE_HEADER.format(id="fuzz-huge") +
     "SELECT id AS packet_id, last_event AS event_id, 'WARN' AS level, 'x' AS code, printf('%.*c', 1000000, 'm') AS message, 'a' AS advice FROM packet"),
    ("many rows", RULE_HEADER.format(id="fuzz-rows") +
     "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r LIMIT 100000) SELECT NULL AS packet_id, NULL AS event_id, 'INFO' AS level, 'x' AS code, 'm' AS message, 'a' AS advice FROM r"),
    ("replaces builtin with a broken one", RULE_HEADER.format(id="netfilter-drop") + "SELECT FROM"),
    ("bad level", "-- id: fuzz-level\n-- title: t\n-- level: PANIC\n-- needs: nothing-like-this\nSELECT 1 AS packet_id, 1 AS event_id, 'x' AS level, 'c' AS code, 'm' AS message, 'a' AS advice"),
    ("id with slashes", RULE_HEADER.format(id="../../evil") + "SELECT 1 AS packet_id, 1 AS event_id, 'INFO' AS level, 'c' AS code, 'm' AS message, 'a' AS advice"),
    ("duplicate ids", None),
    ("directory named x.sql", None),
    ("symlink loop", None),
    ("non-UTF-8 text", None),
]


def gen_rules(rng, fx, rel, index, queries):
    n = len(RULE_SPECIAL) + len(queries)
    i = index % n
    if i < len(RULE_SPECIAL):
        return [{"op": "rule-special", "name": RULE_SPECIAL[i][0]}]
    return [{"op": "rule", "sql": queries[i - len(RULE_SPECIAL)]}]


class Generator:
    def __init__(self, fx, seed):
        self.fx, self.seed = fx, seed
        grng = random.Random(f"{seed}:lists")
        self.meta = meta_edits(fx)
        grng.shuffle(self.meta)
        others = list(SQL_OTHERS)
        grng.shuffle(others)
        self.queries = SQL_PRIORITY + others

    def recipe(self, kind, index):
        rng = random.Random(f"{self.seed}:{kind}:{index}")
        rel = rng.choice(self.fx.paths)
        base, ops = "fixture", None
        for _ in range(5):
            if kind == "bitflip":
                ops = gen_bitflip(rng, self.fx, rel)
            elif kind == "byteflip":
                ops = gen_byteflip(rng, self.fx, rel)
            elif kind == "record":
                ops = gen_record(rng, self.fx, rel)
            elif kind == "truncate":
                ops = gen_truncate(rng, self.fx, rel)
            elif kind == "wal":
                base, ops = gen_wal(rng, self.fx, rel, index)
            elif kind == "meta":
                ops = gen_meta(rng, self.fx, rel, index, self.meta)
            elif kind == "sql":
                ops = gen_sql(rng, self.fx, rel, index, self.queries)
            elif kind == "rules":
                ops = gen_rules(rng, self.fx, rel, index, self.queries)
            if ops is not None:
                break
            rel = rng.choice(self.fx.paths)
        if kind == "meta" and any("chunk" in op["sql"] for op in ops):
            # edits of chunk rows need several of them (sums, orders): a fixture with more than one
            multi = [p for p in self.fx.paths if len(self.fx.info(p)["chunks"]) > 1]
            if multi and len(self.fx.info(rel)["chunks"]) < 2:
                rel = rng.choice(multi)
        return {"id": f"{kind}-{index:04d}", "kind": kind, "seed": self.seed, "index": index,
                "fixture": rel, "base": base, "ops": ops or []}


# ----------------------------------------------------------------------------------------------
# building a mutant from its recipe

class Templates:
    """Killed-recording copies (main file + -wal) of fixtures, made once per run."""

    def __init__(self, work):
        self.dir = os.path.join(work, "templates")
        os.makedirs(self.dir, exist_ok=True)
        self._lock = threading.Lock()
        self._made = {}

    def killed(self, rel):
        with self._lock:
            if rel not in self._made:
                self._made[rel] = make_killed(os.path.join(ROOT, rel),
                                              os.path.join(self.dir, rel.replace("/", "_") + ".killed.skbt"))
            return self._made[rel]


def make_killed(src, dst):
    """A recording killed with -9: WAL mode, ended_ns NULL, the first half of the chunks checkpointed
    into the main file, the rest committed one transaction each in FILE-wal only."""
    tmp = dst + ".tmp"
    for p in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(p):
            os.remove(p)
    shutil.copyfile(src, tmp)
    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    rows = con.execute("SELECT id, first_ts, last_ts, records, raw_size, codec, data FROM chunk ORDER BY id").fetchall()
    keep = len(rows) // 2
    later = rows[keep:]
    con.execute("BEGIN")
    if later:
        con.execute("DELETE FROM chunk WHERE id >= ?", (later[0][0],))
    con.execute("UPDATE recording SET ended_ns=NULL, stop_reason=NULL")
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for row in later:
        con.execute("BEGIN")
        con.execute("INSERT INTO chunk VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        con.execute("COMMIT")
    # copied while the connection is open: closing would checkpoint and delete the -wal
    shutil.copyfile(tmp, dst)
    shutil.copyfile(tmp + "-wal", dst + "-wal")
    con.close()
    for p in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(p):
            os.remove(p)
    return dst


def make_hot_journal(src, dst):
    """A copy taken in the middle of a write transaction: the main file and its hot -journal."""
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA cache_size=10")
    con.execute("BEGIN")
    con.execute("UPDATE chunk SET data=zeroblob(length(data))")
    con.execute("UPDATE snapshot SET content=upper(content)")
    con.execute("UPDATE probe SET error='x'")
    shutil.copyfile(tmp, dst)
    if os.path.exists(tmp + "-journal"):
        shutil.copyfile(tmp + "-journal", dst + "-journal")
    con.execute("ROLLBACK")
    con.close()
    os.remove(tmp)


def flip_file(path, offset, fn):
    with open(path, "r+b") as f:
        f.seek(0, 2)
        size = f.tell()
        if offset >= size:
            return
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([fn(b) & 0xff]))


def truncate_file(path, length):
    size = os.path.getsize(path)
    if length < 0:
        length = max(0, size + length)
    with open(path, "r+b") as f:
        f.truncate(min(length, size))


def strip_not_null(path):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA writable_schema=ON")
    con.execute("UPDATE sqlite_schema SET sql=replace(sql, 'NOT NULL', '') WHERE type='table'")
    v = con.execute("PRAGMA schema_version").fetchone()[0]
    con.execute(f"PRAGMA schema_version={v + 1}")
    con.execute("PRAGMA writable_schema=OFF")
    con.close()


def apply_meta_sql(path, sql):
    def run():
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA ignore_check_constraints=1")
            con.executescript(sql)
        finally:
            con.close()
    try:
        run()
    except sqlite3.IntegrityError as e:
        if "NOT NULL" not in str(e):
            raise
        strip_not_null(path)
        run()


def apply_record_ops(path, ops):
    by_chunk = {}
    for op in ops:
        by_chunk.setdefault(op["chunk"], []).append(op)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA ignore_check_constraints=1")
    for cid, cops in by_chunk.items():
        row = con.execute("SELECT codec, data, records FROM chunk WHERE id=?", (cid,)).fetchone()
        if not row:
            continue
        codec, data, nrec = row
        raw = chunk_raw(codec, data)
        offs = record_offsets(raw)
        recs = [bytearray(raw[o:(offs[k + 1] if k + 1 < len(offs) else len(raw))]) for k, o in enumerate(offs)]
        count_fix = 0
        for op in cops:
            if op["op"] == "field" and op["record"] < len(recs):
                r = recs[op["record"]]
                off, width = (op["offset"], op["width"]) if "offset" in op else RECORD_FIELDS[op["field"]]
                if off + width <= len(r):
                    r[off:off + width] = (op["value"] % (1 << (8 * width))).to_bytes(width, "little")
        for op in cops:
            j = op.get("record", 0)
            if op["op"] == "dup-record" and j < len(recs):
                recs.insert(j + 1, bytearray(recs[j]))
                count_fix += 1 if op.get("fix_count") else 0
            elif op["op"] == "drop-record" and j < len(recs):
                del recs[j]
                count_fix -= 1 if op.get("fix_count") else 0
        layout, pos = [], 0
        for r in recs:
            layout.append(pos)
            pos += len(r)
        raw = bytearray(b"".join(recs))
        for op in cops:
            if op["op"] == "rawbytes" and op["offset"] < len(raw):
                raw[op["offset"]] = op["value"]
        for op in cops:
            if op["op"] == "truncate-raw":
                raw = raw[:max(0, op["length"])]
            elif op["op"] == "append-raw":
                raw += bytes.fromhex(op["hex"])
        raw = bytes(raw)
        if codec == "none":
            data = raw
        elif codec == "zstd":
            data = zstd_compress(raw)
        else:
            payload = bytearray(split_encode(raw, layout))
            for op in cops:
                if op["op"] == "split-prefix":
                    if op.get("n") is not None:
                        struct.pack_into("<I", payload, 0, op["n"] & 0xffffffff)
                    if op.get("fixed") is not None:
                        struct.pack_into("<I", payload, 4, op["fixed"] & 0xffffffff)
            data = zstd_compress(bytes(payload))
        records = nrec + count_fix
        for op in cops:
            if op["op"] == "chunk-records":
                records = op["value"]
        con.execute("UPDATE chunk SET data=?, raw_size=?, records=? WHERE id=?", (data, len(raw), records, cid))
    con.close()


def build(recipe, mdir, templates):
    """Writes the mutant into mdir/bundle/; returns (bundle path, rules dir or None)."""
    bdir = os.path.join(mdir, "bundle")
    os.makedirs(bdir, exist_ok=True)
    bundle = os.path.join(bdir, "m.skbt")
    src = os.path.join(ROOT, recipe["fixture"])
    if recipe["base"] == "killed":
        k = templates.killed(recipe["fixture"])
        shutil.copyfile(k, bundle)
        shutil.copyfile(k + "-wal", bundle + "-wal")
    else:
        shutil.copyfile(src, bundle)
    rules_dir = None
    record_ops = []
    for op in recipe["ops"]:
        kind = op["op"]
        if kind == "bitflip":
            flip_file(bundle, op["offset"], lambda b, bit=op["bit"]: b ^ (1 << bit))
        elif kind == "byte":
            flip_file(bundle, op["offset"], lambda b, v=op["value"]: v if v != b else b ^ 0xff)
        elif kind == "fill":
            with open(bundle, "r+b") as f:
                size = os.path.getsize(bundle)
                f.seek(min(op["offset"], size))
                f.write(bytes([op["value"]]) * max(0, min(op["length"], size - op["offset"])))
        elif kind == "truncate":
            truncate_file(bundle, op["length"])
        elif kind == "orphan-wal":
            shutil.copyfile(templates.killed(op["fixture"]) + "-wal", bundle + "-wal")
        elif kind == "wal-truncate":
            truncate_file(bundle + "-wal", op["length"])
        elif kind == "wal-flip":
            flip_file(bundle + "-wal", op["offset"], lambda b, bit=op["bit"]: b ^ (1 << bit))
        elif kind == "wal-remove":
            os.remove(bundle + "-wal")
        elif kind == "wal-from":
            shutil.copyfile(templates.killed(op["fixture"]) + "-wal", bundle + "-wal")
        elif kind == "shm-garbage":
            with open(bundle + "-shm", "wb") as f:
                f.write(bytes([op["value"]]) * op["length"])
        elif kind == "hot-journal":
            os.remove(bundle)
            make_hot_journal(src, bundle)
        elif kind == "journal-truncate":
            if os.path.exists(bundle + "-journal"):
                truncate_file(bundle + "-journal", op["length"])
        elif kind == "journal-garbage":
            with open(bundle + "-journal", "wb") as f:
                f.write(random.Random(op["length"]).randbytes(op["length"]))
        elif kind == "sql":
            apply_meta_sql(bundle, op["sql"])
        elif kind in ("field", "rawbytes", "dup-record", "drop-record", "truncate-raw", "append-raw",
                      "split-prefix", "chunk-records"):
            record_ops.append(op)
        elif kind in ("rule", "rule-special"):
            rules_dir = os.path.join(mdir, "rules")
            os.makedirs(rules_dir, exist_ok=True)
            write_rules(rules_dir, op, bundle)
        elif kind == "query":
            pass
        else:
            raise RuntimeError(f"unknown op {kind}")
    if record_ops:
        apply_record_ops(bundle, record_ops)
    return bundle, rules_dir


def write_rules(d, op, bundle):
    def put(name, text):
        with open(os.path.join(d, name), "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
    if op["op"] == "rule":
        put("fuzz.sql", RULE_HEADER.format(id="fuzz-query") + expand(op["sql"], bundle))
        return
    name = op["name"]
    text = dict(RULE_SPECIAL)[name]
    if text is not None:
        put("fuzz.sql", text)
    elif name == "duplicate ids":
        body = "SELECT NULL AS packet_id, NULL AS event_id, 'INFO' AS level, 'c' AS code, 'm' AS message, 'a' AS advice"
        put("a.sql", RULE_HEADER.format(id="fuzz-dup") + body)
        put("b.sql", RULE_HEADER.format(id="fuzz-dup") + body)
    elif name == "directory named x.sql":
        os.makedirs(os.path.join(d, "x.sql"), exist_ok=True)
    elif name == "symlink loop":
        os.symlink(".", os.path.join(d, "loop"))
        os.symlink("missing.sql", os.path.join(d, "dangling.sql"))
    elif name == "non-UTF-8 text":
        put("fuzz.sql", RULE_HEADER.format(id="fuzz-latin1").encode() + b"SELECT '\xe9\xff' AS x")


def expand(sql, bundle):
    return sql.replace("{DIR}", os.path.dirname(bundle)).replace("{B}", bundle)


# ----------------------------------------------------------------------------------------------
# running and classifying

class Runner:
    def __init__(self, binary, timeout, memory_mb, backtrace=True):
        self.binary, self.timeout, self.memory_mb, self.backtrace = binary, timeout, memory_mb, backtrace
        self.live = set()
        self.lock = threading.Lock()

    def run(self, args, env_extra, stdin=None):
        env = dict(os.environ)
        env.update(env_extra)
        # the Swift backtracer costs ~0.5 s per crash and names the crashing function and line
        env["SWIFT_BACKTRACE"] = ("enable=yes,interactive=no,color=no,threads=crashed,registers=none,images=none"
                                  if self.backtrace else "enable=no")
        argv = [self.binary] + args
        if self.memory_mb:
            # a hard address-space limit: a damaged size field must fail, not eat the machine
            argv = ["sh", "-c", f'ulimit -v {self.memory_mb * 1024} && exec "$0" "$@"'] + argv
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        with self.lock:
            self.live.add(p.pid)
        out, err = {"head": b"", "total": 0}, {"head": b"", "total": 0}

        def pump(stream, into):
            while True:
                b = stream.read(65536)
                if not b:
                    break
                if len(into["head"]) < HEAD:
                    into["head"] += b[:HEAD - len(into["head"])]
                into["total"] += len(b)
        threads = [threading.Thread(target=pump, args=(p.stdout, out), daemon=True),
                   threading.Thread(target=pump, args=(p.stderr, err), daemon=True)]
        for t in threads:
            t.start()
        if stdin is not None:
            def feed():
                try:
                    p.stdin.write(stdin)
                    p.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            threading.Thread(target=feed, daemon=True).start()
        timed_out = False
        try:
            rc = p.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)   # our own process group (start_new_session)
            except ProcessLookupError:
                pass
            rc = p.wait()
        for t in threads:
            t.join(timeout=5)
        with self.lock:
            self.live.discard(p.pid)
        return {"rc": rc, "timed_out": timed_out, "seconds": round(time.monotonic() - start, 3),
                "stdout": out["head"], "stdout_bytes": out["total"],
                "stderr": err["head"].decode("utf-8", errors="replace"), "stderr_bytes": err["total"]}

    def kill_all(self):
        with self.lock:
            pids = list(self.live)
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


API_NAMES = [
    (r"Fatal error", "Swift fatal error text"),
    (r"Swift runtime failure", "Swift runtime text"),
    (r"SQLite error \d+", "GRDB's 'SQLite error N'"),
    (r"\bGRDB\b", "GRDB name"),
    (r"DatabaseError", "GRDB type name"),
    (r"\bDatabase(Queue|Pool)?\.\w+", "GRDB API name"),
    (r"\b\w+\((sql|arguments|path|at|from|atPath|contentsOf):", "Swift call syntax"),
    (r"while executing `", "GRDB statement dump"),
    (r"\bsqlite3_\w+", "SQLite C API name"),
    (r"\bSQLITE_[A-Z_]+", "SQLite result code name"),
    (r"Error Domain=|NSCocoaErrorDomain|NSPOSIXErrorDomain|UserInfo=|_NSCocoaError", "Foundation error dump"),
    (r"\b(Foundation|Swift|GRDB|SkbtrailBundle|SkbtrailAnalysis)\.[A-Z]\w*", "Swift type name"),
    (r"Optional\(|\bnil\b", "Swift optional dump"),
    (r"DecodingError|CodingKeys|ValidationError|ExitCode", "Swift error type name"),
    (r"\b[a-z]+[A-Z]\w*\((\"|\w+: )", "Swift enum case dump"),
    (r"<\w+: 0x[0-9a-f]+>", "object dump"),
]
EXTRA_LINES = [r"^Usage: ", r"^\s+See '.*--help' for more information\.$", r"^Help: ", r"^warning: "]


def count_sentences(msg):
    s = re.sub(r'"[^"]*"', '""', msg)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"(?<![A-Za-z])'[^']*'(?![A-Za-z])", "''", s)
    while True:
        t = re.sub(r"\([^()]*\)", "()", s)
        if t == s:
            break
        s = t
    s = re.sub(r"\S*[/\\]\S*", "P", s)                 # paths
    s = re.sub(r"\b(e\.g|i\.e|etc|vs)\.", "X", s)
    s = re.sub(r"\w\.(?=\w)", "W", s)                 # file.ext, 1.5, v1.2
    n = len(re.findall(r"[.!?](?:\s|$)", s))
    if not re.search(r"[.!?]\s*$", s):
        n += 1
    return n


def judge_error(rc, stderr):
    """CLEAN-ERROR or BAD-ERROR with the reason."""
    lines = [l for l in stderr.replace("\r", "\n").splitlines() if l.strip() and not l.startswith("\x1b[K")]
    if rc not in (1, 64):
        return "BAD-ERROR", f"exit status {rc}"
    if not lines:
        return "BAD-ERROR", "no message on stderr"
    first = lines[0]
    if not (first.startswith("error: ") or (rc == 64 and first.startswith("Error: "))):
        return "BAD-ERROR", "stderr does not start with 'error:'"
    for extra in lines[1:]:
        if not any(re.search(p, extra) for p in EXTRA_LINES):
            return "BAD-ERROR", "more than one line on stderr"
    msg = first.split(": ", 1)[1].strip()
    if not msg:
        return "BAD-ERROR", "empty message"
    for pattern, what in API_NAMES:
        if re.search(pattern, msg):
            return "BAD-ERROR", what
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]", msg):
        return "BAD-ERROR", "control characters or invalid UTF-8 in the message"
    if len(msg) > 600:
        return "BAD-ERROR", f"message of {len(msg)} characters"
    n = count_sentences(msg)
    if n > 2:
        return "BAD-ERROR", f"{n} sentences"
    return "CLEAN-ERROR", ""


def classify(res):
    err = res["stderr"]
    if res["timed_out"]:
        return "HANG", f"no exit after {res['seconds']:.0f} s"
    if res["rc"] < 0:
        try:
            name = signal.Signals(-res["rc"]).name
        except ValueError:
            name = f"signal {-res['rc']}"
        return "CRASH", name
    if res["rc"] >= 128:
        return "CRASH", f"exit status {res['rc']}"
    if "Fatal error" in err or "Swift runtime failure" in err or "Program crashed" in err:
        return "CRASH", "Swift runtime error on stderr"
    if res["rc"] == 0:
        return "OK", ""
    return judge_error(res["rc"], err)


def crash_line(stderr):
    for pat in [r"^.*Fatal error.*$", r"^.*Swift runtime failure.*$", r"^.*Program crashed.*$"]:
        m = re.search(pat, stderr, re.M)
        if m:
            return m.group(0).strip()
    return ""


def normalize(text, paths):
    text = text[:2000]
    for p in sorted(paths, key=len, reverse=True):
        if p:
            text = text.replace(p, "B")
    text = re.sub(r"/\S*/bundle/m\.skbt", "B", text)
    text = re.sub(r"/\S*skbtrail-fuzz-\S*", "P", text)
    text = re.sub(r", row: \[.*$", "", text)                       # GRDB's row dump
    text = re.sub(r"UserInfo=\{.*$", "UserInfo={…}", text)           # NSError dump (its keys come in any order)
    text = re.sub(r'column: "([^"]*)"', r"column: \1", text)
    text = re.sub(r'"[^"]*("|$)', '"…"', text)
    text = re.sub(r"`[^`]*(`|$)", "`…`", text)
    text = re.sub(r"0x[0-9a-fA-F]+", "0xN", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
    text = re.sub(r"\.swift:(\d+)", r".swift#\1", text)              # keep File.swift:123
    text = re.sub(r"(?<![\w.#])-?\d+\.\d+(e[+-]?\d+)?(?![\w])", "N", text)  # 9.2e+18
    text = re.sub(r"(?<![\w.#])-?\d+(?![\w])", "N", text)
    text = text.replace(".swift#", ".swift:")
    return text.strip()


def signature(cls, reason, res, recipe, args, paths):
    verb = args[0]
    if cls == "CRASH":
        line = crash_line(res["stderr"])
        if line.startswith("*** Program crashed"):
            line = ""
        frames = backtrace_frames(res["stderr"])
        where = next((f for f in frames if re.search(r"\.swift:\d+$", f)), frames[0] if frames else "")
        where = f" in {where}" if where else ""
        return f"CRASH: {normalize(line, paths)[:300] + where if line else reason + where}"
    if cls == "HANG":
        return f"HANG: {verb} on {kind_family(recipe)}"
    if cls == "UNSAFE":
        return f"UNSAFE: {reason} ({kind_family(recipe)})"
    first = next((l for l in res["stderr"].splitlines() if l.strip()), "")
    return f"BAD-ERROR ({reason}): {normalize(first, paths)[:300]}"


def kind_family(recipe):
    kind = recipe["kind"]
    ops = recipe["ops"]
    if kind in ("sql", "rules") and ops:
        op = ops[0]
        text = op.get("sql") or op.get("name", "")
        return f"{kind} {normalize(text, [])[:120]}"
    if kind == "meta" and ops:
        return f"meta {normalize(ops[0]['sql'], [])[:120]}"
    return f"{kind} {'+'.join(sorted({o['op'] for o in ops})) or 'intact'}"


def describe(recipe):
    """The recipe in words, for the report."""
    parts = []
    for op in recipe["ops"]:
        k = op["op"]
        if k == "bitflip":
            parts.append(f"flip bit {op['bit']} of byte {op['offset']} ({op['region']})")
        elif k == "byte":
            parts.append(f"set byte {op['offset']} to 0x{op['value']:02x}")
        elif k == "fill":
            parts.append(f"set {op['length']} bytes at {op['offset']} to 0x{op['value']:02x}")
        elif k == "truncate":
            parts.append(f"truncate the file to {op['length']} bytes")
        elif k == "orphan-wal":
            parts.append(f"put the -wal of a killed recording of {op['fixture']} beside it")
        elif k == "wal-truncate":
            parts.append(f"truncate the -wal to {op['length']} bytes")
        elif k == "wal-flip":
            parts.append(f"flip bit {op['bit']} of -wal byte {op['offset']} ({op['region']})")
        elif k == "wal-remove":
            parts.append("remove the -wal")
        elif k == "wal-from":
            parts.append(f"replace the -wal by the one of a killed recording of {op['fixture']}")
        elif k == "shm-garbage":
            parts.append(f"a -shm of {op['length']} bytes 0x{op['value']:02x}")
        elif k == "hot-journal":
            parts.append("copied mid-transaction with its hot -journal")
        elif k == "journal-truncate":
            parts.append(f"the -journal truncated to {op['length']} bytes")
        elif k == "journal-garbage":
            parts.append(f"a -journal of {op['length']} random bytes")
        elif k == "sql":
            parts.append(f"sqlite3 FILE \"PRAGMA ignore_check_constraints=1; {op['sql']}\"")
        elif k == "field":
            parts.append(f"chunk {op['chunk']} record {op['record']}: {op['field']} := {op['value']}")
        elif k == "rawbytes":
            parts.append(f"chunk {op['chunk']}: raw byte {op['offset']} := 0x{op['value']:02x}")
        elif k in ("dup-record", "drop-record"):
            parts.append(f"chunk {op['chunk']}: {k.split('-')[0]} record {op['record']}"
                         f"{' (chunk.records adjusted)' if op.get('fix_count') else ''}")
        elif k == "truncate-raw":
            parts.append(f"chunk {op['chunk']}: raw records cut to {op['length']} bytes (raw_size adjusted)")
        elif k == "append-raw":
            parts.append(f"chunk {op['chunk']}: bytes {op['hex'][:24]}{'…' if len(op['hex']) > 24 else ''} appended (raw_size adjusted)")
        elif k == "split-prefix":
            parts.append(f"chunk {op['chunk']}: zstd-split prefix n={op.get('n')} fixed={op.get('fixed')}")
        elif k == "chunk-records":
            parts.append(f"chunk {op['chunk']}: records := {op['value']}")
        elif k == "query":
            q = op["sql"]
            parts.append(f"query ({op['via']}, {op['format']}): {q if len(q) < 160 else q[:150] + '…'}")
        elif k == "rule":
            q = op["sql"]
            parts.append(f"rule file: {q if len(q) < 160 else q[:150] + '…'}")
        elif k == "rule-special":
            parts.append(f"rule directory: {op['name']}")
    base = "killed recording (WAL) of " if recipe["base"] == "killed" else ""
    return f"{base}{recipe['fixture']}: " + ("; ".join(parts) or "unchanged")


# The analyzer's own limit for user SQL (--timeout of sql, diag and rules): a quarter of the harness's
# timeout, so an endless query must be stopped by the analyzer, with a sentence, before it counts as a HANG.
QUERY_LIMIT = ["--timeout", "5s"]


def commands_for(recipe, bundle, rules_dir):
    """[(args, stdin, check)] for a mutant; check: None, 'count', 'unchanged'."""
    kind = recipe["kind"]
    if kind == "sql":
        op = recipe["ops"][0]
        q = expand(op["sql"], bundle)
        fmt = ["--format", op["format"]] if op["format"] != "table" else []
        if op["via"] == "stdin":
            first = (["sql"] + QUERY_LIMIT + fmt + ["{B}"], q.encode("utf-8", errors="surrogateescape"), None)
        else:
            first = (["sql"] + QUERY_LIMIT + fmt + ["{B}", q], None, None)
        return [first,
                (["sql", "--no-cache"] + QUERY_LIMIT + ["--format", "json", "{B}", q] if len(q) < 100000 else
                 ["sql", "--no-cache"] + QUERY_LIMIT + ["--format", "json", "{B}"], None if len(q) < 100000 else q.encode(), None),
                (["sql", "{B}", COUNT_QUERY], None, "count"),
                (["info", "{B}"], None, "unchanged")]
    if kind == "rules":
        return [(["diag"] + QUERY_LIMIT + ["--rules", rules_dir, "{B}"], None, None),
                (["diag"] + QUERY_LIMIT + ["--rules", rules_dir, "--format", "json", "--no-cache", "{B}"], None, None),
                (["rules"] + QUERY_LIMIT + ["--rules", rules_dir, "{B}"], None, None),
                (["rules", "--rules", rules_dir], None, None),
                (["sql", "{B}", COUNT_QUERY], None, "count"),
                (["sql", "{B}", "SELECT count(*) FROM finding"], None, "unchanged")]
    return [(c, None, None) for c in FILE_COMMANDS]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def listing(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


class Fuzzer:
    def __init__(self, args, runner, fx, work):
        self.args, self.runner, self.fx, self.work = args, runner, fx, work
        self.templates = Templates(work)
        self.baseline = {}
        self.baseline_lock = threading.Lock()
        self.deadline = None
        self.tmp_leftovers = {}   # what OK/CLEAN-ERROR runs left in TMPDIR -> count
        self.clean_errors = {}    # (kind, normalized message) -> count

    def baseline_count(self, rel):
        """stdout of `sql FIXTURE "SELECT count(*) FROM event"` on the intact fixture."""
        with self.baseline_lock:
            if rel not in self.baseline:
                d = tempfile.mkdtemp(dir=self.work, prefix="baseline-")
                res = self.runner.run(["sql", os.path.join(ROOT, rel), COUNT_QUERY],
                                      {"SKBTRAIL_CACHE_DIR": os.path.join(d, "cache"), "TMPDIR": d})
                self.baseline[rel] = res["stdout"] if res["rc"] == 0 else None
                shutil.rmtree(d, ignore_errors=True)
            return self.baseline[rel]

    def run_mutant(self, recipe, only=None):
        """Builds the mutant and runs its commands. Returns (results, mdir)."""
        mdir = tempfile.mkdtemp(dir=self.work, prefix=recipe["id"] + "-")
        try:
            bundle, rules_dir = build(recipe, mdir, self.templates)
        except Exception as e:  # a recipe that cannot be applied (e.g. a constraint SQLite enforces)
            return {"skipped": f"mutant not buildable: {type(e).__name__}: {e}"}, mdir
        tmpdir = os.path.join(mdir, "tmp")
        cache = os.path.join(mdir, "cache")
        os.makedirs(tmpdir, exist_ok=True)
        bdir = os.path.dirname(bundle)
        before_files = listing(bdir)
        before_hash = sha256(bundle) if recipe["kind"] in ("sql", "rules") else None
        results, hangs = [], 0
        cmds = commands_for(recipe, bundle, rules_dir)
        if only is not None:
            cmds = [cmds[i] for i in only if i < len(cmds)]
        for i, (template, stdin, check) in enumerate(cmds):
            # {O}: a file the command writes (slice, redact), beside the mutant's own directory
            args = [bundle if a == "{B}" else os.path.join(mdir, "out.skbt") if a == "{O}" else a for a in template]
            if hangs >= 2 or (self.deadline and time.monotonic() > self.deadline):
                results.append({"args": args, "class": "SKIPPED", "reason": "after 2 hangs" if hangs >= 2 else "deadline"})
                continue
            res = self.runner.run(args, {"SKBTRAIL_CACHE_DIR": cache, "TMPDIR": tmpdir}, stdin=stdin)
            cls, reason = classify(res)
            if cls == "HANG":
                # a query or rule that hangs hangs every command after it: one is enough
                hangs += 2 if recipe["kind"] in ("sql", "rules") else 1
            if cls in ("OK", "CLEAN-ERROR") and recipe["kind"] in ("sql", "rules"):
                unsafe = []
                if sha256(bundle) != before_hash:
                    unsafe.append("the bundle changed")
                new = sorted(set(listing(bdir)) - set(before_files))
                if new:
                    unsafe.append(f"files appeared beside the bundle: {', '.join(new)}")
                if check == "count":
                    base = self.baseline_count(recipe["fixture"])
                    if base is not None and (res["rc"] != 0 or res["stdout"] != base):
                        unsafe.append("the analysis answers differently after the query or rules")
                if check == "unchanged" and res["rc"] != 0:
                    unsafe.append("the analysis no longer opens after the query or rules")
                if unsafe:
                    cls, reason = "UNSAFE", "; ".join(unsafe)
                    before_files = listing(bdir)
                    before_hash = sha256(bundle)
            left = listing(tmpdir)
            if left:
                if cls in ("OK", "CLEAN-ERROR"):   # a crash cannot clean up
                    with self.baseline_lock:
                        key = f"{cls} {' '.join(args[:1])}: {normalize(' '.join(left[:3]), [])}"
                        self.tmp_leftovers[key] = self.tmp_leftovers.get(key, 0) + 1
                for name in left:
                    p = os.path.join(tmpdir, name)
                    shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
            if cls == "CLEAN-ERROR":
                first = next((l for l in res["stderr"].splitlines() if l.strip()), "")
                with self.baseline_lock:
                    key = (recipe["kind"], normalize(first, [bundle, rules_dir or ""])[:240])
                    self.clean_errors[key] = self.clean_errors.get(key, 0) + 1
            res.update({"args": args, "class": cls, "reason": reason, "index": i,
                        "stdin": stdin.decode("utf-8", errors="replace")[:300] if stdin else None})
            results.append(res)
        return {"results": results, "bundle": bundle, "rules_dir": rules_dir}, mdir


# ----------------------------------------------------------------------------------------------
# the fuzz run

def pretty_args(args, bundle, rules_dir):
    out = []
    for a in args:
        if bundle:
            a = a.replace(bundle, "B.skbt").replace(os.path.dirname(bundle), "DIR")
        if rules_dir:
            a = a.replace(rules_dir, "RULES")
        out.append(a if len(a) < 200 else a[:190] + "…")
    return "skbtrail " + " ".join(shlex.quote(a) for a in out)


def fuzz(args, runner, fx):
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "mutants"))
    work = tempfile.mkdtemp(prefix="skbtrail-fuzz-", dir=args.work)
    fz = Fuzzer(args, runner, fx, work)
    gen = Generator(fx, args.seed)
    kinds = args.kinds
    start = time.monotonic()
    fz.deadline = start + args.budget + max(2 * args.timeout, 30)
    table = {k: {c: 0 for c in CLASSES + ["SKIPPED"]} for k in kinds}
    mutants = {k: 0 for k in kinds}
    unbuildable = {k: 0 for k in kinds}
    sigs = {}           # signature -> list of instances
    failures_log = open(os.path.join(out, "failures.jsonl"), "w")
    order = [(k, i) for i in range(args.count) for k in kinds]   # round robin: a cut keeps kinds even
    pending = {}
    done_commands = 0
    last_progress = start
    pos = 0
    stop = False

    def submit(pool):
        nonlocal pos
        while pos < len(order) and len(pending) < args.workers * 2:
            if time.monotonic() - start > args.budget:
                return
            kind, index = order[pos]
            pos += 1
            recipe = gen.recipe(kind, index)
            pending[pool.submit(fz.run_mutant, recipe)] = recipe

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        try:
            submit(pool)
            while pending:
                finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in finished:
                    recipe = pending.pop(fut)
                    outcome, mdir = fut.result()
                    kind = recipe["kind"]
                    if "skipped" in outcome:
                        unbuildable[kind] += 1
                        shutil.rmtree(mdir, ignore_errors=True)
                        continue
                    mutants[kind] += 1
                    failed = []
                    for res in outcome["results"]:
                        table[kind][res["class"]] += 1
                        done_commands += res["class"] != "SKIPPED"
                        if res["class"] in FAILING:
                            failed.append(res)
                    if failed:
                        keep = os.path.join(out, "mutants", recipe["id"])
                        shutil.copytree(os.path.join(mdir, "bundle"), os.path.join(keep, "bundle"))
                        if outcome["rules_dir"]:
                            shutil.copytree(outcome["rules_dir"], os.path.join(keep, "rules"), symlinks=True)
                        with open(os.path.join(keep, "recipe.json"), "w") as f:
                            json.dump(recipe, f, indent=1)
                        lines = [describe(recipe), ""]
                        for res in failed:
                            paths = [outcome["bundle"], outcome["rules_dir"] or ""]
                            sig = signature(res["class"], res["reason"], res, recipe, res["args"], paths)
                            inst = {"mutant": recipe["id"], "kind": kind, "recipe": recipe, "class": res["class"],
                                    "reason": res["reason"], "args": res["args"], "index": res["index"],
                                    "command": pretty_args(res["args"], outcome["bundle"], outcome["rules_dir"]),
                                    "rc": res["rc"], "seconds": res["seconds"], "signature": sig,
                                    "stdin": res.get("stdin"),
                                    "stderr_head": res["stderr"][:2000], "stdout_bytes": res["stdout_bytes"]}
                            sigs.setdefault(sig, []).append(inst)
                            failures_log.write(json.dumps(inst) + "\n")
                            lines += [f"{res['class']} ({res['reason']}): {inst['command']}  exit {res['rc']}",
                                      "  " + res["stderr"][:1000].replace("\n", "\n  "), ""]
                            print(f"  {res['class']:9} {recipe['id']}  {inst['command'][:100]}  "
                                  f"{(crash_line(res['stderr']) or res['stderr'].strip().splitlines()[0] if res['stderr'].strip() else res['reason'])[:120]}",
                                  flush=True)
                        with open(os.path.join(keep, "failures.txt"), "w") as f:
                            f.write("\n".join(lines))
                    shutil.rmtree(mdir, ignore_errors=True)
                now = time.monotonic()
                if now - last_progress > 15:
                    last_progress = now
                    print(f"[{now - start:5.0f} s] {sum(mutants.values())} mutants, {done_commands} commands, "
                          f"{sum(len(v) for v in sigs.values())} failing runs, {len(sigs)} signatures", flush=True)
                if not stop:
                    submit(pool)
        except KeyboardInterrupt:
            stop = True
            runner.kill_all()
            for fut in pending:
                fut.cancel()
            raise
    failures_log.close()
    elapsed = time.monotonic() - start

    repro = minimize(args, fz, sigs, out)
    text = summary_text(args, kinds, table, mutants, unbuildable, sigs, repro, elapsed, fz.tmp_leftovers)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "clean-errors.txt"), "w") as f:
        f.write("CLEAN-ERROR messages per kind (how far the damage got):\n")
        for (kind, msg), n in sorted(fz.clean_errors.items(), key=lambda kv: (kv[0][0], -kv[1])):
            f.write(f"{kind:9} {n:5d}  {msg}\n")
    with open(os.path.join(out, "signatures.json"), "w") as f:
        json.dump([{"signature": s, "count": len(v), "commands": sorted({i["args"][0] for i in v}),
                    "reproducer": repro.get(s)} for s, v in sigs.items()], f, indent=1, default=str)
    print(text)
    print(f"report: {out}")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if sigs else 0


def minimize(args, fz, sigs, out):
    """For each signature: its simplest instance, checked to reproduce alone with a fresh cache, with
    ops removed while the signature stays; crashes re-run with a backtrace."""
    repro = {}
    start = time.monotonic()
    fz.deadline = None
    for n, (sig, insts) in enumerate(sorted(sigs.items(), key=lambda kv: kv[0]), 1):
        inst = min(insts, key=lambda i: (len(i["recipe"]["ops"]), len(json.dumps(i["recipe"])), i["mutant"]))
        recipe = inst["recipe"]
        info = {"mutant": inst["mutant"], "recipe": recipe, "description": describe(recipe),
                "command": inst["command"], "standalone": None, "stderr_head": inst["stderr_head"],
                "rc": inst["rc"], "class": inst["class"]}
        if time.monotonic() - start < args.minimize_budget and inst["class"] not in ("HANG", "UNSAFE"):
            def same(r):
                outcome, mdir = fz.run_mutant(r, only=[inst["index"]])
                ok = False
                res = None
                if "results" in outcome and outcome["results"]:
                    res = outcome["results"][0]
                    if res["class"] == inst["class"]:
                        s = signature(res["class"], res["reason"], res, r, res["args"],
                                      [outcome["bundle"], outcome["rules_dir"] or ""])
                        ok = s == sig
                shutil.rmtree(mdir, ignore_errors=True)
                return ok, res
            ok, res = same(recipe)
            info["standalone"] = ok
            if ok:
                ops = list(recipe["ops"])
                i = 0
                while len(ops) > 1 and i < len(ops) and time.monotonic() - start < args.minimize_budget:
                    trial = dict(recipe, ops=ops[:i] + ops[i + 1:])
                    if same(trial)[0]:
                        ops = trial["ops"]
                    else:
                        i += 1
                recipe = dict(recipe, ops=ops)
                info["recipe"], info["description"] = recipe, describe(recipe)
        # keep the reproducer's files (and, for crashes, a backtrace)
        rdir = os.path.join(out, "repro", f"{n:02d}")
        outcome, mdir = fz.run_mutant(recipe, only=[inst["index"]])
        if "results" in outcome and outcome["results"]:
            res = outcome["results"][0]
            shutil.copytree(os.path.join(mdir, "bundle"), os.path.join(rdir, "bundle"))
            if outcome["rules_dir"]:
                shutil.copytree(outcome["rules_dir"], os.path.join(rdir, "rules"), symlinks=True)
            if inst["class"] == "CRASH":
                info["frames"] = backtrace_frames(res["stderr"])[1:]
            with open(os.path.join(rdir, "recipe.json"), "w") as f:
                json.dump(recipe, f, indent=1)
            with open(os.path.join(rdir, "README.txt"), "w") as f:
                f.write(f"{sig}\n\nmutant: {info['description']}\n"
                        f"command (SKBTRAIL_CACHE_DIR=$(mktemp -d), from this directory): "
                        f"{inst['command'].replace('B.skbt', 'bundle/m.skbt').replace('RULES', 'rules')}\n"
                        f"reproduces alone with a fresh cache: {info['standalone']}\n\n"
                        f"exit {res['rc']}, stderr:\n{res['stderr'][:8000]}\n")
            info["dir"] = rdir
        shutil.rmtree(mdir, ignore_errors=True)
        repro[sig] = info
    return repro


def backtrace_frames(stderr):
    """'function at File.swift:line' of the crashed thread's frames in skbtrail's own sources."""
    frames = []
    for line in stderr.splitlines():
        m = re.match(r"^\s*\d+\s+(?:\[[^\]]*\]\s*)*0x[0-9a-fA-F]+\s+(.*?)(?:\s+\+\s+\d+)?\s+in\s+\S+"
                     r"(?:\s+at\s+(\S+))?\s*$", line)
        if m and m.group(2) and "/Sources/" in m.group(2):
            where = re.sub(r"^.*/Sources/", "", m.group(2))
            where = re.sub(r"(\.swift:\d+):\d+$", r"\1", where)
            frames.append(f"{m.group(1)} at {where}")
        if len(frames) >= 6:
            break
    return frames


def summary_text(args, kinds, table, mutants, unbuildable, sigs, repro, elapsed, leftovers):
    cols = CLASSES + ["SKIPPED"]
    lines = [f"skbtrail fuzz: seed {args.seed}, {sum(mutants.values())} mutants in {elapsed:.0f} s, "
             f"timeout {args.timeout:g} s, {args.skbtrail}", ""]
    w = max(len(k) for k in kinds + ["total"])
    lines.append(f"{'kind':<{w}}  {'mutants':>7}  " + "  ".join(f"{c:>11}" for c in cols))
    for k in kinds:
        lines.append(f"{k:<{w}}  {mutants[k]:>7}  " + "  ".join(f"{table[k][c]:>11}" for c in cols)
                     + (f"   ({unbuildable[k]} recipes not applicable)" if unbuildable[k] else ""))
    lines.append(f"{'total':<{w}}  {sum(mutants.values()):>7}  " +
                 "  ".join(f"{sum(table[k][c] for k in kinds):>11}" for c in cols))
    if leftovers:
        lines.append(f"\nnote: {sum(leftovers.values())} runs that exited normally left files in their TMPDIR:")
        for key, n in sorted(leftovers.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {n:4d} x {key}")
    lines.append("")
    if not sigs:
        lines.append("no CRASH, HANG, BAD-ERROR or UNSAFE")
        return "\n".join(lines) + "\n"
    lines.append(f"{len(sigs)} distinct failure signatures:")
    for n, (sig, insts) in enumerate(sorted(sigs.items(), key=lambda kv: kv[0]), 1):
        r = repro.get(sig, {})
        kinds_hit = sorted({i["kind"] for i in insts})
        verbs = sorted({i["args"][0] for i in insts})
        lines.append(f"\n{n:2d}. {sig}")
        lines.append(f"    {len(insts)} runs; kinds {', '.join(kinds_hit)}; commands {', '.join(verbs)}")
        lines.append(f"    mutant:  {r.get('description', '')}")
        lines.append(f"    command: {r.get('command', '')}")
        if r.get("standalone") is not None:
            lines.append(f"    reproduces alone with a fresh cache: {'yes' if r['standalone'] else 'no (needs the cache of earlier commands, or flaky)'}")
        noise = ("*** Signal", "swift-runtime:", "Platform:", "Thread ", "*** Program crashed", "Current stack trace", "...",
                 "Backtrace took")
        head = [l for l in (r.get("stderr_head") or "").splitlines()
                if l.strip() and not l.lstrip().startswith(noise) and not re.match(r"^\s*\d+\s+[\[0]", l)][:2]
        for l in head:
            lines.append(f"    stderr:  {l[:300]}")
        for fr in r.get("frames", [])[:4]:
            lines.append(f"    at {fr}")
        if r.get("dir"):
            lines.append(f"    files:   {r['dir']}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# concurrency check

def concurrency(args, runner):
    fixture = os.path.join(ROOT, args.fixture) if not os.path.isabs(args.fixture) else args.fixture
    cmd = shlex.split(args.concurrency_cmd)
    work = tempfile.mkdtemp(prefix="skbtrail-fuzz-conc-", dir=args.work)
    try:
        ref = runner.run(cmd + [fixture], {"SKBTRAIL_CACHE_DIR": os.path.join(work, "ref"), "TMPDIR": work})
        if ref["rc"] != 0:
            fail(f"`skbtrail {' '.join(cmd)} {fixture}` fails alone: {ref['stderr'].strip()[:300]}")
        counts = {}
        messages = {}
        examples = {}
        bad_repeats = 0
        leftovers = 0
        for r in range(args.repeat):
            cache = os.path.join(work, f"cache-{r}")
            results = [None] * args.concurrency
            threads = []
            barrier = threading.Barrier(args.concurrency)

            def one(i):
                barrier.wait()
                results[i] = runner.run(cmd + [fixture], {"SKBTRAIL_CACHE_DIR": cache, "TMPDIR": work})
            for i in range(args.concurrency):
                t = threading.Thread(target=one, args=(i,))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            any_bad = False
            for res in results:
                cls, reason = classify(res)
                if cls == "OK" and res["stdout"] != ref["stdout"]:
                    cls, reason = "WRONG-OUTPUT", "stdout differs from a run alone"
                if cls != "OK":
                    any_bad = True
                    first = crash_line(res["stderr"]) or next((l for l in res["stderr"].splitlines() if l.strip()), reason)
                    key = f"{cls}: {normalize(first, [fixture, cache])[:300]}"
                    messages[key] = messages.get(key, 0) + 1
                    examples.setdefault(key, first.replace(cache, "CACHE")[:400])
                counts[cls] = counts.get(cls, 0) + 1
            # the cache keeps analyses (.skba), findings (.skbf) and their lock files; a half-written
            # file (.partial-PID) or anything else is left over
            extra = [n for n in listing(cache) if not n.endswith((".skba", ".skbf", ".lock"))]
            if extra:
                leftovers += 1
                any_bad = True
                key = f"LEFTOVER: files left in the cache directory: {normalize(' '.join(extra), [])[:200]}"
                messages[key] = messages.get(key, 0) + 1
            bad_repeats += any_bad
            shutil.rmtree(cache, ignore_errors=True)
        total = args.concurrency * args.repeat
        print(f"concurrency: {args.concurrency} x `skbtrail {' '.join(cmd)} {os.path.relpath(fixture, ROOT)}` "
              f"on one fresh cache dir, {args.repeat} times: {total} runs")
        for cls in ["OK", "CLEAN-ERROR", "WRONG-OUTPUT", "CRASH", "HANG", "BAD-ERROR"]:
            if counts.get(cls):
                print(f"  {cls:13} {counts[cls]}")
        print(f"  repeats with a failure: {bad_repeats} of {args.repeat}")
        for key, n in sorted(messages.items(), key=lambda kv: -kv[1]):
            print(f"  {n:5d} x {key}")
            if key in examples and examples[key] != key:
                print(f"          e.g. {examples[key]}")
        return 1 if bad_repeats else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------------

def replay(args, runner, fx):
    with open(args.replay) as f:
        recipe = json.load(f)
    work = tempfile.mkdtemp(prefix="skbtrail-fuzz-replay-", dir=args.work)
    try:
        fz = Fuzzer(args, runner, fx, work)
        print(describe(recipe))
        outcome, mdir = fz.run_mutant(recipe)
        if "skipped" in outcome:
            fail(outcome["skipped"])
        bad = 0
        for res in outcome["results"]:
            bad += res["class"] in FAILING
            first = next((l for l in res.get("stderr", "").splitlines() if l.strip()), "")
            print(f"{res['class']:11} exit {res.get('rc')!s:4} {pretty_args(res['args'], outcome['bundle'], outcome['rules_dir'])[:110]}"
                  f"  {first[:160]}")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def self_check(fx):
    """The codec helpers give back what the recorder wrote (else every record mutant is meaningless)."""
    rel = fx.paths[0]
    con = sqlite3.connect(f"file:{os.path.join(ROOT, rel)}?mode=ro", uri=True)
    for codec, data in con.execute("SELECT codec, data FROM chunk ORDER BY id LIMIT 3"):
        if codec == "zstd-split":
            payload = zstd_decompress(data)
            raw = split_join(payload)
            if split_encode(raw, record_offsets(raw)) != payload:
                fail(f"self-check: zstd-split re-encoding of {rel} differs from the recorder's")
            if zstd_decompress(zstd_compress(payload)) != payload:
                fail("self-check: zstd round trip failed")
    con.close()
    page = fx.info(rel)["page_size"]
    if page != PAGE:
        fail(f"self-check: {rel} has page size {page}, the harness assumes {PAGE}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=60, help="mutants per kind (default 60; --budget usually stops first)")
    ap.add_argument("--budget", type=float, default=150, help="seconds after which no new mutant is started (default 150)")
    ap.add_argument("--timeout", type=float, default=20, help="seconds per command before it is a HANG (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="mutants run in parallel (default 2)")
    ap.add_argument("--out", default=os.path.join(ROOT, ".build", "fuzz-bundles"), help="report directory (replaced)")
    ap.add_argument("--skbtrail", help="the analyzer (default .build/debug/skbtrail, then .build/release/skbtrail)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--fixtures", default="fixtures/**/*.skbt", help="glob below the repository (default fixtures/**/*.skbt)")
    ap.add_argument("--memory-limit", type=int, default=4096, help="MiB of address space per command (0: none)")
    ap.add_argument("--minimize-budget", type=float, default=40, help="seconds for minimizing reproducers")
    ap.add_argument("--work", default=None, help="directory for temporary mutants (default: system temp)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary mutants")
    ap.add_argument("--replay", help="a recipe.json: rebuild that mutant and run its commands")
    ap.add_argument("--concurrency", type=int, help="concurrency check: N concurrent runs on one shared fresh cache")
    ap.add_argument("--repeat", type=int, default=10, help="concurrency check: how many times (default 10)")
    ap.add_argument("--fixture", default="fixtures/nat-router.skbt", help="concurrency check: the bundle")
    ap.add_argument("--concurrency-cmd", default="diag", help="concurrency check: the command (default diag)")
    args = ap.parse_args()

    if args.skbtrail is None:
        for cand in [".build/debug/skbtrail", ".build/release/skbtrail"]:
            if os.access(os.path.join(ROOT, cand), os.X_OK):
                args.skbtrail = os.path.join(ROOT, cand)
                break
        else:
            fail("no analyzer: build it (swift build) or give --skbtrail PATH")
    args.skbtrail = os.path.abspath(args.skbtrail)
    if not os.access(args.skbtrail, os.X_OK):
        fail(f"{args.skbtrail} is not an executable")
    QUERY_LIMIT[1] = f"{max(1.0, args.timeout / 4):g}s"
    # run a copy: a rebuild during the run would otherwise make every command fail with "Text file busy"
    bindir = tempfile.mkdtemp(prefix="skbtrail-fuzz-bin-")
    shutil.copy2(args.skbtrail, os.path.join(bindir, "skbtrail"))
    runner = Runner(os.path.join(bindir, "skbtrail"), args.timeout, args.memory_limit)

    def on_term(signum, frame):
        runner.kill_all()
        sys.exit(130)
    signal.signal(signal.SIGTERM, on_term)

    try:
        if args.concurrency:
            return concurrency(args, runner)
        zstd_bin()
        paths = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, args.fixtures), recursive=True))
        if not paths:
            fail(f"no fixtures match {args.fixtures}")
        fx = Fixtures(paths)
        if args.replay:
            return replay(args, runner, fx)
        args.kinds = [k for k in args.kinds.split(",") if k]
        unknown = [k for k in args.kinds if k not in KINDS]
        if unknown:
            fail(f"unknown kind {', '.join(unknown)}: choose from {', '.join(KINDS)}")
        self_check(fx)
        return fuzz(args, runner, fx)
    except KeyboardInterrupt:
        runner.kill_all()
        return 130
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
