#!/usr/bin/env bash
# How long an anomaly takes from the line that shows it to its row in the database, with the
# pipeline run every minute on a file that grows at a steady rate.
#
#   scripts/bench_latency.sh [RATE] [SECONDS] [CADENCE]   (default 20000 lines/s for 600 s,
#                                                          a run every 60 s; LOGLAKE_BIN: the
#                                                          binary, default the release build)
#
# Models come from a generated day (yesterday, 400,000 lines, run whole). A writer then
# appends that day's lines again at RATE lines a second, stamped with the time they are
# written, and every 30 s one line no model has seen (`injected fault <k>`, which the
# rare-template detector flags as it arrives). Every CADENCE seconds, one
# `run --from 01-bronze --to 05-detect` for today's date on the file (the next starts at once
# when a run takes longer). At the end: the delay from each injected line's writing to its
# anomaly's `detected_at` (p50, p99, max; an injection never found counts as missed), and
# each run's wall time and CPU seconds (user + system).
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-20000}
seconds=${2:-600}
cadence=${3:-60}
if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --release --quiet
  LOGLAKE_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUST_LOG=error LOGLAKE__SOURCES__SHOP__FORMAT=generator LOGLAKE__SOURCES__SHOP__SESSION_KEY='req=(\S+)'
yesterday=$(date -u -d yesterday +%F)
"$LOGLAKE_BIN" --source shop generate --out "$work/raw" --days 1 --start-date "$yesterday" --lines-per-day 400000 --seed 3 >/dev/null
"$LOGLAKE_BIN" --lake "$work/lake" --source shop --date "$yesterday" run --to 05-detect \
  --input "$work/raw/logs/shop-$yesterday.log" >/dev/null

python3 - "$LOGLAKE_BIN" "$work" "$rate" "$seconds" "$cadence" "$yesterday" <<'PY'
import datetime as dt, os, resource, sqlite3, subprocess, sys, threading, time

binary, work, rate, seconds, cadence = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
yesterday = sys.argv[6]
pool = [l.split(" ", 1)[1] for l in open(f"{work}/raw/logs/shop-{yesterday}.log")]
os.makedirs(f"{work}/live", exist_ok=True)
path = f"{work}/live/shop.log"
injected = {}  # line number -> wall time written
stop = threading.Event()

def stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

def writer():
    line_no, k, start = 0, 0, time.time()
    next_fault = start + 15
    with open(path, "w") as out:
        while not stop.is_set():
            now = time.time()
            due = int((now - start) * rate) - (line_no - len(injected))
            ts = stamp(now)
            chunk = []
            for _ in range(max(due, 0)):
                chunk.append(f"{ts} {pool[line_no % len(pool)]}")
                line_no += 1
            if now >= next_fault:
                k += 1
                line_no += 1
                chunk.append(f"{ts} ERROR checkout: injected fault {k}: controller reset on bay {k}\n")
                injected[line_no] = now
                next_fault += 30
            out.write("".join(chunk))
            out.flush()
            time.sleep(0.05)

def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

runs = []
def run_once():
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    t0, c0 = time.time(), cpu()
    subprocess.run([binary, "--lake", f"{work}/lake", "--source", "shop", "--date", today,
                    "run", "--from", "01-bronze", "--to", "05-detect", "--input", path],
                   check=True, stdout=subprocess.DEVNULL)
    runs.append((time.time() - t0, cpu() - c0))

thread = threading.Thread(target=writer)
thread.start()
begin = time.time()
next_run = begin + cadence
while time.time() - begin < seconds:
    time.sleep(max(0.0, next_run - time.time()))
    next_run += cadence
    run_once()
stop.set()
thread.join()
run_once()

db = sqlite3.connect(f"{work}/lake/loglake.db")
delays, missed = [], 0
for line_no, written in sorted(injected.items()):
    row = db.execute("select min(detected_at) from anomalies where granularity = 'event' "
                     "and entity_key = ?", (f"{path}:{line_no}",)).fetchone()
    if not row or not row[0]:
        missed += 1
        continue
    found = dt.datetime.fromisoformat(row[0].replace("Z", "+00:00"))
    if found.tzinfo is None:
        found = found.replace(tzinfo=dt.timezone.utc)
    delays.append(found.timestamp() - written)
delays.sort()
pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] if delays else float("nan")
walls = sorted(r[0] for r in runs)
cpus = sorted(r[1] for r in runs)
print(f"{rate} lines/s for {seconds:.0f} s, a run every {cadence:.0f} s: {len(runs)} runs, "
      f"{len(injected)} injected lines, {missed} not found")
print(f"detection delay: p50 {pick(0.5):.1f} s, p99 {pick(0.99):.1f} s, max {pick(1.0):.1f} s "
      f"(bar: cadence + 30 s = {cadence + 30:.0f} s)")
print(f"per run: wall median {walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s; "
      f"CPU median {cpus[len(cpus) // 2]:.1f} s, max {cpus[-1]:.1f} s; "
      f"CPU of the first run {runs[0][1]:.1f} s, of the last {runs[-1][1]:.1f} s")
PY
