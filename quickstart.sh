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

echo "==> building loglake (release; the first build takes about 20 minutes on 2 cores, later ones seconds)"
# Not --quiet: a first build is long, and cargo says when it waits for another build's lock.
cargo build --release
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
# final_anomalies: one row per anomaly (the ensemble's verdicts; the detectors' votes behind
# them are rows of anomalies with vote = true), none still provisional.
query="SELECT window_start, granularity, severity, reason
       FROM final_anomalies ORDER BY score / threshold DESC LIMIT 10;"
if command -v sqlite3 >/dev/null; then
  sqlite3 -header -column "$demo/lake/loglake.db" "$query"
else
  echo "(sqlite3 is not installed; the query was: $query)"
fi

date=$(date -u +%F)
cat <<EOF

==> next steps
  the binary:          $bin
  the HTML report:     $demo/lake/reports/$date/index.html
  what the lake holds: $bin --lake $demo/lake status
  incidents:           $bin --lake $demo/lake incidents list
  the HTTP API:        $bin --lake $demo/lake serve --listen 127.0.0.1:8765
                       (then GET http://127.0.0.1:8765/v1/anomalies; see the README's "serve")
  your own logs:       $bin --lake $demo/lake --source myapp run --input /var/log/myapp/
EOF
