#!/usr/bin/env bash
# Do two builds find the same anomalies? For refactors that must not change behaviour.
#
#   scripts/same_output.sh BASELINE_BIN [CANDIDATE_BIN] [DATA_DIR]
#
# Runs both binaries through every stage on the same inputs — the HDFS session data, a
# generated 2-day set (seed 7, 60,000 lines a day) and the eight loghub 2k samples — and
# compares, row for row, the `anomalies` table (SQLite) and the scores table of each lake
# (`gold/scores`, or `detections/scores` since that layer exists). Columns that differ on
# every run by design are left out: `run_id` and `detected_at`. A model version
# is `<train_to>-<hash of the model file>`, so it is compared by its date only when
# LOGLAKE_SAME_VERSION_HASH=0 (a change to what the model file stores, not to what it
# decides, changes the hash). Prints one line per input and exits non-zero on any difference,
# leaving the two dumps in the work folder for `diff`.
#
# Reading Parquet needs pyarrow: it is taken from the Python peer's virtualenv
# (${LOGLAKE_PEER_VENV:-~/.cache/loglake-peer-venv}), created on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BASELINE_BIN [CANDIDATE_BIN] [DATA_DIR]" >&2; exit 2; }
old=$(realpath "$1")
new=$(realpath "${2:-${CARGO_TARGET_DIR:-target}/release/loglake}")
data=$(realpath "${3:-../shared/data}")
venv=${LOGLAKE_PEER_VENV:-$HOME/.cache/loglake-peer-venv}
if ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pyarrow
fi
work=$(realpath -m "${WORK:-$(mktemp -d)}")
mkdir -p "$work"
echo "work folder: $work"
export RUST_LOG=warn
date=2026-11-21

# The rows of one lake, normalised: sorted, without per-run columns.
dump() { # lake source out
  [ -f "$1/loglake.db" ] || { : >"$3.anomalies.tsv"; : >"$3.scores.tsv"; echo 0; return; }
  sqlite3 -separator $'\t' "$1/loglake.db" \
    "SELECT anomaly_id, source, batch_date, granularity, entity_key, window_start, window_end,
            detector, score, threshold, severity, reason, details,
            CASE WHEN '${LOGLAKE_SAME_VERSION_HASH:-1}' = '0' THEN substr(model_version, 1, 8)
                 ELSE model_version END,
            incident_id
     FROM anomalies ORDER BY anomaly_id" >"$3.anomalies.tsv"
  "$venv/bin/python" - "$1" "$2" "$3.scores.tsv" <<'EOF'
import glob, sys
import pyarrow.parquet as pq
lake, source, out = sys.argv[1:]
rows = []
for layer in ("gold", "detections"):
    for f in sorted(glob.glob(f"{lake}/{layer}/scores/source={source}/date=*/*.parquet")):
        t = pq.read_table(f).to_pylist()
        for r in t:
            rows.append("\t".join(str(r[k]) for k in sorted(r) if k not in ("source", "date")))
rows.sort()
with open(out, "w") as fh:
    fh.write("\n".join(rows))
print(len(rows))
EOF
}

run_both() { # name source args...
  local name=$1 source=$2; shift 2
  for which in old new; do
    local bin=$old; [ "$which" = new ] && bin=$new
    rm -rf "$work/$name.$which.lake"
    # A run may fail the same way on both (a 2k sample too small to train on): the exit code
    # and the error line are part of what is compared.
    # From the work folder, where no config/loglake.toml is: both builds run on their own
    # defaults (the shipped file repeats them), whatever its format in this checkout.
    local code=0
    (cd "$work" && "$bin" --lake "$work/$name.$which.lake" --source "$source" --date "$date" run "$@") \
      >"$work/$name.$which.log" 2>&1 || code=$?
    dump "$work/$name.$which.lake" "$source" "$work/$name.$which" >"$work/$name.$which.nscores"
    { echo "exit $code"; grep '^loglake: error' "$work/$name.$which.log" || true; } \
      >>"$work/$name.$which.anomalies.tsv"
  done
  local a s
  a=$(($(wc -l <"$work/$name.old.anomalies.tsv") - 1))
  s=$(cat "$work/$name.old.nscores")
  if cmp -s "$work/$name.old.anomalies.tsv" "$work/$name.new.anomalies.tsv" &&
     cmp -s "$work/$name.old.scores.tsv" "$work/$name.new.scores.tsv"; then
    printf '%-12s same: %6s anomalies, %8s scores\n' "$name" "$a" "$s"
  else
    printf '%-12s DIFFERENT (anomalies %s vs %s, scores %s vs %s)\n' "$name" \
      "$a" "$(($(wc -l <"$work/$name.new.anomalies.tsv") - 1))" "$s" "$(cat "$work/$name.new.nscores")"
    status=1
  fi
}

status=0
run_both hdfs hdfs --input "$data/hdfs-sessions-dev/HDFS.log" --format hdfs --session-key 'blk_-?\d+'
"$old" generate --out "$work/generated" --days 2 --start-date 2026-11-20 --lines-per-day 60000 \
  --seed 7 >/dev/null
run_both generated app --input "$work/generated/logs" --format generator --session-key 'req=(\S+)' \
  --labels "$work/generated/labels.jsonl"
for set in Apache HDFS HealthApp Linux Mac OpenSSH Spark Zookeeper; do
  lower=$(echo "$set" | tr '[:upper:]' '[:lower:]')
  run_both "$set" "$lower" --input "$data/loghub-2k/$set/${set}_2k.log" --format "$lower"
done
[ "$status" = 0 ] && echo "same output on every input" || echo "outputs differ: compare the .tsv files in $work"
exit "$status"
