#!/usr/bin/env bash
# Kill `01-bronze --kafka` with -9 at random moments and check that re-runs leave each message
# in bronze exactly once.
#
#   scripts/kafka_kill_trials.sh [TRIALS]        (default 20)
#
# Each trial, on a topic and a lake of its own:
#   1. the first half of LINES generated lines is produced over PARTITIONS partitions;
#   2. `01-bronze --kafka` is started and killed (-9) at a random moment within 1.2 times a
#      clean run's duration over that half (so some kills come after it committed);
#   3. the second half is produced (messages keep arriving while loglake is down);
#   4. `01-bronze --kafka` is started and killed again at a random moment within 2.4 times it
#      (it has up to both halves to read);
#   5. `01-bronze --kafka` runs to its end;
# then bronze must hold exactly LINES rows, LINES distinct (partition, offset) pairs and no gap
# in any partition's offsets (examples/kafka_bronze_check.rs).
#
# Environment: LOGLAKE_BIN, KAFKA_PRODUCE_BIN, KAFKA_CHECK_BIN (default: the release builds of
# loglake and examples/kafka_produce.rs and kafka_bronze_check.rs, built here); KAFKA_BROKERS
# (default: a tansu broker started here from TANSU_BIN, default
# ~/.cache/loglake-tansu/bin/tansu, in-memory, on a free loopback port); LINES (default
# 200000); PARTITIONS (default 4).
# Prints one line per trial and a summary; exits non-zero on any mismatch, keeping the work
# folder.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
lines=${LINES:-200000}
partitions=${PARTITIONS:-4}
target=${CARGO_TARGET_DIR:-target}
if [ -z "${LOGLAKE_BIN:-}" ] || [ -z "${KAFKA_PRODUCE_BIN:-}" ] || [ -z "${KAFKA_CHECK_BIN:-}" ]; then
  cargo build --release --quiet --bin loglake --example kafka_produce --example kafka_bronze_check
fi
bin=${LOGLAKE_BIN:-$target/release/loglake}
produce=${KAFKA_PRODUCE_BIN:-$target/release/examples/kafka_produce}
check=${KAFKA_CHECK_BIN:-$target/release/examples/kafka_bronze_check}
work=$(mktemp -d)
keep=0
trap '[ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null; [ "$keep" = 1 ] || rm -rf "$work"' EXIT
. scripts/tansu_broker.sh
date=2026-11-20
"$bin" generate --out "$work/raw" --days 1 --start-date "$date" --lines-per-day "$lines" \
  --seed 5 --source shop >/dev/null
log="$work/raw/logs/shop-$date.log"
total=$(wc -l <"$log")
half=$((total / 2))
head -n "$half" "$log" >"$work/first.log"
tail -n +"$((half + 1))" "$log" >"$work/second.log"
export RUST_LOG=error

ingest() { "$bin" --lake "$1" --source shop --date "$date" 01-bronze --kafka "$2" --kafka-brokers "$KAFKA_BROKERS"; }

# A clean run's duration over the first half (ms): kills land within it.
"$produce" --brokers "$KAFKA_BROKERS" --topic "clean-$$" --partitions "$partitions" --create "$work/first.log" >/dev/null
"$bin" --lake "$work/clean" 00-init >/dev/null
t0=$(date +%s%N)
ingest "$work/clean" "clean-$$" >/dev/null
clean_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "kafka kill trials: $total messages over $partitions partitions per trial; a clean 01-bronze of the first half took ${clean_ms} ms"

# Start 01-bronze on lake $1, topic $2, kill it -9 after a random moment within $3 ms; prints
# when ("mid" when it was still running, else "after") and the bronze rows
# committed by then.
kill_somewhere() {
  # The binary itself in the background (a function would run in a subshell, which the kill
  # would hit instead of loglake).
  "$bin" --lake "$1" --source shop --date "$date" 01-bronze --kafka "$2" \
    --kafka-brokers "$KAFKA_BROKERS" >/dev/null 2>&1 &
  local pid=$!
  local ms=$(( (RANDOM * 32768 + RANDOM) % ($3 + 1) ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  local when=after
  kill -9 "$pid" 2>/dev/null && when=mid
  wait "$pid" 2>/dev/null || true
  echo "$when at $ms ms ($("$check" "$1" shop "$date" -) rows committed)"
}

passed=0 mid=0
for t in $(seq "$trials"); do
  topic="kill-$t-$$"
  lake="$work/lake-$t"
  "$bin" --lake "$lake" 00-init >/dev/null
  "$produce" --brokers "$KAFKA_BROKERS" --topic "$topic" --partitions "$partitions" --create "$work/first.log" >/dev/null
  first=$(kill_somewhere "$lake" "$topic" $((clean_ms * 12 / 10)))
  "$produce" --brokers "$KAFKA_BROKERS" --topic "$topic" --partitions "$partitions" "$work/second.log" >/dev/null
  second=$(kill_somewhere "$lake" "$topic" $((clean_ms * 24 / 10)))
  ingest "$lake" "$topic" >/dev/null
  case "$first" in mid*) mid=$((mid + 1)) ;; esac
  case "$second" in mid*) mid=$((mid + 1)) ;; esac
  if result=$("$check" "$lake" shop "$date" "$total" 2>&1); then
    passed=$((passed + 1))
    echo "trial $t: kills $first, $second: $result"
    rm -rf "$lake"
  else
    keep=1
    echo "trial $t: kills $first, $second: MISMATCH: $result (kept in $work)"
  fi
done
echo "kafka kill trials: $passed/$trials exact ($mid of $((2 * trials)) kills landed mid-run)"
[ "$passed" = "$trials" ]
