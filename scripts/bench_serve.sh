#!/usr/bin/env bash
# Load test of `loglake serve` on loopback: scoring throughput and latency.
#
#   scripts/bench_serve.sh [TRAIN_LINES]          (default 200000)
#
# Builds the release binary and the load client (examples/serve_load.rs), trains a lake on an
# HDFS-like file from the shared generator (../shared/peers/make_hdfs_like.py --seed 7), starts
# `loglake serve` on a free loopback port and scores lines of another file from the same
# generator (--seed 8, so the lines are new to the models): batches of 1 line and of 1,000
# lines over 2 keep-alive connections. Prints lines/s and p50/p99 latency for each, and the
# server's peak RSS. Bounded: a fixed number of requests; everything is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
train_lines=${1:-200000}
shared=$(realpath ../shared)

cargo build --release --quiet
cargo build --release --quiet --example serve_load
target=$(realpath "${CARGO_TARGET_DIR:-target}")
bin="$target/release/loglake"
load="$target/release/examples/serve_load"
work=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 "$shared/peers/make_hdfs_like.py" --lines "$train_lines" --seed 7 --out "$work/train.log" \
  --labels "$work/train.csv" >/dev/null
python3 "$shared/peers/make_hdfs_like.py" --lines 100000 --seed 8 --out "$work/score.log" \
  --labels "$work/score.csv" >/dev/null
RUST_LOG=warn "$bin" --lake "$work/lake" --source hdfs --date 2026-11-21 run --to 04-train \
  --input "$work/train.log" --format hdfs --session-key 'blk_-?\d+' >/dev/null

LOGLAKE__SOURCES__HDFS__FORMAT=hdfs RUST_LOG=warn /usr/bin/time -f '%M' -o "$work/rss" \
  "$bin" --lake "$work/lake" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '[0-9]*$' "$work/serve.out")

echo "== loglake serve: $(nproc) cores, trained on $train_lines HDFS-like lines, scoring new ones"
"$load" "$port" hdfs "$work/score.log" 1 20000 2
"$load" "$port" hdfs "$work/score.log" 1000 2000 2
kill -TERM "$(pgrep -P "$server")"
wait "$server" || true
server=""
echo "server peak RSS: $(( $(cat "$work/rss") / 1024 )) MiB"
