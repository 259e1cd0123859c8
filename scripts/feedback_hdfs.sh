#!/usr/bin/env bash
# Operator feedback measured on the real HDFS dev sessions (../shared/data/hdfs-sessions-dev).
#
#   scripts/feedback_hdfs.sh
#
# Runs the pipeline up to 05-detect on HDFS.log; takes the first five sessions the ensemble
# flags (by session start) whose label is Normal — the false alarms an operator would meet
# first — and marks each `loglake anomalies mark ID --normal`; re-runs 05-detect (the verdicts
# suppress), then 04-train and 05-detect (the models learn them). Prints the ensemble's
# precision, recall and F1 on the sessions that start after the fifth marked one, at each step. Labels are read only here, to pick the five and to score: no
# detector reads them. Work files go to a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath ../shared/data/hdfs-sessions-dev)
cargo build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ll() { RUST_LOG=warn "$bin" --lake "$work/lake" --source hdfs --date 2026-11-21 "$@"; }
ll run --to 05-detect --input "$data/HDFS.log" --format hdfs --session-key 'blk_-?\d+' >/dev/null

# Score the ensemble's session anomalies in the database against the labels; with "pick",
# also print the ids of the first five false alarms and the cutoff after them.
evaluate() { # what db labels log [cutoff]
  python3 - "$@" <<'PY'
import csv, json, re, sqlite3, sys
what, db, labels, log = sys.argv[1:5]
label = {r["BlockId"]: r["Label"] == "Anomaly" for r in csv.DictReader(open(labels))}
first = {}  # session -> line of its first appearance: sessions in time order
for n, line in enumerate(open(log, errors="replace")):
    for b in re.findall(r"blk_-?\d+", line):
        first.setdefault(b, n)
rows = sqlite3.connect(db).execute(
    "SELECT anomaly_id, entity_key, details LIKE '%suppressed_by%' FROM anomalies "
    "WHERE granularity = 'session' AND detector = 'ensemble'").fetchall()
rows.sort(key=lambda r: (first.get(r[1], 1 << 60), r[0]))
if what == "pick":
    false_alarms = [r for r in rows if not label.get(r[1], False)][:5]
    cutoff = first[false_alarms[-1][1]]
    print(json.dumps({"ids": [r[0] for r in false_alarms], "cutoff": cutoff}))
    sys.exit()
cutoff = int(sys.argv[5])
after = {b for b, n in first.items() if n > cutoff and b in label}
flagged = {r[1] for r in rows if not r[2] and r[1] in after}
positives = {b for b in after if label[b]}
tp = len(flagged & positives)
p = tp / len(flagged) if flagged else 0.0
r = tp / len(positives) if positives else 0.0
f1 = 2 * p * r / (p + r) if p + r else 0.0
print(f"{what:<6} sessions after the 5th marked: {len(after)} ({len(positives)} anomalous); "
      f"flagged {len(flagged)}, true {tp}, false {len(flagged) - tp}: "
      f"precision {p:.4f} recall {r:.4f} F1 {f1:.4f}")
PY
}
picked=$(evaluate pick "$work/lake/loglake.db" "$data/anomaly_label.csv" "$data/HDFS.log")
cutoff=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cutoff"])' "$picked")
evaluate before "$work/lake/loglake.db" "$data/anomaly_label.csv" "$data/HDFS.log" "$cutoff"
for id in $(python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])["ids"]))' "$picked"); do
  ll anomalies mark "$id" --normal --by feedback_hdfs --note "first false alarms" >/dev/null
done
ll 05-detect | sed -n 's/.*\(; [0-9]* suppressed[^;]*\).*/05-detect\1/p'
evaluate after "$work/lake/loglake.db" "$data/anomaly_label.csv" "$data/HDFS.log" "$cutoff"
# Then 04-train learns the verdicts (accepted ways of breaking invariants, routine
# templates) and 05-detect scores with the new models, suppression still on.
ll 04-train >/dev/null
ll 05-detect | sed -n 's/.*\(; [0-9]* suppressed[^;]*\).*/05-detect\1/p'
evaluate learnt "$work/lake/loglake.db" "$data/anomaly_label.csv" "$data/HDFS.log" "$cutoff"
