#!/usr/bin/env python3
"""Builds a large bundle for analyzer benchmarks by replaying a real recording's records.

    bench/replay.py SOURCE.skbt OUTPUT.skbt EVENTS

Copies SOURCE's metadata and appends its chunks again and again until OUTPUT holds at least EVENTS
records. Each copy shifts every record's time past the previous copy and gives its skb and head
addresses a distinct high byte, so packets of different copies never merge: the structure (paths,
clones, NAT, drops) is the real one, repeated. Needs python3-zstandard and python3-numpy. The copies are written with the plain `zstd` codec.
"""
import os
import shutil
import sqlite3
import struct
import sys

import numpy
import zstandard

EVENT_SIZE = 192  # struct st_event
TS, SKB, HEAD = 8, 16, 24


def raw_records(dctx, codec, data, raw_size):
    """The raw records of a chunk, whatever its codec (docs/bundle-format.md)."""
    if codec == "none":
        return bytes(data)
    if codec == "zstd":
        return dctx.decompress(data, max_output_size=raw_size)
    if codec != "zstd-split":
        sys.exit(f"unknown chunk codec {codec}")
    payload = dctx.decompress(data, max_output_size=raw_size + 8)
    n, fixed = struct.unpack_from("<II", payload, 0)
    planes = payload[8:8 + n * fixed]
    headers = numpy.frombuffer(planes, dtype=numpy.uint8).reshape(fixed, n).T.tobytes()
    out = bytearray()
    tail = 8 + n * fixed
    for j in range(n):
        header = headers[j * fixed:(j + 1) * fixed]
        size = struct.unpack_from("<H", header, 2)[0]
        out += header
        out += payload[tail:tail + size - fixed]
        tail += size - fixed
    return bytes(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, output, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if os.path.exists(output):
        os.remove(output)
    shutil.copyfile(source, output)
    db = sqlite3.connect(output)
    chunks = db.execute("SELECT first_ts, last_ts, records, raw_size, codec, data FROM chunk ORDER BY id").fetchall()
    if not chunks:
        sys.exit(f"{source} has no chunks to replay")
    per_copy = sum(c[2] for c in chunks)
    span = max(c[1] for c in chunks) - min(c[0] for c in chunks) + 1_000_000
    dctx, cctx = zstandard.ZstdDecompressor(), zstandard.ZstdCompressor(level=1)
    raws = [raw_records(dctx, codec, data, raw_size) for (_, _, _, raw_size, codec, data) in chunks]
    total, copy = per_copy, 1
    db.execute("BEGIN")
    while total < wanted:
        shift_ts, shift_addr = copy * span, (copy & 0xFF) << 40
        for (first, last, records, raw_size, _, _), raw in zip(chunks, raws):
            buf = bytearray(raw)
            off = 0
            while off + EVENT_SIZE <= len(buf):
                size = struct.unpack_from("<H", buf, off + 2)[0]
                if size < 8:
                    break
                ts, skb, head = struct.unpack_from("<QQQ", buf, off + TS)
                struct.pack_into("<QQQ", buf, off + TS, ts + shift_ts,
                                 skb ^ shift_addr if skb else 0, head ^ shift_addr if head else 0)
                off += size
            db.execute("INSERT INTO chunk (first_ts, last_ts, records, raw_size, codec, data) VALUES (?, ?, ?, ?, 'zstd', ?)",
                       (first + shift_ts, last + shift_ts, records, raw_size, cctx.compress(bytes(buf))))
            total += records
        copy += 1
        print(f"\r{total:,} events", end="", file=sys.stderr, flush=True)
    db.execute("UPDATE recording SET ended_ns = ended_ns + ?", ((copy - 1) * span,))
    db.commit()
    db.execute("VACUUM")
    db.close()
    print(f"\r{output}: {total:,} events from {copy} copies of {source}", file=sys.stderr)


if __name__ == "__main__":
    main()
