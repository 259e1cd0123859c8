#!/usr/bin/env bash
# The DAG in real Airflow: install Airflow in a throwaway virtualenv (cached between runs),
# check airflow/dags/loglake_dag.py imports cleanly, then run it with `airflow dags test` for
# three logical dates of generated logs and assert what each task did:
#   day 1  every task succeeds and anomalies land in the database;
#   day 2  04-train is skipped (models are fresh under weekly retraining), the rest succeed;
#   day 3  no logs arrived (an empty folder): the data stages are skipped via exit code 99,
#          00-init and 06-report succeed, nothing fails;
#   day 4  the day's log folder is missing: 01-bronze fails with loglake's one-line reason in
#          its task log, the stages after it are upstream_failed, and `dags test` exits non-zero;
#   days 5-7, with TEST_KAFKA_BROKERS: the DAG reading a Kafka topic instead (see below).
#
# Usage: scripts/test_airflow.sh            (builds loglake with cargo unless LOGLAKE_BIN is set)
# Env:   AIRFLOW_VERSION (default 3.3.2), LOGLAKE_AIRFLOW_VENV (default ~/.cache/loglake-airflow-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
t_start=$(date +%s)

. scripts/airflow_venv.sh

if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --quiet
  LOGLAKE_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/loglake"
fi
export LOGLAKE_BIN

work=$(mktemp -d /tmp/loglake-airflow.XXXXXX)
trap 'rm -rf "$work"' EXIT
export AIRFLOW_HOME="$work/airflow-home"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/airflow/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
export PYTHONWARNINGS=ignore
export LOGLAKE_LAKE="$work/lake"
export LOGLAKE_INPUT="$work/logs/{{ ds }}"
export LOGLAKE_FORMAT=generator
export LOGLAKE_SESSION_KEY='req=(\S+)'
export LOGLAKE_START_DATE=2026-11-01
export LOGLAKE_RETRAIN_EVERY_DAYS=7
export LOGLAKE_RETRIES=0

# One folder of raw logs per logical date, as the DAG's default input layout expects.
"$LOGLAKE_BIN" generate --out "$work/gen" --days 2 --start-date 2026-11-19 --lines-per-day 30000 >/dev/null
for d in 2026-11-19 2026-11-20; do
  mkdir -p "$work/logs/$d"
  mv "$work/gen/logs/"*"$d"* "$work/logs/$d/"
done
mkdir -p "$work/logs/2026-11-21"

"$airflow" db migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; exit 1; }

errors=$("$airflow" dags list-import-errors -l -o json 2>/dev/null | tail -n 1)
if [ "$errors" != "[]" ] && [ "$errors" != "No data found" ]; then
  echo "airflow-test: FAIL: the DAG folder has import errors: $errors" >&2
  exit 1
fi
"$airflow" dags list -l -o json 2>/dev/null | tail -n 1 | grep -q '"dag_id": "loglake"' \
  || { echo "airflow-test: FAIL: DAG loglake not found in $AIRFLOW__CORE__DAGS_FOLDER" >&2; exit 1; }

run_day() {
  local day=$1
  if ! "$airflow" dags test loglake "$day" >"$work/run-$day.log" 2>&1; then
    tail -n 40 "$work/run-$day.log" >&2
    echo "airflow-test: FAIL: airflow dags test loglake $day exited non-zero" >&2
    exit 1
  fi
}

# Task states of the run for one logical date, "task=state" sorted by task id.
states() {
  python3 - "$AIRFLOW_HOME/airflow.db" "$1" <<'EOF'
import sqlite3, sys
db, day = sys.argv[1], sys.argv[2]
rows = sqlite3.connect(db).execute(
    "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
    "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
    "WHERE ti.dag_id = 'loglake' AND date(dr.logical_date) = ? ORDER BY ti.task_id", (day,))
print(" ".join(f"{t}={s}" for t, s in rows))
EOF
}

expect_states() {
  local day=$1 want=$2 got
  got=$(states "$day")
  if [ "$got" != "$want" ]; then
    echo "airflow-test: FAIL: $day task states" >&2
    echo "  want: $want" >&2
    echo "  got:  $got" >&2
    tail -n 40 "$work/run-$day.log" >&2
    exit 1
  fi
  echo "airflow-test: $day: $got"
}

run_day 2026-11-19
expect_states 2026-11-19 "00-init=success 01-bronze=success 02-silver=success 03-gold=success 04-train=success 05-detect=success 06-report=success"
run_day 2026-11-20
expect_states 2026-11-20 "00-init=success 01-bronze=success 02-silver=success 03-gold=success 04-train=skipped 05-detect=success 06-report=success"
run_day 2026-11-21
expect_states 2026-11-21 "00-init=success 01-bronze=skipped 02-silver=skipped 03-gold=skipped 04-train=skipped 05-detect=skipped 06-report=success"

# At INFO, the task's output (loglake's error line) reaches the log.
if AIRFLOW__LOGGING__LOGGING_LEVEL=INFO "$airflow" dags test loglake 2026-11-22 >"$work/run-2026-11-22.log" 2>&1; then
  echo "airflow-test: FAIL: the run for a missing log folder succeeded" >&2
  exit 1
fi
expect_states 2026-11-22 "00-init=success 01-bronze=failed 02-silver=upstream_failed 03-gold=upstream_failed 04-train=upstream_failed 05-detect=upstream_failed 06-report=upstream_failed"
grep -q "loglake: error: 01-bronze failed: input .*2026-11-22 does not exist" "$work/run-2026-11-22.log" \
  || { echo "airflow-test: FAIL: no loglake error line in the failed task's log" >&2; exit 1; }

# The report task wrote each day's HTML page.
for d in 2026-11-19 2026-11-20; do
  grep -q "<svg class=\"chart chart-volume\"" "$LOGLAKE_LAKE/reports/$d/index.html" \
    || { echo "airflow-test: FAIL: no HTML report with charts for $d" >&2; exit 1; }
done

# Anomalies landed in the database (the embedded SQLite file of the lake) for both days.
python3 - "$LOGLAKE_LAKE/loglake.db" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
per_day = dict(con.execute("SELECT batch_date, count(*) FROM anomalies GROUP BY batch_date"))
runs = dict(con.execute("SELECT status, count(*) FROM pipeline_runs GROUP BY status"))
print(f"airflow-test: anomalies per batch date {per_day}; pipeline_runs by status {runs}")
assert per_day.get("2026-11-19", 0) > 0 and per_day.get("2026-11-20", 0) > 0, per_day
# One failed stage run: day 4's 01-bronze; nothing left running.
assert runs.get("failed", 0) == 1 and runs.get("running", 0) == 0, runs
EOF

# With a Kafka broker (CI sets TEST_KAFKA_BROKERS): the same DAG reading a topic instead of a
# folder, on a lake of its own. Each run reads what arrived since the last:
#   day 5  the first day's lines are on the topic: every task succeeds;
#   day 6  the second day's lines arrived: 04-train skipped (fresh models), the rest succeed;
#   day 7  nothing arrived: the data stages are skipped, nothing fails.
if [ -n "${TEST_KAFKA_BROKERS:-}" ]; then
  produce=${KAFKA_PRODUCE_BIN:-$(dirname "$LOGLAKE_BIN")/examples/kafka_produce}
  [ -x "$produce" ] || { cargo build --quiet --example kafka_produce; produce="${CARGO_TARGET_DIR:-$repo/target}/debug/examples/kafka_produce"; }
  topic="airflow-$$-$(date +%s)"
  export LOGLAKE_LAKE="$work/kafka-lake" LOGLAKE_KAFKA_TOPICS="$topic" LOGLAKE_KAFKA_BROKERS="$TEST_KAFKA_BROKERS"
  "$produce" --brokers "$TEST_KAFKA_BROKERS" --topic "$topic" --partitions 3 --create --key 'req=(\S+)' \
    "$work/logs/2026-11-19/"* >/dev/null
  run_day 2026-11-23
  expect_states 2026-11-23 "00-init=success 01-bronze=success 02-silver=success 03-gold=success 04-train=success 05-detect=success 06-report=success"
  "$produce" --brokers "$TEST_KAFKA_BROKERS" --topic "$topic" --partitions 3 --key 'req=(\S+)' \
    "$work/logs/2026-11-20/"* >/dev/null
  run_day 2026-11-24
  expect_states 2026-11-24 "00-init=success 01-bronze=success 02-silver=success 03-gold=success 04-train=skipped 05-detect=success 06-report=success"
  run_day 2026-11-25
  expect_states 2026-11-25 "00-init=success 01-bronze=skipped 02-silver=skipped 03-gold=skipped 04-train=skipped 05-detect=skipped 06-report=success"
  python3 - "$LOGLAKE_LAKE/loglake.db" "$work/logs" <<'EOF'
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = dict(con.execute(
    "SELECT batch_dates, rows_out FROM pipeline_runs WHERE stage = '01-bronze' AND status = 'succeeded'"))
lines = [sum(1 for f in os.listdir(os.path.join(sys.argv[2], d))
             for _ in open(os.path.join(sys.argv[2], d, f), "rb"))
         for d in ("2026-11-19", "2026-11-20")]
print(f"airflow-test: from Kafka, bronze rows per batch date {rows}; lines produced {lines}")
assert [rows.get("2026-11-23"), rows.get("2026-11-24")] == lines, (rows, lines)
per_day = dict(con.execute("SELECT batch_date, count(*) FROM anomalies GROUP BY batch_date"))
assert per_day.get("2026-11-23", 0) > 0 and per_day.get("2026-11-24", 0) > 0, per_day
EOF
fi

echo "airflow-test: passed in $(( $(date +%s) - t_start ))s (Airflow $airflow_version)"
