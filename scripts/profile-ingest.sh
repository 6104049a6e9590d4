#!/usr/bin/env bash
# Profiles the worker while it takes publishes (docs/benchmarks.md, ingest: "where the time goes"). Runs
# `Bridge.LoadTests ingest` (20 WebSocket clients x 50 in flight over 100 rooms, as the goal row) with a long warm-up
# in the background; the Bridge side warms up last, for WARMUP seconds, publishing without pause. 8 s into it (tiered
# JIT settled), it collects for 6 s one of:
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled) -> results/ingest.perf + report
#   trace     dotnet-trace, sampled thread time (managed stacks)                           -> results/ingest.nettrace
#   counters  dotnet-counters System.Runtime (allocation rate, GC, thread pool)           -> results/ingest-counters.csv
# and prints who used the cores over the window.
# Usage: scripts/profile-ingest.sh perf|trace|counters [WARMUP seconds, default 25]
# Needs the Release build (make build) and nats-server (NATS_SERVER_BIN or scripts/ensure-nats-server.sh).
set -euo pipefail

mode="${1:-perf}"
warmup="${2:-25}"
seconds=6
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$(scripts/ensure-dotnet-tools.sh)"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$(scripts/ensure-nats-server.sh)}"
mkdir -p results
dll="$root/Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll"
# perf names JIT frames from /tmp/perf-<pid>.map; with W^X on, that code runs from a second mapping perf cannot
# resolve, so it is turned off for this profile only.
[ "$mode" = perf ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0

log="results/ingest-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- ingest --clients 20 --in-flight 50 --rooms 100 \
  --messages 20000 --rounds 1 --warmup "$warmup" >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

# The worker this run started (its path is this checkout's), once the Bridge side is warming up.
pid=""
for _ in $(seq 1 600); do
  pid="$(pgrep -n -f "^dotnet $dll" || true)"
  [ -n "$pid" ] && grep -q "Bridge, warm-up" "$log" && break
  sleep 0.5
done
[ -n "$pid" ] || { echo "profile-ingest: no worker found" >&2; exit 1; }
sleep 8
echo "profile-ingest: worker $pid, 20 clients x 50 in flight, 100 rooms, $mode for $seconds s" >&2
url="$(tr '\0' '\n' </proc/"$pid"/cmdline | sed -n 's/^--urls=//p')"
taken() { curl -s "$url/metrics" | awk '/^bridge_messages_in_total/ {n += $2} END {print n + 0}'; }
loadgen="$(pgrep -n -f "Bridge\.LoadTests(\.dll)? ingest" || true)"
nats="$(pgrep -n -P "$loadgen" -f nats-server || true)"
ticks() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
in_before="$(taken)"
before=("$(ticks "$pid")" "$(ticks "$loadgen")" "$(ticks "$nats")" $(machine))
case "$mode" in
  counters)
    "$tools/dotnet-counters" collect -p "$pid" --counters System.Runtime --refresh-interval 1 \
      --duration "00:00:00:0$seconds" --format csv -o results/ingest-counters.csv >/dev/null & ;;
  trace)
    "$tools/dotnet-trace" collect -p "$pid" --profile dotnet-sampled-thread-time --duration "00:00:00:0$seconds" \
      -o results/ingest.nettrace >/dev/null & ;;
  perf)
    perf record -F 999 -g -p "$pid" -o results/ingest.perf -- sleep "$seconds" >/dev/null 2>&1 & ;;
  *) echo "usage: $0 perf|trace|counters [warm-up seconds]" >&2; exit 2 ;;
esac
collector=$!
sleep "$seconds"
after=("$(ticks "$pid")" "$(ticks "$loadgen")" "$(ticks "$nats")" $(machine))
in_after="$(taken)"
wait "$collector"
# Clock ticks are 1/100 s: per message, 10,000 µs per tick.
awk -v w="$((after[0]-before[0]))" -v l="$((after[1]-before[1]))" -v n="$((after[2]-before[2]))" \
    -v busy="$((after[3]-before[3]))" -v all="$((after[4]-before[4]))" -v s="$seconds" -v m="$((in_after-in_before))" \
    -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  printf "cores busy over the window: %.0f%% of 2; worker %.0f%%, load generator %.0f%%, nats-server %.0f%% of one core; the rest (other processes) %.0f%%; load average %s\n",
    100*busy/all, w/s, l/s, n/s, 200*busy/all - (w+l+n)/s, la
  if (m > 0) printf "publishes taken: %d (%.0f/s); CPU per publish: worker %.1f µs, load generator %.1f µs, nats-server %.1f µs\n",
    m, m/s, 10000*w/m, 10000*l/m, 10000*n/m }'
if [ "$mode" = perf ]; then
  perf report -i results/ingest.perf --no-children --sort dso,sym --percent-limit 0.7 --stdio 2>/dev/null | grep -v "^$" | grep -v "^#" | head -70 >results/ingest-perf.txt || true
  cat results/ingest-perf.txt
fi
wait "$harness" || true
trap - EXIT
grep -E "^\| (Bridge: |goal: ingest|CPU per message)" "$log" || tail -20 "$log"
