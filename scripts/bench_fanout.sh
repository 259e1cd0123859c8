#!/usr/bin/env bash
# A day in shards on an object-storage lake, with 1 worker and then with W workers: the
# shards' 01-bronze and 02-silver run W at a time (separate processes, as Airflow workers run
# them), then 03-gold..05-detect once for the day. Prints each phase's wall-clock time per
# worker count and the speed-up of the shard phase.
#
# Usage: scripts/bench_fanout.sh [LINES] [SHARDS] [WORKERS...]     (default 2000000 4 1 2)
# Needs: FANOUT_LAKE=s3://bucket (an existing bucket) with the AWS_* variables of its server,
#        LOGLAKE__DATABASE__URL=postgres://… (the writers' leases and the anomalies).
# The input is the peer's HDFS-like workload (../shared/peers/make_hdfs_like.py).
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-2000000}
shards=${2:-4}
shift $(( $# > 2 ? 2 : $# ))
workers=("$@")
[ ${#workers[@]} -gt 0 ] || workers=(1 2)
# The HDFS-like lines are of 2008: silver warns that they are far from the batch date.
export RUST_LOG="${RUST_LOG:-error}"
: "${FANOUT_LAKE:?an S3 bucket, s3://…, with its AWS_* variables}"
: "${LOGLAKE__DATABASE__URL:?a PostgreSQL URL for the leases and anomalies}"

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/loglake"
work=$(mktemp -d /tmp/loglake-bench-fanout.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 ../shared/peers/make_hdfs_like.py --lines "$lines" --seed 7 --out "$work/day.log" \
  --labels "$work/labels.csv" >/dev/null
split -n l/"$shards" -d --additional-suffix=.log "$work/day.log" "$work/shard-"
echo "bench-fanout: $lines lines in $shards shards; $(nproc) cores; $("$bin" --version)"

now() { date +%s.%N; }
for w in "${workers[@]}"; do
  lake="${FANOUT_LAKE%/}/bench-fanout-$$-w$w"
  source="w$w"
  export "LOGLAKE__SOURCES__W${w}__FORMAT=hdfs" "LOGLAKE__SOURCES__W${w}__SESSION_KEY=blk_-?\\d+"
  ll() { "$bin" --lake "$lake" --source "$source" --date 2026-11-20 "$@" >/dev/null; }
  ll 00-init
  t0=$(now)
  for stage in 01-bronze 02-silver; do
    for f in "$work"/shard-*.log; do
      name=$(basename "$f" .log)
      if [ "$stage" = 01-bronze ]; then echo "$name --input $f"; else echo "$name"; fi
    done | xargs -P "$w" -L 1 sh -c '"$0" --lake "$1" --source "$2" --date 2026-11-20 "$3" --shard "$4" ${5:+"$5" "$6"} >/dev/null' \
      "$bin" "$lake" "$source" "$stage"
  done
  t1=$(now)
  ll run --from 03-gold --to 05-detect
  t2=$(now)
  printf 'bench-fanout: %s worker(s): shards (01-bronze + 02-silver) %.2f s, 03-gold..05-detect %.2f s, day %.2f s\n' \
    "$w" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t2 - $t0" | bc)"
  eval "shard_s_$w=$(echo "$t1 - $t0" | bc)"
done
if [ ${#workers[@]} -ge 2 ]; then
  first=${workers[0]} last=${workers[-1]}
  a=$(eval echo "\$shard_s_$first") b=$(eval echo "\$shard_s_$last")
  printf 'bench-fanout: shard phase speed-up, %s workers over %s: %.2fx\n' "$last" "$first" "$(echo "$a / $b" | bc -l)"
fi
