#!/usr/bin/env bash
# Kill loglake at random points and check that the next run recovers to exactly the result of
# a clean run.
#
#   scripts/fault_injection.sh [TRIALS]        (default 10 per kind)
#
# Environment: LOGLAKE_BIN (default: the release build, built here), LINES (generated lines,
# default 20000), FAULT_DATABASE_URL (a PostgreSQL URL: the trials then write there instead of
# each lake's SQLite file; its password never shows, loglake scrubs it), FAULT_LAKE_URL
# (s3://bucket/prefix, with the AWS_* variables of its server: every lake in the bucket; needs
# FAULT_DATABASE_URL).
#
# Kinds of trial, TRIALS of each:
#   run        `loglake run` killed (-9) at a random moment, then `run` again;
#   01..05     the stages before it run cleanly, the stage killed at a random moment within
#              its clean duration (after the process's start-up), then `run --from` it;
#   concurrent two `run`s started together on one lake (the second waits for the lock);
#   inputs     a corrupt gzip, an empty file and a link to /dev/zero beside the good input;
#   disk-full  as root only: the lake on a tmpfs of 7 sizes, then moved to a roomy disk.
# After each, the lake's table row counts (06-report) and the anomalies (granularity, entity,
# detector, score, severity; ids differ by source) are compared with a clean reference run.
# Prints one line per kind and exits non-zero on any mismatch, keeping the dumps.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-10}
lines=${LINES:-20000}
db_url=${FAULT_DATABASE_URL:-}
# FAULT_LAKE_URL=s3://bucket/prefix: every lake in the bucket (with the AWS_* variables of its
# server) instead of on disk; needs FAULT_DATABASE_URL, as a lake on object storage does.
lake_url=${FAULT_LAKE_URL:+${FAULT_LAKE_URL%/}/fault-$$}
[ -z "$lake_url" ] || [ -n "$db_url" ] || { echo "FAULT_LAKE_URL needs FAULT_DATABASE_URL" >&2; exit 1; }
if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --release --quiet
  LOGLAKE_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
fi
bin=$LOGLAKE_BIN
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }
[ -z "$db_url" ] || command -v psql >/dev/null || { echo "needs psql for FAULT_DATABASE_URL" >&2; exit 1; }
work=$(mktemp -d)
keep=0
trap 'umount "$work/mnt" 2>/dev/null || true; [ "$keep" = 1 ] || rm -rf "$work"' EXIT
date=2026-11-20
"$bin" generate --out "$work/raw" --days 1 --start-date "$date" --lines-per-day "$lines" \
  --seed 3 --source shop >/dev/null
export RUST_LOG=error
[ -z "$db_url" ] || export LOGLAKE__DATABASE__URL="$db_url"

# Where the lake named $1 lives: a folder of the work area, or a prefix of the bucket.
lake_of() { if [ -n "$lake_url" ]; then echo "$lake_url/$1"; else echo "$work/$1"; fi; }

# loglake on lake $1 with source $2, then the rest of the arguments. The source's format and
# session key are its settings (as `[sources.<name>]` in a config file), read by every stage.
ll() {
  local lake=$1 source=$2; shift 2
  env "LOGLAKE__SOURCES__${source^^}__FORMAT=generator" \
    "LOGLAKE__SOURCES__${source^^}__SESSION_KEY=req=(\S+)" \
    "$bin" --lake "$lake" --source "$source" --date "$date" "$@"
}

# What a lake holds, without what differs by design between runs (run ids, times, source).
dump() { # lake source out
  ll "$1" "$2" 06-report 2>/dev/null | grep -E '^  [a-z_]+/[a-z_]+ +[0-9]+$' >"$3" || true
  # The reference is in the same database as the trials, so values print alike.
  local sql="SELECT granularity, entity_key, window_start, detector, score, severity
             FROM anomalies WHERE source = '$2' ORDER BY 1, 2, 3, 4"
  if [ -n "$db_url" ]; then
    psql "$db_url" -qAt -F $'\t' -c "$sql" >>"$3"
  else
    sqlite3 -separator $'\t' "$1/loglake.db" "$sql" >>"$3"
  fi
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# Start loglake in the background, kill -9 it after a random delay of $1 ms plus up to $2 ms.
kill_after_random() { # min_ms span_ms lake source args...
  local min=$1 span=$2; shift 2
  ll "$@" >/dev/null 2>&1 &
  local pid=$!
  local delay=$(( min + (RANDOM * 32768 + RANDOM) % (span > 0 ? span : 1) ))
  sleep "$(awk -v d="$delay" 'BEGIN {printf "%.3f", d / 1000}')"
  kill -9 "$pid" 2>/dev/null || true
  local code=0
  wait "$pid" 2>/dev/null || code=$?
  # 137: it died of the kill (rather than finishing first).
  [ "$code" = 137 ] && hits=$((hits + 1))
  return 0
}

input="$work/raw/logs"
t0=$(now_ms)
ll "$(lake_of ref)" ref run --input "$input" >/dev/null
run_ms=$(( $(now_ms) - t0 ))
dump "$(lake_of ref)" ref "$work/ref.txt"
[ -s "$work/ref.txt" ] || { echo "the reference run left nothing to compare" >&2; keep=1; exit 1; }
# Each stage's clean duration, from the reference's pipeline_runs.
stage_ms() {
  if [ -n "$db_url" ]; then
    psql "$db_url" -qAt -c "SELECT max(duration_ms) FROM pipeline_runs WHERE source = 'ref' AND stage = '$1'"
  else
    sqlite3 "$work/ref/loglake.db" "SELECT max(duration_ms) FROM pipeline_runs WHERE stage = '$1'"
  fi
}

# A command's start-up before its stage begins (lock, database, migrations): a stage is
# killed this long after it is started, plus a random part of its own duration.
t0=$(now_ms)
ll "$(lake_of ref)" ref 00-init >/dev/null
startup_ms=$(( $(now_ms) - t0 ))

status=0
n=0
check() { # kind lake source
  n=$((n + 1))
  dump "$2" "$3" "$work/trial-$n.txt"
  if cmp -s "$work/ref.txt" "$work/trial-$n.txt"; then
    [ -n "$lake_url" ] || rm -rf "$2"
    return 0
  fi
  echo "MISMATCH in $1 trial $n: diff $work/ref.txt $work/trial-$n.txt" >&2
  status=1
  keep=1
  return 1
}

report() { # kind ok total [killed mid-run]
  printf '%-10s %4s of %4s recovered to the reference' "$1" "$2" "$3"
  [ -n "${4:-}" ] && printf ' (%s killed mid-run, the rest had finished)' "$4"
  printf '\n'
}

ok=0 hits=0
for i in $(seq "$trials"); do
  lake=$(lake_of "run-$i") source="run$i"
  kill_after_random 0 "$run_ms" "$lake" "$source" run --input "$input"
  ll "$lake" "$source" run --input "$input" >/dev/null
  check run "$lake" "$source" && ok=$((ok + 1))
done
report run "$ok" "$trials" "$hits"

prev=00-init
for stage in 01-bronze 02-silver 03-gold 04-train 05-detect; do
  ms=$(stage_ms "$stage"); ms=${ms:-100}
  ok=0 hits=0
  for i in $(seq "$trials"); do
    lake=$(lake_of "$stage-$i") source="s${stage%%-*}t$i"
    ll "$lake" "$source" run --to "$prev" --input "$input" >/dev/null
    extra=(); [ "$stage" = 01-bronze ] && extra=(--input "$input")
    kill_after_random "$startup_ms" "$ms" "$lake" "$source" "$stage" "${extra[@]}"
    ll "$lake" "$source" run --from "$stage" --input "$input" >/dev/null
    check "$stage" "$lake" "$source" && ok=$((ok + 1))
  done
  report "$stage" "$ok" "$trials" "$hits"
  prev=$stage
done

ok=0
for i in $(seq "$trials"); do
  lake=$(lake_of "concurrent-$i") source="c$i"
  ll "$lake" "$source" --on-locked wait run --input "$input" >/dev/null 2>&1 &
  a=$!
  ll "$lake" "$source" --on-locked wait run --input "$input" >/dev/null 2>&1 &
  b=$!
  wait "$a" && wait "$b" || { echo "a concurrent run failed (trial $i)" >&2; status=1; keep=1; continue; }
  check concurrent "$lake" "$source" && ok=$((ok + 1))
done
report concurrent "$ok" "$trials"

# Bad inputs beside the good ones: a gzip corrupt at a random place of its middle half, an
# empty file, a link to /dev/zero. None may change what the lake holds or finds, the run must
# succeed, and each must be named in quarantine/inputs (the empty file is nothing to do).
ok=0
for i in $(seq "$trials"); do
  lake=$(lake_of "inputs-$i") source="in$i" bad="$work/bad-inputs-$i"
  mkdir -p "$bad"
  gzip -c "$input"/*.log >"$bad/broken.log.gz"
  size=$(stat -c %s "$bad/broken.log.gz")
  at=$(( size / 4 + (RANDOM * 32768 + RANDOM) % (size / 2) ))
  head -c 64 /dev/urandom | dd of="$bad/broken.log.gz" bs=1 seek="$at" conv=notrunc status=none
  : >"$bad/empty.log"
  ln -s /dev/zero "$bad/zeros.log"
  if ! ll "$lake" "$source" run --input "$input" --input "$bad" >"$work/inputs.out" 2>"$work/inputs.err"; then
    echo "bad inputs failed the run (trial $i): $(tail -1 "$work/inputs.err")" >&2
    status=1 keep=1
    continue
  fi
  grep -q "2 file(s) or folder entries could not be read" "$work/inputs.out" ||
    { echo "the corrupt gzip and the device were not both reported (trial $i)" >&2; status=1; keep=1; }
  check inputs "$lake" "$source" && ok=$((ok + 1))
done
report inputs "$ok" "$trials"

# A full disk: the lake on a small tmpfs (needs root to mount; skipped otherwise). The run
# must fail naming the full disk, leave no partial partition, and once the lake is moved to
# a disk with room, a re-run must reach the reference.
full_sizes=(128k 256k 512k 1m 2m 4m 8m)
if [ -n "$lake_url" ]; then
  echo "disk-full  skipped (the lake is in a bucket)"
elif [ "$(id -u)" = 0 ] && mkdir -p "$work/mnt" && mount -t tmpfs -o size=1m tmpfs "$work/mnt" 2>/dev/null; then
  umount "$work/mnt"
  ok=0 full=0
  for size in "${full_sizes[@]}"; do
    mount -t tmpfs -o "size=$size" tmpfs "$work/mnt"
    source="full$size"
    if ! ll "$work/mnt/lake" "$source" run --input "$input" >/dev/null 2>"$work/full.err"; then
      full=$((full + 1))
      if ! grep -q "is full" "$work/full.err"; then
        echo "disk full at $size without saying so: $(tail -1 "$work/full.err")" >&2
        status=1 keep=1
      fi
    fi
    lake="$work/moved-$size"
    cp -a "$work/mnt/lake" "$lake" 2>/dev/null || mkdir -p "$lake"
    umount "$work/mnt"
    ll "$lake" "$source" run --input "$input" >/dev/null
    check disk-full "$lake" "$source" && ok=$((ok + 1))
  done
  printf '%-10s %4s of %4s recovered to the reference (%s ran out of space)\n' disk-full "$ok" "${#full_sizes[@]}" "$full"
else
  echo "disk-full  skipped (mounting a tmpfs needs root)"
fi

echo "clean run: ${run_ms} ms, $(wc -l <"$work/ref.txt") reference lines ($(grep -c $'\t' "$work/ref.txt" || true) anomalies)"
[ "$status" = 0 ] && echo "every trial recovered to the reference" || echo "mismatches: dumps kept in $work"
exit "$status"
