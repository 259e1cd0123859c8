#!/usr/bin/env bash
# Grouping accuracy (and loghub-2.0's FGA, PA, FTA) of the silver parser on the loghub 2k samples
# and on the HDFS session data,
# all with the default configuration; only the format string differs per set (the formats are
# the ones loghub publishes with the samples, see ../shared/data/README.md).
#
#   scripts/parse_accuracy.sh [DATA_DIR]      (default: ../shared/data)
#
# Prints one line per set and the mean over the loghub sets. Exits non-zero if a bar is missed:
# mean >= 0.98, each set >= 0.95, HDFS events >= 0.99.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
source scripts/loghub_formats.sh

# The value after `name` in one parse-accuracy line.
metric() { sed -E "s/.*$1 ([0-9.]+).*/\1/" <<<"$2"; }

sum=0; fga=0; pa=0; fta=0; n=0; fail=0
for set in HDFS Apache OpenSSH Linux Spark Zookeeper HealthApp Mac; do
  dir="$DATA/loghub-2k/$set"
  out=$("$BIN" parse-accuracy --format "${FORMATS[$set]}" \
    --log "$dir/${set}_2k.log" --truth "$dir/${set}_2k.log_structured.csv")
  acc=$(metric 'grouping accuracy' "$out")
  printf '%-10s %s\n' "$set" "${out#parse-accuracy: }"
  sum=$(echo "$sum + $acc" | bc -l); n=$((n + 1))
  fga=$(echo "$fga + $(metric FGA "$out")" | bc -l)
  pa=$(echo "$pa + $(metric PA "$out")" | bc -l)
  fta=$(echo "$fta + $(metric FTA "$out")" | bc -l)
  if (( $(echo "$acc < 0.95" | bc -l) )); then fail=1; fi
done
mean=$(echo "$sum / $n" | bc -l)
printf 'loghub-2k mean grouping accuracy: %.4f over %d sets\n' "$mean" "$n"
printf 'loghub-2k means: FGA %.4f, PA %.4f, FTA %.4f\n' "$(echo "$fga / $n" | bc -l)" \
  "$(echo "$pa / $n" | bc -l)" "$(echo "$fta / $n" | bc -l)"
if (( $(echo "$mean < 0.98" | bc -l) )); then fail=1; fi

hdfs="$DATA/hdfs-sessions-dev"
out=$("$BIN" parse-accuracy --format hdfs --log "$hdfs/HDFS.log" --truth "$hdfs/event_ids.txt")
printf '%-10s %s\n' "HDFS-dev" "${out#parse-accuracy: }"
acc=$(metric 'grouping accuracy' "$out")
if (( $(echo "$acc < 0.99" | bc -l) )); then fail=1; fi
exit $fail
