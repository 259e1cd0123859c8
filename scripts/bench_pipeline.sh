#!/usr/bin/env bash
# End-to-end throughput and peak memory of `loglake run` on generated logs.
#
#   scripts/bench_pipeline.sh [LINES]        (default 1000000)
#
# Builds the release binary, generates about LINES lines over 3 days, runs every stage on a
# fresh lake with the embedded SQLite database under /usr/bin/time -v, and prints lines/s
# (wall clock, all stages) and peak RSS. Work files go to a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
days=3
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/loglake
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" generate --out "$work/raw" --days "$days" --lines-per-day $((lines / days)) --seed 1 --source bench >/dev/null
actual=$(cat "$work"/raw/logs/*.log | wc -l)

/usr/bin/time -v -o "$work/time.txt" "$bin" --lake "$work/lake" --source bench --date 2026-01-01 run \
  --input "$work/raw/logs" --format generator --session-key 'req=(\S+)' --labels "$work/raw/labels.jsonl" \
  >"$work/run.txt" 2>"$work/log.txt"

wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
grep -E '^0[0-9]-' "$work/run.txt" | sed 's/^/  /'
echo "lines:        $actual"
echo "wall clock:   ${secs}s (all stages, 00-init..06-report)"
echo "throughput:   $(awk -v n="$actual" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') lines/s"
echo "peak RSS:     $((rss_kb / 1024)) MiB"
echo "cores:        $(nproc)"
