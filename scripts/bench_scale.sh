#!/usr/bin/env bash
# How time and memory grow with the size of a day: `loglake run` on one generated day each of
# several sizes.
#
#   scripts/bench_scale.sh [LINES ...]        (default 1000000 10000000 30000000)
#
# Builds the release binary; for each size, generates one day (`loglake generate --days 1`),
# runs every stage on a fresh lake under /usr/bin/time, prints wall time, lines/s, peak RSS
# and the time and RSS relative to the first size, then removes that day's files. A run that
# fails (out of memory included) is reported with its exit code and the last line it printed.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000000 10000000 30000000)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-10s %10s %9s %11s %9s %8s %8s\n' lines seconds lines/s "peak MiB" "x time" "x RSS" status
base_s=""; base_rss=""
for n in "${sizes[@]}"; do
  rm -rf "$work/raw" "$work/lake"
  "$bin" generate --out "$work/raw" --days 1 --start-date 2026-11-20 --lines-per-day "$n" \
    --seed 5 --source scale >/dev/null
  actual=$(cat "$work"/raw/logs/*.log | wc -l)
  code=0
  (cd "$work" && RUST_LOG=warn /usr/bin/time -v -o "$work/time.txt" "$bin" --lake "$work/lake" \
    --source scale --date 2026-11-20 run --input "$work/raw/logs" --format generator \
    --session-key 'req=(\S+)' >"$work/run.txt" 2>&1) || code=$?
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print int($2 / 1024)}' "$work/time.txt")
  status=ok
  [ "$code" = 0 ] || status="exit $code: $(tail -1 "$work/run.txt")"
  [ -z "$base_s" ] && { base_s=$secs; base_rss=$rss; }
  printf '%-10s %10.2f %9.0f %11s %9.2f %8.2f %8s\n' "$actual" "$secs" \
    "$(awk -v n="$actual" -v s="$secs" 'BEGIN {print n / s}')" "$rss" \
    "$(awk -v a="$secs" -v b="$base_s" 'BEGIN {print a / b}')" \
    "$(awk -v a="$rss" -v b="$base_rss" 'BEGIN {print a / b}')" "$status"
  if [ "$code" = 0 ]; then
    sqlite3 -separator ' ' "$work/lake/loglake.db" \
      "SELECT '    ' || stage, printf('%.2f s', duration_ms / 1000.0) FROM pipeline_runs ORDER BY id" |
      paste -sd' ' -
  fi
done
