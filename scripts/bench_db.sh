#!/usr/bin/env bash
# 05-detect's database writes for a batch of N anomalies (default 50,000): first write, a
# re-run updating every row, a re-run replacing every row (all earlier rows stale). On the
# embedded SQLite file, and on PostgreSQL when DATABASE_URL (or TEST_DATABASE_URL) is set.
#
#   scripts/bench_db.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000}
cargo build --release --quiet --example db_write
bin=${CARGO_TARGET_DIR:-target}/release/examples/db_write
echo "== SQLite, $n anomalies"
"$bin" "$n"
url=${DATABASE_URL:-${TEST_DATABASE_URL:-}}
if [ -n "$url" ]; then
  echo "== PostgreSQL, $n anomalies"
  "$bin" "$n" "$url"
fi
