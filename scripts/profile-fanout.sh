#!/usr/bin/env bash
# Profiles the worker while the WebSocket fan-out scenario runs at a fixed rate (docs/benchmarks.md, "p99 at half
# the peak rate"). Runs `Bridge.LoadTests fanout` (30 s measured) in the background, finds the worker it started,
# and for 6 s of the measured window collects one of:
#   counters  dotnet-counters (System.Runtime: thread pool queue, GC pauses, lock contention, CPU) -> results/fanout-counters.csv
#   trace     dotnet-trace, sampled thread time (managed stacks, ~100 Hz)                         -> results/fanout.nettrace + top methods
#   perf      perf record (on-CPU samples, JIT frames named through DOTNET_PerfMapEnabled)          -> results/fanout.perf + report
# Usage: scripts/profile-fanout.sh counters|trace|perf [RATE msg/s, default 400] [CONNECTIONS, default 200]
# Needs the Release build (make build) and nats-server (NATS_SERVER_BIN or scripts/ensure-nats-server.sh).
set -euo pipefail

mode="${1:-counters}"
rate="${2:-400}"
connections="${3:-200}"
seconds=6
name=fanout
perf_hz=499
source "$(dirname "${BASH_SOURCE[0]}")/profile-lib.sh"

log="results/fanout-profile.log"
dotnet run --project Bridge.LoadTests -c Release --no-build -- fanout --connections "$connections" --rate "$rate" --seconds 30 --p99-ms 100000 >"$log" 2>&1 &
harness=$!
trap 'kill "$harness" 2>/dev/null || true' EXIT

profile_wait_worker "$log" "measur"
# 8 s into the measured window: tiered JIT has settled (a profile taken earlier showed 13% of the worker's CPU in
# libclrjit), as it has in the peers benchmark by the time it measures half the peak rate.
sleep 8
echo "profile-fanout: worker $pid, $connections subscribers, $rate msg/s, $mode for $seconds s" >&2
# The worker's own view of the same window: bridge_delivery_latency (stream timestamp -> frame written to the socket).
curl -s "$url/metrics" >results/fanout-metrics-before.txt
before="$(profile_sample fanout)"
profile_collect
sleep "$seconds"
curl -s "$url/metrics" >results/fanout-metrics-after.txt
after="$(profile_sample fanout)"
wait "$collector" || true # the collector exits non-zero when the worker ends inside the window
profile_cores "$before" "$after"
wait "$harness" || true
trap - EXIT
# Delivery latency inside the worker over the profiled window, from the histogram's bucket counts.
python3 - <<'PY'
import re
def buckets(f):
    b = {}
    for line in open(f):
        m = re.match(r'bridge_delivery_latency_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)', line)
        if m:
            b[m.group(1)] = b.get(m.group(1), 0) + float(m.group(2))
    return b
a, b = buckets("results/fanout-metrics-before.txt"), buckets("results/fanout-metrics-after.txt")
les = sorted(b, key=lambda le: float("inf") if le == "+Inf" else float(le))
total = b["+Inf"] - a.get("+Inf", 0)
line = []
for le in les:
    share = (b[le] - a.get(le, 0)) / total if total else 0
    line.append(f"<= {le} s: {share:.1%}")
print(f"worker delivery latency (stream timestamp -> socket write), {total:,.0f} deliveries: " + ", ".join(line))
PY
grep -E "^\| (delivered/s|latency p50|latency p99 |latency p99 \(|worker CPU|nats-server CPU|lost)" "$log" || tail -20 "$log"
