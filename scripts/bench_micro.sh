#!/usr/bin/env bash
# What a day costs run as micro-batches against the same day run once.
#
#   scripts/bench_micro.sh [LINES] [STEPS...]     (default 400000 lines, 24 and 288 steps;
#                                                 LOGLAKE_BIN: the binary, default the
#                                                 release build, built here)
#
# Generates two days of shop logs (seed 3): yesterday and today (UTC), so that today is
# open as it is in production — its windows and sessions close as its event time passes
# them (`[gold] allowed_lateness_minutes`, `session_idle_minutes`), the day itself only after
# midnight. Yesterday is run whole (all stages, 04-train included), so the models are frozen
# from the day before. Then, on copies of that lake:
# - whole: today's file ingested once, then 01-bronze, 02-silver, 03-gold, 05-detect;
# - micro N: the same file growing in N equal steps, those four stages after each step, and
#   one round more that finds nothing new.
# Prints the CPU seconds (user + system, all child processes) of each way per stage, the
# ratio micro / whole, the cost of the round with nothing new (four stage commands, and one
# `run --from 01-bronze --to 05-detect`), the cost of the N steps each run as that one
# command (the anomalies of the last run, with nothing more to close, compared as well), and
# whether the anomalies
# (detector, granularity, entity, score, provisional) are the same. Do not run it across
# midnight UTC: the day would close half-way.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-400000}
shift || true
steps=("${@:-24 288}")
read -r -a steps <<<"${steps[*]}"
if [ -z "${LOGLAKE_BIN:-}" ]; then
  cargo build --release --quiet
  LOGLAKE_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/loglake")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUST_LOG=error LOGLAKE__SOURCES__SHOP__FORMAT=generator LOGLAKE__SOURCES__SHOP__SESSION_KEY='req=(\S+)'
yesterday=$(date -u -d yesterday +%F)
today=$(date -u +%F)
"$LOGLAKE_BIN" --source shop generate --out "$work/raw" --days 2 --start-date "$yesterday" --lines-per-day "$lines" --seed 3 >/dev/null
"$LOGLAKE_BIN" --lake "$work/trained" --source shop --date "$yesterday" run \
  --input "$work/raw/logs/shop-$yesterday.log" >/dev/null

python3 - "$LOGLAKE_BIN" "$work" "$today" "${steps[@]}" <<'PY'
import datetime, os, resource, shutil, sqlite3, subprocess, sys

binary, work, day, steps = sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]]
log = f"{work}/raw/logs/shop-{day}.log"
stages = ["01-bronze", "02-silver", "03-gold", "05-detect"]

def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def run(lake, stage, source_file, env, spent):
    args = [binary, "--lake", lake, "--source", "shop", "--date", day, stage]
    if stage == "01-bronze":
        args += ["--input", source_file]
    before = cpu()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    spent[stage] = spent.get(stage, 0.0) + cpu() - before

def anomalies(lake):
    db = sqlite3.connect(f"{lake}/loglake.db")
    rows = db.execute(
        "select detector, granularity, entity_key, round(score, 9), provisional from anomalies "
        "where batch_date = ? order by 1, 2, 3, 4", (day,)).fetchall()
    db.close()
    return sorted(rows)

def fresh(name):
    lake = f"{work}/{name}"
    shutil.copytree(f"{work}/trained", lake)
    return lake

# Both ways read the day from the same path (an event's anomaly names its file).
live = f"{work}/live/shop.log"
os.makedirs(f"{work}/live", exist_ok=True)

# The day whole, as a run at the end of the day's events finds it.
shutil.copyfile(log, live)
whole_lake, whole = fresh("whole"), {}
env = dict(os.environ)
for stage in stages:
    run(whole_lake, stage, live, env, whole)
total_whole = sum(whole.values())
expected = anomalies(whole_lake)
print(f"day of {sum(1 for _ in open(log))} lines, whole: {total_whole:.2f} CPU s  "
      + "  ".join(f"{s} {v:.2f}" for s, v in whole.items()))

lines = open(log, "rb").read().splitlines(keepends=True)
for n in steps:
    lake, spent, idle = fresh(f"micro{n}"), {}, {}
    per = -(-len(lines) // n)
    with open(live, "wb") as out:
        for k in range(0, len(lines), per):
            out.write(b"".join(lines[k:k + per]))
            out.flush()
            for stage in stages:
                run(lake, stage, live, env, spent)
    for stage in stages:
        run(lake, stage, live, env, idle)
    # The same, as one `run` command (what cron runs every few minutes).
    before = cpu()
    subprocess.run([binary, "--lake", lake, "--source", "shop", "--date", day, "run",
                    "--from", "01-bronze", "--to", "05-detect", "--input", live],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    idle_run = cpu() - before
    total = sum(spent.values())
    found = anomalies(lake)
    # The same steps, each as one `run` command (what cron runs every few minutes): one
    # process a step instead of four.
    one_lake = fresh(f"run{n}")
    os.remove(live)
    before = cpu()
    with open(live, "wb") as out:
        for k in range(0, len(lines), per):
            out.write(b"".join(lines[k:k + per]))
            out.flush()
            subprocess.run([binary, "--lake", one_lake, "--source", "shop", "--date", day, "run",
                            "--from", "01-bronze", "--to", "05-detect", "--input", live],
                           check=True, stdout=subprocess.DEVNULL, env=env)
    one_run = cpu() - before
    same_one = anomalies(one_lake) == expected
    same = found == expected
    final = sum(1 for a in found if not a[4])
    print(f"{n} micro-batches: {total:.2f} CPU s = {total / total_whole:.1f}x the day whole  "
          + "  ".join(f"{s} {spent[s]:.2f} ({spent[s] / whole[s]:.1f}x)" for s in stages))
    print(f"  a round with nothing new: {sum(idle.values()) * 1000:.0f} ms CPU ("
          + ", ".join(f"{s} {v * 1000:.0f}" for s, v in idle.items())
          + f"; as one `run` command {idle_run * 1000:.0f} ms"
          + f"); anomalies ({len(found)}, {final} final) the same as the day whole's "
          + f"({len(expected)}): " + ("yes" if same else "NO"))
    print(f"  each step as one `run` command: {one_run:.2f} CPU s = {one_run / total_whole:.1f}x "
          + "the day whole; anomalies the same: " + ("yes" if same_one else "NO"))
if datetime.datetime.now(datetime.timezone.utc).date().isoformat() != day:
    print(f"midnight UTC passed during the run: {day} closed half-way, the figures do not hold")
PY
