#!/usr/bin/env bash
# Detection quality on generated logs over several seeds, with the default configuration.
#
#   scripts/generator_seeds.sh [SEED ...]      (default: the odd seeds 1–19)
#   DAYS=3 LINES_PER_DAY=100000 scripts/generator_seeds.sh 42   (the generator's defaults)
#   START_DATE=2026-11-23 scripts/generator_seeds.sh          (days from a Monday)
#
# The generated days start on START_DATE (default 2026-11-20, a Friday: two days then run
# Friday-Saturday). Fixed, because the figures depend on the weekday: the generator's traffic
# and the detectors' same-hour baselines follow the calendar, so the generator's own default —
# days ending yesterday — gave different figures on different days.
# For each seed: `loglake generate --days $DAYS --lines-per-day $LINES_PER_DAY --seed S` (2 days
# of 60,000 lines unless set: short histories and quiet services are the hard case), then `loglake run`
# with the generator's labels, and prints the ensemble's F1 per injected type at its natural
# granularity and its window-level precision/recall. Exits non-zero if any type's F1 is below
# 0.95 for any seed. Work files go to a temporary folder, removed at exit. The generator seeds
# day d with `seed XOR (constant + d)`, so seeds 2k and 2k+1 share their days: the default
# list takes odd seeds, whose days are all different.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(1 3 5 7 9 11 13 15 17 19)
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/loglake
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=${START_DATE:-2026-11-20}
# Every day's lines in one batch, dated the last day (as a run the day after would have it).
batch=$(date -d "$start + $(( ${DAYS:-2} - 1 )) days" +%F)
echo "days from $start ($(date -d "$start" +%A)), ${DAYS:-2} of ${LINES_PER_DAY:-60000} lines"
worst=1
for seed in "${seeds[@]}"; do
  dir="$work/$seed"
  "$bin" generate --out "$dir/g" --days "${DAYS:-2}" --lines-per-day "${LINES_PER_DAY:-60000}" \
    --seed "$seed" --start-date "$start" >/dev/null
  RUST_LOG=warn "$bin" --lake "$dir/lake" --source app --date "$batch" run --input "$dir/g/logs" --format generator \
    --session-key 'req=(\S+)' --labels "$dir/g/labels.jsonl" >"$dir/out.txt" 2>&1
  types=$(awk '$1 == "type" {printf "%s %s  ", $2, $NF}' "$dir/out.txt")
  window=$(awk '$1 == "ensemble/window" {printf "P %s R %s", $5, $6}' "$dir/out.txt")
  printf 'seed %-3s %s| window %s\n' "$seed" "$types" "$window"
  low=$(awk '$1 == "type" {print $NF}' "$dir/out.txt" | sort -g | head -1)
  worst=$(awk -v a="$worst" -v b="${low:-0}" 'BEGIN {print (b < a) ? b : a}')
done
echo "lowest per-type F1: $worst (bar 0.95)"
awk -v w="$worst" 'BEGIN {exit (w >= 0.95) ? 0 : 1}'
