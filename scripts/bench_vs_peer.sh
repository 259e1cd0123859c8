#!/usr/bin/env bash
# loglake against the Python peer (pandas + Drain3 + scikit-learn), side by side in one run.
#
#   scripts/bench_vs_peer.sh [LINES] [RUNS]       (default 1000000 lines, 1 run each)
#
# Builds the release binary, writes the HDFS-like workload with the shared generator
# (../shared/peers/make_hdfs_like.py --seed 7), then runs, alternating, the peer in session mode
# (in its own virtualenv, ${LOGLAKE_PEER_VENV:-~/.cache/loglake-peer-venv}, created on first use)
# and `loglake run --format hdfs --session-key 'blk_-?\d+'` on a fresh lake, each under
# /usr/bin/time. Prints each run's wall time and peak RSS, the ratio of the medians, loglake's
# seconds per stage (from pipeline_runs) and its lake bytes per raw byte (Parquet layers; the
# SQLite file and models are listed apart). Work files go to a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
runs=${2:-1}
shared=$(realpath ../shared)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

venv=${LOGLAKE_PEER_VENV:-$HOME/.cache/loglake-peer-venv}
if ! "$venv/bin/python" -c 'import pandas, pyarrow, sklearn, drain3' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pandas pyarrow scikit-learn drain3 numpy
fi

cargo build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$shared/peers/make_hdfs_like.py" --lines "$lines" --seed 7 --out "$work/hdfs.log" \
  --labels "$work/labels.csv" >/dev/null
raw_bytes=$(stat -c %s "$work/hdfs.log")
actual=$(wc -l <"$work/hdfs.log")

# Wall seconds and peak RSS (MiB) of one /usr/bin/time -v report.
measure() {
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print int($2 / 1024)}' "$1")
  echo "$wall $rss"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$work/peer.times"; : >"$work/loglake.times"
for run in $(seq "$runs"); do
  rm -rf "$work/peer-lake" "$work/lake"
  /usr/bin/time -v -o "$work/peer.time" "$venv/bin/python" "$shared/peers/python_pipeline.py" \
    --input "$work/hdfs.log" --format hdfs --lake "$work/peer-lake" --out "$work/peer.csv" \
    --session-regex 'blk_-?\d+' >"$work/peer.out" 2>&1
  read -r p_wall p_rss < <(measure "$work/peer.time")
  (cd "$work" && RUST_LOG=warn /usr/bin/time -v -o "$work/loglake.time" "$bin" --lake "$work/lake" \
    --source hdfs --date 2026-11-21 run --input "$work/hdfs.log" --format hdfs \
    --session-key 'blk_-?\d+' >"$work/loglake.out" 2>&1)
  read -r l_wall l_rss < <(measure "$work/loglake.time")
  echo "$p_wall" >>"$work/peer.times"; echo "$l_wall" >>"$work/loglake.times"
  printf 'run %s: peer %6.2f s %5s MiB | loglake %6.2f s %5s MiB | ratio %.2fx\n' \
    "$run" "$p_wall" "$p_rss" "$l_wall" "$l_rss" "$(awk -v a="$p_wall" -v b="$l_wall" 'BEGIN {print a / b}')"
done
p_med=$(median <"$work/peer.times"); l_med=$(median <"$work/loglake.times")

echo "lines: $actual ($raw_bytes bytes), cores: $(nproc)"
echo "median wall: peer ${p_med}s, loglake ${l_med}s: loglake is $(awk -v a="$p_med" -v b="$l_med" 'BEGIN {printf "%.2f", a / b}')x the peer"
echo "loglake seconds per stage (last run):"
sqlite3 -separator ' ' "$work/lake/loglake.db" \
  "SELECT '  ' || stage, printf('%.2f', duration_ms / 1000.0) FROM pipeline_runs ORDER BY id"
echo "loglake lake bytes per raw byte (last run):"
total=0
for layer in bronze silver gold detections quarantine; do
  [ -d "$work/lake/$layer" ] || continue
  for table in "$work/lake/$layer"/*/; do
    b=$(du -sb "$table" | cut -f1)
    total=$((total + b))
    printf '  %-36s %12s bytes  %.3f\n' "$layer/$(basename "$table")" "$b" "$(awk -v a="$b" -v r="$raw_bytes" 'BEGIN {print a / r}')"
  done
done
printf '  %-36s %12s bytes  %.3f\n' "Parquet layers" "$total" "$(awk -v a="$total" -v r="$raw_bytes" 'BEGIN {print a / r}')"
printf '  %-36s %12s bytes\n' "models/" "$(du -sb "$work/lake/models" | cut -f1)" "loglake.db" "$(stat -c %s "$work/lake/loglake.db")"
