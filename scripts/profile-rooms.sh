#!/usr/bin/env bash
# Profiles the worker while ROOMS rooms are activated over 100 connections (docs/benchmarks.md, "Where the time goes
# (activation row)"). Runs `Bridge.LoadTests rooms --rooms ROOMS --connections 100 --messages 2000` in the background,
# waits for the worker it started to be ready, then collects for SECONDS (the start of the joins onwards) one of:
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled) -> results/rooms.perf + report
#   trace     dotnet-trace, sampled thread time (managed stacks)                           -> results/rooms.nettrace
#   counters  dotnet-counters System.Runtime                                               -> results/rooms-counters.csv
# and prints who used the cores over the window (the worker also by thread: thread pool, background JIT, background GC). The worker has warmed its join path before readiness (Bridge:WarmUp);
# the window starts at readiness, so the profile is the warm join path (Bridge__WarmUp__Enabled=false in the environment: the cold one, JIT included).
# Usage: scripts/profile-rooms.sh perf|trace|counters [ROOMS, default 40000] [SECONDS, default 8]
set -euo pipefail

mode="${1:-perf}"
rooms="${2:-40000}"
seconds="${3:-8}"
name=rooms-profile
source "$(dirname "${BASH_SOURCE[0]}")/profile-lib.sh"

log="results/rooms-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- rooms --rooms "$rooms" --connections 100 --messages 2000 ${ROOMS_ARGS:-} \
  >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

profile_wait_worker "$log" "" # as soon as the worker runs: its start and the joins
until curl -fs "$url/readyz" >/dev/null 2>&1; do sleep 0.2; done
echo "profile-rooms: worker $pid, $rooms rooms, $mode for $seconds s" >&2
before="$(profile_sample rooms)"
profile_collect
sleep "$seconds"
after="$(profile_sample rooms)"
wait "$collector" || true # perf exits non-zero when the worker ends inside the window
profile_cores "$before" "$after"
profile_report
wait "$harness" || true
trap - EXIT
grep -E "^\| (activation time|CPU per room)" "$log" || tail -20 "$log"
