#!/usr/bin/env bash
# Profiles the worker while one client replays a room (docs/benchmarks.md, "Profiles behind the misses": replay).
# Runs `Bridge.LoadTests resume --transports TRANSPORT --rounds 12` (a bare ordered consumer, then one client of
# TRANSPORT resuming a room of MESSAGES from since 0, twelve times) in the background, waits for the worker it started
# and for the third round (tiered JIT settled), then collects for 6 s one of:
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled) -> results/replay.perf + report
#   trace     dotnet-trace, sampled thread time (managed stacks)                           -> results/replay.nettrace
#   counters  dotnet-counters System.Runtime                                               -> results/replay-counters.csv
# and prints who used the cores over the window.
# Usage: scripts/profile-replay.sh perf|trace|counters [TRANSPORT json|msgpack|sse, default json] [MESSAGES, default 100000]
set -euo pipefail

mode="${1:-perf}"
transport="${2:-json}"
messages="${3:-100000}"
seconds=6
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/profile-window.sh
tools="$(scripts/ensure-dotnet-tools.sh)"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$(scripts/ensure-nats-server.sh)}"
mkdir -p results
dll="$root/Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll"
[ "$mode" = perf ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 PERF_HZ=999

log="results/replay-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- resume --messages "$messages" --rounds 12 --transports "$transport" \
  --rooms 1 --per-room 1 >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

pid=""
for _ in $(seq 1 600); do
  pid="$(pgrep -n -f "^dotnet $dll" || true)"
  [ -n "$pid" ] && grep -q "replay 3/12" "$log" && break
  sleep 0.5
done
[ -n "$pid" ] || { echo "profile-replay: no worker found" >&2; exit 1; }
echo "profile-replay: worker $pid, $transport, $messages messages, $mode for $seconds s" >&2
loadgen="$(pgrep -n -f "Bridge\.LoadTests(\.dll)? resume" || true)"
nats="$(pgrep -n -P "$loadgen" -f nats-server || true)"
profile_begin "$mode" "$pid" "$loadgen" "$nats" replay || { echo "usage: $0 perf|trace|counters [json|msgpack|sse] [messages]" >&2; exit 2; }
sleep "$seconds"
profile_end
if [ "$mode" = perf ]; then
  perf report -i results/replay.perf --no-children --sort dso,sym --percent-limit 0.7 --stdio 2>/dev/null | grep -v "^$" | grep -v "^#" | head -60 >results/replay-perf.txt || true
  cat results/replay-perf.txt
fi
wait "$harness" || true
trap - EXIT
grep -E "^\| (replay rate|goal: replay)" "$log" || tail -20 "$log"
