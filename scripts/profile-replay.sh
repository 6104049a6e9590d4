#!/usr/bin/env bash
# Profiles the worker while one client replays a room (docs/benchmarks.md, "Profiles behind the misses": replay).
# Runs `Bridge.LoadTests resume --transports TRANSPORT --rounds 12` (a bare ordered consumer, then one client of
# TRANSPORT resuming a room of MESSAGES from since 0, twelve times) in the background, waits for the worker it started
# and for the third round (tiered JIT settled), then collects for 6 s one of:
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled) -> results/replay.perf + report
#   trace     dotnet-trace, sampled thread time (managed stacks)                           -> results/replay.nettrace
#   counters  dotnet-counters System.Runtime                                               -> results/replay-counters.csv
# and prints who used the cores over the window.
# Usage: scripts/profile-replay.sh perf|trace|counters [TRANSPORT json|json-batch|msgpack|msgpack-batch|sse, default json] [MESSAGES, default 100000]
set -euo pipefail

mode="${1:-perf}"
transport="${2:-json}"
messages="${3:-100000}"
seconds=6
name=replay
source "$(dirname "${BASH_SOURCE[0]}")/profile-lib.sh"

log="results/replay-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- resume --messages "$messages" --rounds 12 --transports "$transport" \
  --rooms 1 --per-room 1 >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

# The status line is printed every few seconds, so a given round may never show: any round from the third on.
profile_wait_worker "$log" 'replay \([3-9]\|1[0-2]\)/12'
echo "profile-replay: worker $pid, $transport, $messages messages, $mode for $seconds s" >&2
before="$(profile_sample resume)"
profile_collect
sleep "$seconds"
after="$(profile_sample resume)"
wait "$collector" || true # the collector exits non-zero when the worker ends inside the window
profile_cores "$before" "$after"
profile_report
wait "$harness" || true
trap - EXIT
grep -E "^\| (replay rate|goal: replay)" "$log" || tail -20 "$log"
