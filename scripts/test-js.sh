#!/usr/bin/env bash
# The JS client's node --test suites (part of make test), the way scripts/test-dotnet.sh runs the xunit suites:
# every file runs once; a file with a failed test is run once more, alone, to tell a broken feature (fails again:
# the run fails) from a timing-sensitive test that lost a race on a loaded machine (passes alone: named under
# "FLAKY" at the end, so it is seen and fixed, and the run goes on). The first run's failures are printed in full.
# Usage (from clients/js): ../../scripts/test-js.sh TIMEOUT_MS FILE... (NATS_SERVER_BIN, CHROMIUM_BIN and
# BRIDGE_WORKER_DLL set by the caller).
set -uo pipefail
timeout_ms="$1"
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

node --test --test-concurrency=1 --test-timeout="$timeout_ms" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && exit 0

# The files of the failed tests: a failure's TAP block names its location (file:line:column), once each.
mapfile -t failed < <(grep -oE "^ *location: '[^']*\.test\.mjs" "$log" | sed -E "s/^ *location: '//" | sort -u)
if [ "${#failed[@]}" -eq 0 ]; then
  echo "node --test failed (exit $rc) without a failed test's location (a file that did not load?)." >&2
  exit "$rc"
fi

printf '\n== %d file(s) with failed tests; each runs once more, alone:\n' "${#failed[@]}"
printf '   %s\n' "${failed[@]}"
rerun=0
for file in "${failed[@]}"; do
  node --test --test-timeout="$timeout_ms" "$file" || rerun=$?
done

printf '\n== First run failures (details above, "not ok" lines):\n'
grep -E '^ *not ok ' "$log" | sed 's/^ */   /'
if [ "$rerun" -ne 0 ]; then
  echo "== FAILED: at least one of them failed again when run alone." >&2
  exit "$rerun"
fi
echo "== FLAKY (failed in the full run, passed alone; fix them): ${failed[*]}"
exit 0
