#!/usr/bin/env bash
# Profiles the worker while it takes publishes (docs/benchmarks.md, ingest: "where the time goes"). Runs
# `Bridge.LoadTests ingest` (20 WebSocket clients x 50 in flight over 100 rooms, as the goal row) with a long warm-up
# in the background; the Bridge side warms up last, for WARMUP seconds, publishing without pause. 8 s into it (tiered
# JIT settled), it collects for 6 s one of:
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled) -> results/ingest.perf + report
#   trace     dotnet-trace, sampled thread time (managed stacks)                           -> results/ingest.nettrace
#   counters  dotnet-counters System.Runtime (allocation rate, GC, thread pool)           -> results/ingest-counters.csv
# and prints who used the cores over the window and the CPU each process spent per publish.
# Usage: scripts/profile-ingest.sh perf|trace|counters [WARMUP seconds, default 25]
# Needs the Release build (make build) and nats-server (NATS_SERVER_BIN or scripts/ensure-nats-server.sh).
set -euo pipefail

mode="${1:-perf}"
warmup="${2:-25}"
seconds=6
name=ingest
source "$(dirname "${BASH_SOURCE[0]}")/profile-lib.sh"

log="results/ingest-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- ingest --clients 20 --in-flight 50 --rooms 100 \
  --messages 20000 --rounds 1 --warmup "$warmup" >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

profile_wait_worker "$log" "Bridge, warm-up"
sleep 8
echo "profile-ingest: worker $pid, 20 clients x 50 in flight, 100 rooms, $mode for $seconds s" >&2
taken() { curl -s "$url/metrics" | awk '/^bridge_messages_in_total/ {n += $2} END {print n + 0}'; }
in_before="$(taken)"
before="$(profile_sample ingest)"
profile_collect
sleep "$seconds"
after="$(profile_sample ingest)"
in_after="$(taken)"
wait "$collector" || true # the collector exits non-zero when the worker ends inside the window
profile_cores "$before" "$after"
read -ra b <<<"$before"
read -ra a <<<"$after"
# Clock ticks are 1/100 s: per message, 10,000 µs per tick.
awk -v w="$((a[0]-b[0]))" -v l="$((a[1]-b[1]))" -v n="$((a[2]-b[2]))" -v m="$((in_after-in_before))" -v s="$seconds" 'BEGIN {
  if (m > 0) printf "publishes taken: %d (%.0f/s); CPU per publish: worker %.1f µs, load generator %.1f µs, nats-server %.1f µs\n",
    m, m/s, 10000*w/m, 10000*l/m, 10000*n/m }'
profile_report
wait "$harness" || true
trap - EXIT
grep -E "^\| (Bridge: |goal: ingest|CPU per message)" "$log" || tail -20 "$log"
