#!/usr/bin/env bash
# loglake quickstart: build, generate three days of synthetic logs with labelled anomalies,
# run every stage on the embedded SQLite default, and show the top anomalies with SQL.
# Everything it writes lives under ./demo (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")"

demo=demo
mkdir -p "$demo"
# Stage summaries go to stdout; keep the log lines on stderr to warnings unless asked for more.
export RUST_LOG="${RUST_LOG:-warn}"

echo "==> building loglake (release; the first build takes several minutes)"
cargo build --release --quiet
bin=./target/release/loglake
[ -n "${CARGO_TARGET_DIR:-}" ] && bin="$CARGO_TARGET_DIR/release/loglake"

echo "==> generating 3 days of logs"
"$bin" generate --out "$demo/raw" --days 3 --lines-per-day 150000 --seed 7 --source shop

echo "==> running every stage"
"$bin" --lake "$demo/lake" --source shop --date "$(date -u +%F)" run --html \
  --input "$demo/raw/logs" --format generator --session-key 'req=(\S+)' \
  --labels "$demo/raw/labels.jsonl"

echo
echo "==> top anomalies, straight from SQL (sqlite3 $demo/lake/loglake.db)"
query="SELECT window_start, granularity, detector, severity, reason
       FROM anomalies ORDER BY score / threshold DESC LIMIT 10;"
if command -v sqlite3 >/dev/null; then
  sqlite3 -header -column "$demo/lake/loglake.db" "$query"
else
  echo "(sqlite3 is not installed; the query was: $query)"
fi
