#!/usr/bin/env bash
# How long 01-bronze takes over many small files: FILES files of 10 lines in one folder, ingested
# into a fresh lake, then again with nothing new (the target: 10,000 files in under 2 s).
#
#   scripts/bench_small_files.sh [FILES]      (default 10000; LOGLAKE_BIN: the binary to time,
#                                              default the release build, built here)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}
if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --release --quiet
  LOGLAKE_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in"
python3 - "$work/in" "$files" <<'PY'
import sys
folder, files = sys.argv[1], int(sys.argv[2])
for f in range(files):
    with open(f"{folder}/f{f:06d}.log", "w") as out:
        for i in range(10):
            out.write(f"2026-11-21T10:{i:02d}:{f % 60:02d}.000Z INFO api: file {f} request {i} served\n")
PY
export RUST_LOG=error
"$LOGLAKE_BIN" --lake "$work/lake" 00-init >/dev/null
bronze() { "$LOGLAKE_BIN" --lake "$work/lake" --date 2026-11-21 01-bronze --input "$work/in"; }
start=$(date +%s%N); bronze >/dev/null; first=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N); bronze >/dev/null; again=$(( ($(date +%s%N) - start) / 1000000 ))
parts=$(find "$work/lake/bronze" -name '*.parquet' | wc -l)
echo "$files files of 10 lines: first ingest ${first} ms into $parts part(s); again, nothing new, ${again} ms"
