#!/usr/bin/env bash
# The README's two commands on a clone with nothing beside it, as a new user runs them:
# clones this repository's HEAD into an empty folder (no ../shared next to it, no config
# of this machine), then runs `./quickstart.sh` and `cargo test` there, and says which failed.
#
#   scripts/fresh_clone.sh            (CARGO_TARGET_DIR, when set, is shared: a warm cache
#                                      makes the builds minutes, not the first build's 25)
#
# CI and the services are left out on purpose (CI, TEST_DATABASE_URL, TEST_S3_LAKE … unset):
# a user's first `cargo test` has none of them, and the tests that need one skip with a word.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/loglake-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone --quiet . "$work/loglake"
cd "$work/loglake"
[ ! -e ../shared ] || { echo "fresh-clone: $work/shared exists; the clone is not alone" >&2; exit 1; }
unset CI TEST_DATABASE_URL TEST_S3_LAKE TEST_KAFKA_BROKERS LOGLAKE_CONFIG LOGLAKE_LAKE LOGLAKE_SOURCE
failed=()
echo "fresh-clone: ./quickstart.sh"
if ! ./quickstart.sh >"$work/quickstart.log" 2>&1; then
  failed+=("./quickstart.sh (log: see below)")
  tail -20 "$work/quickstart.log"
elif ! grep -q "ensemble found" "$work/quickstart.log"; then
  failed+=("./quickstart.sh ran but printed no evaluation")
fi
echo "fresh-clone: cargo test"
if ! cargo test --quiet >"$work/test.log" 2>&1; then
  failed+=("cargo test")
  grep -E "panicked|FAILED|error" "$work/test.log" | head -20
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fresh-clone: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fresh-clone: both commands passed on a clone with nothing beside it"
