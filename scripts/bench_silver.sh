#!/usr/bin/env bash
# Throughput and peak memory of `02-silver` alone on about a million HDFS-format lines.
#
#   scripts/bench_silver.sh [COPIES] [RUNS]     (defaults: 21 copies ≈ 1.03 M lines, 5 runs)
#
# Builds the release binary, concatenates COPIES copies of ../shared/data/hdfs-sessions-dev/
# HDFS.log, ingests it into a fresh lake with 01-bronze (not timed), then times 02-silver RUNS
# times under /usr/bin/time -v and prints each run's wall clock, lines/s and peak RSS, and the
# best and median. Work files go to a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-21}
runs=${2:-5}
src=../shared/data/hdfs-sessions-dev/HDFS.log
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -f "$src" ] || { echo "missing $src (the shared data folder beside the project)" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/loglake
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$copies"); do cat "$src"; done >"$work/HDFS.log"
lines=$(wc -l <"$work/HDFS.log")
common=(--lake "$work/lake" --source bench --date 2008-11-09 --format hdfs)
"$bin" "${common[@]}" 00-init >/dev/null
"$bin" "${common[@]}" 01-bronze --input "$work/HDFS.log" >/dev/null

rates=()
for i in $(seq "$runs"); do
  /usr/bin/time -v -o "$work/time.txt" "$bin" "${common[@]}" 02-silver >/dev/null 2>&1
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  rate=$(awk -v n="$lines" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  rates+=("$rate")
  echo "run $i: ${secs}s  $rate lines/s  peak RSS $((rss_kb / 1024)) MiB"
done
sorted=$(printf '%s\n' "${rates[@]}" | sort -n)
echo "lines: $lines  cores: $(nproc)"
echo "best:   $(echo "$sorted" | tail -1) lines/s"
echo "median: $(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p") lines/s"
