#!/usr/bin/env python3
"""Where a `loglake run`'s CPU time goes, stage by stage and by kind of work.

    cpu_breakdown.py SAMPLES HZ DATABASE

SAMPLES is `perf script -F tid,time,ip,sym,dso` output of a run recorded with
`perf record -k CLOCK_REALTIME -F HZ` (every thread, no call graphs): each sample is one
thread seen on a core at a wall-clock time. DATABASE is the run's SQLite file, whose
`pipeline_runs` rows say when each stage started and how long it took; a sample belongs to
the stage whose span holds its time. Each sample's kind of work comes from the function it
was in (its leaf), so a cost shows up where it is paid: zstd inside a Parquet write counts
as compression, a page fault inside a decoder as the kernel's.

Prints, per stage, its wall time, the CPU-seconds sampled in it (HZ samples a second on
each busy core), how many cores that kept busy on average, and the share of each kind.
"""
import re
import sqlite3
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone

# Kinds of work, tried in order on the leaf function's name (and its binary, for the kernel).
KINDS = [
    ("zstd compress", r"^(ZSTD_(compress|encode|seqToCodes|createCCtx|ldm|fillHashTable|"
                      r"fillDoubleHashTable|rescale|build(CTable|SeqStore)|CCtx)|HIST_|"
                      r"HUF_(compress|build|write|optimal)|FSE_(compress|build|write|optimal|normalize))"),
    ("zstd decompress", r"^(ZSTD_(decompress|buildFSETable|decode|DCtx|getc|copy)|HUF_decompress|"
                        r"HUF_read|FSE_(decompress|read|build))"),
    # Decoding first: both sides live under `parquet::encoding::`, so "encod" alone would take
    # the decoders too.
    ("Parquet decode", r"parquet.*(::read|decod|deserializ)"),
    ("Parquet encode", r"parquet.*(write|encod)|ArrowColumnChunk|ByteArrayEncoder|Interner"),
    ("SQLite", r"^(sqlite3|pcache|btree|pager|vdbe|wal[A-Z]|keywordCode|yy_)"),
    ("SHA-256", r"^sha2::"),
    ("regex", r"^(<)?regex"),
    ("hash tables", r"hashbrown|foldhash|hash_one|rustc_hash"),
    ("JSON", r"serde_json"),
    ("k-means (linfa)", r"linfa|ndarray"),
    ("allocator", r"^_?mi_"),
    ("kernel", None),  # any symbol of [kernel.kallsyms]
    ("memcpy/memcmp", r"^__(mem|str)"),
    ("masking, parsing", r"loglake::parse::"),
    ("loglake (other)", r"loglake::"),
    ("polars compute", r"polars"),
]

LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$")


def kind_of(symbol, dso):
    for name, pattern in KINDS:
        if pattern is None:
            if "kernel" in dso:
                return name
        elif re.search(pattern, symbol):
            return name
    return "other"


def stage_spans(database):
    rows = sqlite3.connect(database).execute(
        "SELECT stage, started_at, duration_ms FROM pipeline_runs ORDER BY id").fetchall()
    spans = []
    for stage, started, ms in rows:
        start = datetime.strptime(started, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
        spans.append((stage, start.timestamp(), start.timestamp() + ms / 1000.0))
    return spans


def main(samples_path, hz, database):
    hz = float(hz)
    spans = stage_spans(database)
    per_stage = defaultdict(Counter)
    for line in open(samples_path, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        t, symbol, dso = float(m.group(2)), m.group(3), m.group(4)
        symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol)
        stage = next((s for s, a, b in spans if a <= t < b), "outside stages")
        per_stage[stage][kind_of(symbol, dso)] += 1
    order = [s for s, _, _ in spans] + ["outside stages"]
    walls = {s: b - a for s, a, b in spans}
    kinds = [k for k, _ in KINDS] + ["other"]
    total = Counter()
    print(f"{'stage':<16}{'wall s':>8}{'CPU s':>8}{'cores':>7}  share of the stage's CPU")
    for stage in order:
        counts = per_stage.get(stage)
        if not counts:
            continue
        total.update(counts)
        n = sum(counts.values())
        wall = walls.get(stage)
        cores = f"{n / hz / wall:7.2f}" if wall else f"{'':7}"
        shares = ", ".join(f"{k} {counts[k] / n:.0%}" for k in kinds
                           if counts[k] / n >= 0.03)
        wall_text = f"{wall:8.2f}" if wall else f"{'':8}"
        print(f"{stage:<16}{wall_text}{n / hz:8.2f}{cores}  {shares}")
    n = sum(total.values())
    wall = sum(walls.values())
    print(f"{'all':<16}{wall:8.2f}{n / hz:8.2f}{n / hz / wall:7.2f}")
    print("CPU-seconds by kind of work, whole run:")
    for k in kinds:
        if total[k]:
            print(f"  {k:<20}{total[k] / hz:6.2f} s  {total[k] / n:5.1%}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
