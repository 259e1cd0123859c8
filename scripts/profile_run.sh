#!/usr/bin/env bash
# Where `loglake run`'s CPU time goes: the run of scripts/bench_vs_peer.sh (the HDFS-like file
# of ../shared/peers/make_hdfs_like.py --seed 7, session mode, a fresh lake) under a sampling
# profiler, broken down by stage and by kind of work (scripts/cpu_breakdown.py explains how).
#
#   scripts/profile_run.sh [LINES] [HZ]        (default 1000000 lines, 999 samples a second)
#
# Needs Linux `perf` (Debian: linux-perf) and a kernel that lets this user sample every thread
# of its own processes (/proc/sys/kernel/perf_event_paranoid at 2 or less). Without it, the
# step timers of `RUST_LOG=loglake=debug loglake run …` are the fallback. Work files go to a
# temporary folder, removed at exit; KEEP_SAMPLES=FILE keeps the samples (for
# scripts/cpu_breakdown.py, or to look at one kind of work's functions).
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
hz=${2:-999}
shared=$(realpath ../shared)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! command -v perf >/dev/null || ! perf record -q -o "$work/probe.perf" true 2>/dev/null; then
  echo "perf cannot sample here (install linux-perf, or lower /proc/sys/kernel/perf_event_paranoid);" >&2
  echo "step timers instead: RUST_LOG=loglake=debug loglake run ..." >&2
  exit 1
fi

cargo build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
python3 "$shared/peers/make_hdfs_like.py" --lines "$lines" --seed 7 --out "$work/hdfs.log" \
  --labels "$work/labels.csv" >/dev/null
# Real-time stamps on the samples, to match them with the stages' times in pipeline_runs.
if ! (cd "$work" && RUST_LOG=warn perf record -q -k CLOCK_REALTIME -F "$hz" -o "$work/run.perf" \
  "$bin" --lake "$work/lake" --source hdfs --date 2026-11-21 run --input "$work/hdfs.log" \
  --format hdfs --session-key 'blk_-?\d+' >"$work/loglake.out" 2>&1); then
  cat "$work/loglake.out" >&2
  exit 1
fi
perf script -i "$work/run.perf" -F tid,time,ip,sym,dso 2>/dev/null >"$work/samples.txt"
echo "lines: $(wc -l <"$work/hdfs.log"), cores: $(nproc), $hz samples a second per busy core"
python3 scripts/cpu_breakdown.py "$work/samples.txt" "$hz" "$work/lake/loglake.db"
if [ -n "${KEEP_SAMPLES:-}" ]; then cp "$work/samples.txt" "$KEEP_SAMPLES"; fi
