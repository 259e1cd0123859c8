#!/usr/bin/env bash
# How fast 01-bronze reads a Kafka topic, beside how fast it reads the same lines from a file:
# the peer's HDFS-like lines (../shared/peers/make_hdfs_like.py), produced once to a topic of
# PARTITIONS partitions (not timed), then RUNS alternating runs of `01-bronze --kafka` and
# `01-bronze --input` into fresh lakes. Prints each run, the medians and lines per second.
#
# Usage: scripts/bench_kafka.sh [LINES] [RUNS]        (default 1000000 5)
# Env:   KAFKA_BROKERS (default: a tansu broker started here from TANSU_BIN, default
#        ~/.cache/loglake-tansu/bin/tansu, in memory, on a free loopback port: it shares the
#        machine's cores with loglake, so its own work is inside the figure), PARTITIONS
#        (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
runs=${2:-5}
partitions=${PARTITIONS:-4}
export RUST_LOG="${RUST_LOG:-error}"
cargo build --release --quiet --bin loglake --example kafka_produce
target=${CARGO_TARGET_DIR:-target}
bin="$target/release/loglake"
produce="$target/release/examples/kafka_produce"
work=$(mktemp -d /tmp/loglake-bench-kafka.XXXXXX)
trap '[ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null; rm -rf "$work"' EXIT
. scripts/tansu_broker.sh
python3 ../shared/peers/make_hdfs_like.py --lines "$lines" --seed 7 --out "$work/day.log" >/dev/null
n=$(wc -l <"$work/day.log")
topic="bench-$$"
"$produce" --brokers "$KAFKA_BROKERS" --topic "$topic" --partitions "$partitions" --create "$work/day.log" >/dev/null
echo "bench-kafka: $n lines, a topic of $partitions partitions on $KAFKA_BROKERS; $(nproc) cores; $("$bin" --version)"

now() { date +%s.%N; }
time_ingest() { # what, then 01-bronze's input arguments
  local what=$1 lake="$work/lake-$1"; shift
  rm -rf "$lake"
  "$bin" --lake "$lake" 00-init >/dev/null
  local t0; t0=$(now)
  "$bin" --lake "$lake" --source hdfs --date 2026-11-20 01-bronze "$@" >/dev/null
  echo "$(now) - $t0" | bc
}
kafka=() file=()
for r in $(seq "$runs"); do
  k=$(time_ingest kafka --kafka "$topic" --kafka-brokers "$KAFKA_BROKERS")
  f=$(time_ingest file --input "$work/day.log")
  kafka+=("$k") file+=("$f")
  printf 'bench-kafka: run %d: kafka %.3f s, file %.3f s\n' "$r" "$k" "$f"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mk=$(median "${kafka[@]}") mf=$(median "${file[@]}")
printf 'bench-kafka: medians: kafka %.3f s (%.0f messages/s), file %.3f s (%.0f lines/s); the file is %.1fx faster\n' \
  "$mk" "$(echo "$n / $mk" | bc -l)" "$mf" "$(echo "$n / $mf" | bc -l)" "$(echo "$mk / $mf" | bc -l)"
