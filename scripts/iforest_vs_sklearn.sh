#!/usr/bin/env bash
# Isolation forest: loglake's vs scikit-learn's, ROC-AUC on the same labelled matrix.
#
# Builds the HDFS session × template count matrix from a loglake run on the real HDFS sample
# (the matrix loglizer's isolation forest uses), then scores it with scikit-learn's
# IsolationForest(random_state=seed) and with loglake's forest for the same seeds, and prints
# both means. scikit-learn lives in its own virtualenv (created on first use under
# ${LOGLAKE_BENCH_VENV:-$HOME/.cache/loglake-bench-venv}); this script is not part of CI.
#
# Usage: scripts/iforest_vs_sklearn.sh [HDFS.log anomaly_label.csv]
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-../shared/data/hdfs-sessions-dev/HDFS.log}
LABELS=${2:-../shared/data/hdfs-sessions-dev/anomaly_label.csv}
SEEDS=(1 2 3 4 5 6 7 8 9 10)
VENV=${LOGLAKE_BENCH_VENV:-$HOME/.cache/loglake-bench-venv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet scikit-learn pyarrow numpy
fi

cargo build --release --quiet --bin loglake --example iforest_auc
./target/release/loglake --lake "$WORK/lake" run --to 03-gold \
    --input "$LOG" --format hdfs --session-key 'blk_-?\d+' >/dev/null

"$VENV/bin/python" - "$WORK/lake" "$LABELS" "$WORK/matrix.csv" <<'PY'
import csv, sys
import pyarrow.dataset as ds
lake, labels_path, out = sys.argv[1:4]
counts = ds.dataset(f"{lake}/gold/session_template_counts", format="parquet",
                    partitioning="hive").to_table(columns=["session_key", "template_id", "count"])
labels = {r["BlockId"]: r["Label"] == "Anomaly" for r in csv.DictReader(open(labels_path))}
rows, templates = {}, set()
for k, t, c in zip(*(counts.column(n).to_pylist() for n in ("session_key", "template_id", "count"))):
    rows.setdefault(k, {})[t] = c
    templates.add(t)
templates = sorted(templates)
with open(out, "w") as f:
    f.write(",".join(templates + ["label"]) + "\n")
    for k in sorted(rows):
        f.write(",".join(str(rows[k].get(t, 0)) for t in templates) + f",{int(labels.get(k, False))}\n")
print(f"matrix: {len(rows)} sessions x {len(templates)} templates, {sum(labels.get(k, False) for k in rows)} anomalous")
PY

"$VENV/bin/python" - "$WORK/matrix.csv" "${SEEDS[@]}" <<'PY'
import sys
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
m = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
x, y = m[:, :-1], m[:, -1]
aucs = []
for seed in map(int, sys.argv[2:]):
    f = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(x)
    aucs.append(roc_auc_score(y, -f.score_samples(x)))
    print(f"scikit-learn seed {seed} roc_auc {aucs[-1]:.4}")
print(f"scikit-learn mean roc_auc {np.mean(aucs):.4f}")
PY

./target/release/examples/iforest_auc "$WORK/matrix.csv" "${SEEDS[@]}" | tee "$WORK/ours.txt" | sed 's/^/loglake      /'
awk '{s += $4; n++} END {printf "loglake      mean roc_auc %.4f\n", s / n}' "$WORK/ours.txt"
