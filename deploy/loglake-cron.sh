#!/usr/bin/env bash
# loglake from cron: one batch (yesterday, UTC, unless a date is given), the whole output
# appended to one log file per batch date, and nothing on stdout unless the batch failed — cron
# mails a job's output to MAILTO, so operators get a mail exactly when something needs them.
#
# Usage: loglake-cron.sh [YYYY-MM-DD]
# Env:   LOGLAKE_BIN      loglake binary             (default: loglake on PATH)
#        LOGLAKE_INPUT    raw logs of the batch      (default: /var/log/app/<date>)
#        LOGLAKE_LOG_DIR  where the per-date logs go (default: /var/log/loglake)
#        LOGLAKE_ARGS     extra global flags, e.g. "--source web --config /etc/loglake.toml"
#        LOGLAKE_LOCKED_RETRIES  tries again this many times when the lake is locked (2)
#        LOGLAKE_LOCKED_PAUSE    seconds between those tries (600)
#        plus loglake's own LOGLAKE__SECTION__KEY settings (database URL, lake path, …).
# Exit:  loglake's: 0 done (or nothing to do), 1 failed, 75 the lake stayed locked by another
#        writer (a backfill, say) through every try — cron itself ignores it, but a wrapper
#        such as `chronic` or a monitoring check can use it.
set -uo pipefail

bin="${LOGLAKE_BIN:-loglake}"
batch="${1:-$(date -u -d yesterday +%F)}"
input="${LOGLAKE_INPUT:-/var/log/app/$batch}"
log_dir="${LOGLAKE_LOG_DIR:-/var/log/loglake}"
mkdir -p "$log_dir" || exit 1
log="$log_dir/loglake-$batch.log"

retries="${LOGLAKE_LOCKED_RETRIES:-2}"
pause="${LOGLAKE_LOCKED_PAUSE:-600}"
locked=75 # loglake's exit code when another process holds the lake (EX_TEMPFAIL)

attempt=0
while :; do
  # shellcheck disable=SC2086 # LOGLAKE_ARGS is a list of flags
  (
    echo "=== $(date -u +%FT%TZ) start: $bin ${LOGLAKE_ARGS:-} --date $batch run --html --input $input"
    "$bin" ${LOGLAKE_ARGS:-} --date "$batch" run --html --input "$input"
    status=$?
    echo "=== $(date -u +%FT%TZ) exit $status"
    exit "$status"
  ) >>"$log" 2>&1
  status=$?
  [ "$status" -eq "$locked" ] && [ "$attempt" -lt "$retries" ] || break
  attempt=$((attempt + 1))
  echo "=== lake locked; trying again in ${pause}s (try $((attempt + 1)) of $((retries + 1)))" >>"$log"
  sleep "$pause"
done

if [ "$status" -eq "$locked" ]; then
  echo "loglake batch $batch not run: the lake stayed locked by another writer through $((retries + 1)) tries (exit $status):"
  grep '^loglake: error:' "$log" | tail -n 1
  echo "full log: $log"
elif [ "$status" -ne 0 ]; then
  echo "loglake batch $batch failed (exit $status):"
  grep '^loglake: error:' "$log" | tail -n 1
  echo "full log: $log"
fi
exit "$status"
