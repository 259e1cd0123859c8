#!/usr/bin/env bash
# The fanned-out DAG (airflow/dags/loglake_fanout_dag.py) in real Airflow with real parallelism,
# on a lake in an S3 bucket and runs in PostgreSQL:
#   serial    `airflow dags test` runs it in-process, one task after another;
#   parallel  a scheduler, a DAG processor and an API server with the LocalExecutor (4 worker
#             processes) run the same day: two sources, three shards each.
# Asserts every task succeeded in both; shards' 01-bronze and 02-silver tasks overlapped in
# time (how many varies with when the scheduler finds them ready); the two 04-train tasks did not (the `loglake_train` pool has one slot); 05-detect
# published each source's Asset; and both runs found exactly the same anomalies.
#
# Needs what .ci/run starts: TEST_S3_LAKE (s3://bucket) with the AWS_* variables of its server,
# and TEST_DATABASE_URL (a PostgreSQL server; two databases are created on it).
# Usage: scripts/test_airflow_fanout.sh     (builds loglake with cargo unless LOGLAKE_BIN is set;
#        KEEP_WORK=1 keeps the work folder, with Airflow's logs, for a look after a failure)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
t_start=$(date +%s)
fail() { echo "airflow-fanout-test: FAIL: $*" >&2; exit 1; }

: "${TEST_S3_LAKE:?an S3 bucket (s3://…) and its AWS_* variables, as .ci/run sets them}"
: "${TEST_DATABASE_URL:?a PostgreSQL server URL, as .ci/run sets it}"
psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n 1)
[ -x "$psql" ] || fail "psql not found"

. scripts/airflow_venv.sh
if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --quiet
  LOGLAKE_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/loglake"
fi
export LOGLAKE_BIN

work=$(mktemp -d /tmp/loglake-airflow-fanout.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

day=2026-11-19
export AIRFLOW__CORE__DAGS_FOLDER="$repo/airflow/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
export PYTHONWARNINGS=ignore
export LOGLAKE_SOURCES=web,api
export LOGLAKE_INPUT_ROOT="$work/logs"
export LOGLAKE_START_DATE=$day
export LOGLAKE_RETRIES=0
for s in WEB API; do
  export "LOGLAKE__SOURCES__${s}__FORMAT=generator" "LOGLAKE__SOURCES__${s}__SESSION_KEY=req=(\\S+)"
done

# Each source's day in three shards (files of consecutive lines).
for source in web api; do
  "$LOGLAKE_BIN" generate --out "$work/gen-$source" --days 1 --start-date $day \
    --lines-per-day 30000 --source $source >/dev/null
  mkdir -p "$work/logs/$source/$day"
  split -n l/3 -d --additional-suffix=.log "$work/gen-$source/logs/$source-$day.log" \
    "$work/logs/$source/$day/part-"
done

# One lake prefix and one database per run.
server=${TEST_DATABASE_URL%/*}
for run in serial parallel; do
  "$psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE fanout_${run}_$$" >/dev/null
done
setup() {  # run
  export AIRFLOW_HOME="$work/$1"
  export LOGLAKE_LAKE="${TEST_S3_LAKE%/}/airflow-fanout-$1-$$"
  export LOGLAKE__DATABASE__URL="$server/fanout_$1_$$"
  "$airflow" db migrate >"$work/$1-migrate.log" 2>&1 || { cat "$work/$1-migrate.log"; exit 1; }
  "$airflow" pools set loglake_train 1 "04-train, one source at a time" >/dev/null 2>&1
}

# --- Serial: in-process, one task at a time.
setup serial
errors=$("$airflow" dags list-import-errors -l -o json 2>/dev/null | tail -n 1)
[ "$errors" = "[]" ] || [ "$errors" = "No data found" ] || fail "the DAG folder has import errors: $errors"
"$airflow" dags test loglake_fanout $day >"$work/serial.log" 2>&1 \
  || { tail -n 40 "$work/serial.log" >&2; fail "airflow dags test loglake_fanout $day"; }
t_serial=$(( $(date +%s) - t_start ))

# --- Parallel: the scheduler hands tasks to 4 LocalExecutor workers.
setup parallel
free_port() {
  for p in $(seq "$1" $(( $1 + 30 ))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port from $1"
}
port=$(free_port 58080)
export AIRFLOW__CORE__EXECUTOR=LocalExecutor AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
export AIRFLOW__API_AUTH__JWT_SECRET="loglake-test-$$" AIRFLOW__API__SECRET_KEY="loglake-test-$$"
export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=5
# @once: the one run of the start date, as soon as the DAG is unpaused.
export LOGLAKE_SCHEDULE=@once
"$airflow" api-server --host 127.0.0.1 --port "$port" >"$work/api-server.log" 2>&1 & pids+=($!)
"$airflow" scheduler >"$work/scheduler.log" 2>&1 & pids+=($!)
"$airflow" dag-processor >"$work/dag-processor.log" 2>&1 & pids+=($!)
t_parallel=$(date +%s)
# Unpaused once the DAG processor has registered it (unpausing an unknown DAG does nothing).
until "$airflow" dags list -o plain 2>/dev/null | grep -q '^loglake_fanout '; do
  [ $(( $(date +%s) - t_parallel )) -lt 120 ] || fail "the DAG processor did not register loglake_fanout"
  sleep 2
done
"$airflow" dags unpause loglake_fanout >/dev/null 2>&1 || fail "could not unpause loglake_fanout"
state=""
while [ "$state" != success ] && [ "$state" != failed ]; do
  [ $(( $(date +%s) - t_parallel )) -lt 300 ] || { tail -n 30 "$work/scheduler.log" >&2; fail "the run did not finish in 300 s"; }
  sleep 3
  state=$(python3 -c "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\"SELECT state FROM dag_run WHERE dag_id='loglake_fanout'\").fetchone(); print(r[0] if r else '')" "$AIRFLOW_HOME/airflow.db")
done
t_parallel=$(( $(date +%s) - t_parallel ))

# --- What each run did, from Airflow's metadata databases.
python3 - "$work/serial/airflow.db" "$work/parallel/airflow.db" <<'EOF'
import sqlite3, sys
from datetime import datetime

def tasks(db):
    rows = sqlite3.connect(db).execute(
        "SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
        "WHERE dag_id = 'loglake_fanout'").fetchall()
    when = lambda v: datetime.fromisoformat(v) if v else datetime.min
    return [(t, m, s, when(a), when(b)) for t, m, s, a, b in rows]

def overlaps(rows, task):
    """Pairs of `task`'s instances (of any task in `rows` for None) that ran at the same time."""
    spans = [(a, b) for t, _, _, a, b in rows if task is None or t == task]
    return sum(1 for i, (a1, b1) in enumerate(spans) for a2, b2 in spans[i + 1:] if a1 < b2 and a2 < b1)

for name, db in (("serial", sys.argv[1]), ("parallel", sys.argv[2])):
    rows = tasks(db)
    bad = [(t, m, s) for t, m, s, _, _ in rows if s != "success"]
    assert not bad, f"{name}: tasks not successful: {bad}"
    mapped = {t: sum(1 for r in rows if r[0] == t) for t in ("01-bronze", "02-silver", "03-gold")}
    assert mapped == {"01-bronze": 6, "02-silver": 6, "03-gold": 2}, f"{name}: {mapped}"
    print(f"airflow-fanout-test: {name}: {len(rows)} tasks succeeded; overlapping pairs: "
          + ", ".join(f"{t} {overlaps(rows, t)}" for t in ("01-bronze", "02-silver", "04-train", "05-detect")))
    if name == "serial":
        assert overlaps(rows, "01-bronze") == 0, "dags test runs one task at a time"
    else:
        # The executor hands the shards' tasks out as its scheduler loop finds them ready: how
        # many overlap varies from run to run, that some do does not.
        shard_tasks = [r for r in rows if r[0] in ("01-bronze", "02-silver")]
        assert overlaps(shard_tasks, None) > 0, "shards' tasks overlapped in time"
        assert overlaps(rows, "04-train") == 0, "the loglake_train pool serialised training"
    events = dict(sqlite3.connect(db).execute(
        "SELECT a.uri, count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id GROUP BY a.uri"))
    assert set(events) == {"loglake://anomalies/web", "loglake://anomalies/api"}, events
EOF

# --- The same anomalies, row for row.
query="SELECT source, granularity, entity_key, window_start, detector, round(score::numeric, 6), severity FROM anomalies ORDER BY 1, 2, 3, 4, 5"
"$psql" "$server/fanout_serial_$$" -Atc "$query" >"$work/serial.txt"
"$psql" "$server/fanout_parallel_$$" -Atc "$query" >"$work/parallel.txt"
[ -s "$work/serial.txt" ] || fail "the serial run found no anomalies"
cmp -s "$work/serial.txt" "$work/parallel.txt" \
  || { diff "$work/serial.txt" "$work/parallel.txt" | head -20 >&2; fail "the parallel run's anomalies differ from the serial run's"; }
for run in serial parallel; do
  "$psql" "$TEST_DATABASE_URL" -qc "DROP DATABASE fanout_${run}_$$" >/dev/null
done
echo "airflow-fanout-test: $(wc -l <"$work/serial.txt") anomalies, the same in both runs"
echo "airflow-fanout-test: passed in $(( $(date +%s) - t_start ))s (serial run ${t_serial}s; parallel run ${t_parallel}s from the scheduler's start; Airflow $airflow_version)"
