# Shared by scripts/profile-*.sh (sourced, not run): the worker a harness run started, one collector over a
# window, and who used the cores meanwhile. The caller sets mode, seconds and name (results/<name>.*) first.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$(scripts/ensure-dotnet-tools.sh)"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$(scripts/ensure-nats-server.sh)}"
mkdir -p results
dll="$root/Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll"
# perf names JIT frames from /tmp/perf-<pid>.map; with W^X on, that code runs from a second mapping perf cannot
# resolve, so it is turned off for this profile only.
[ "$mode" = perf ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0

# profile_wait_worker LOG PATTERN: the worker this run started (its path is this checkout's), once LOG shows PATTERN.
profile_wait_worker() {
  pid=""
  for _ in $(seq 1 600); do
    pid="$(pgrep -n -f "^dotnet $dll" || true)"
    [ -n "$pid" ] && grep -q "$2" "$1" && break
    sleep 0.5
  done
  [ -n "$pid" ] || { echo "profile-$name: no worker found" >&2; exit 1; }
  url="$(tr '\0' '\n' </proc/"$pid"/cmdline | sed -n 's/^--urls=//p')"
}

ticks() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

# The worker's CPU ticks by thread name (.NET_TP_Worker, .NET_Tiered_Com (the background JIT), .NET_BGC, ...) as
# NAME=TICKS words; threads that ended meanwhile are not counted.
threads() {
  local t
  for t in /proc/"$1"/task/*; do
    # The name is field 2 in parentheses and may hold spaces: the times are counted from the field after it.
    printf '%s %s\n' "$(tr ' ' _ <"$t/comm" 2>/dev/null)" "$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12+$13}')"
  done | awk 'NF == 2 {a[$1] += $2} END {for (k in a) printf "%s=%d ", k, a[k]}'
}

# profile_sample SCENARIO: CPU ticks of the worker, the load generator (Bridge.LoadTests SCENARIO) and its
# nats-server, and the machine's, then the worker's by thread name, on one line.
profile_sample() {
  local loadgen nats
  loadgen="$(pgrep -n -f "Bridge\.LoadTests(\.dll)? $1" || true)"
  nats="$([ -n "$loadgen" ] && pgrep -n -P "$loadgen" -f nats-server || true)"
  echo "$(ticks "$pid") $(ticks "$loadgen") $(ticks "$nats") $(machine) $(threads "$pid")"
}

# profile_collect: starts the collector of $mode on the worker for $seconds (in the background: $collector).
profile_collect() {
  case "$mode" in
    counters)
      "$tools/dotnet-counters" collect -p "$pid" --counters System.Runtime --refresh-interval 1 \
        --duration "00:00:00:0$seconds" --format csv -o "results/$name-counters.csv" >/dev/null & ;;
    trace)
      "$tools/dotnet-trace" collect -p "$pid" --profile dotnet-sampled-thread-time --duration "00:00:00:0$seconds" \
        -o "results/$name.nettrace" >/dev/null & ;;
    perf)
      perf record -F "${perf_hz:-999}" -g -p "$pid" -o "results/$name.perf" -- sleep "$seconds" >/dev/null 2>&1 & ;;
    *) echo "usage: scripts/profile-$name.sh counters|trace|perf ..." >&2; exit 2 ;;
  esac
  collector=$!
}

# profile_cores "BEFORE" "AFTER": who used the two cores over the window (from profile_sample).
profile_cores() {
  local b a
  read -ra b <<<"$1"
  read -ra a <<<"$2"
  awk -v w="$((a[0]-b[0]))" -v l="$((a[1]-b[1]))" -v n="$((a[2]-b[2]))" -v busy="$((a[3]-b[3]))" -v all="$((a[4]-b[4]))" \
      -v s="$seconds" -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    printf "cores busy over the window: %.0f%% of 2; worker %.0f%%, load generator %.0f%%, nats-server %.0f%% of one core; the rest (other processes) %.0f%%; load average %s\n",
      100*busy/all, w/s, l/s, n/s, 200*busy/all - (w+l+n)/s, la }'
  # The worker's share by thread: the thread pool (the work itself), the background JIT, the background GC.
  awk -v b="${b[*]:5}" -v a="${a[*]:5}" -v s="$seconds" 'BEGIN {
    n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); before[kv[1]] = kv[2] }
    n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); d = kv[2] - before[kv[1]]; if (d / s >= 0.5) printf "%s %.0f%%\n", kv[1], d/s }
  }' | sort -k2 -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : "worker by thread (% of one core): "), $1, $2 } END { if (NR) print "" }'
}

# profile_report: the perf report's top entries, into results/<name>-perf.txt and on stdout.
profile_report() {
  [ "$mode" = perf ] || return 0
  perf report -i "results/$name.perf" --no-children --sort dso,sym --percent-limit 0.7 --stdio 2>/dev/null \
    | grep -v "^$" | grep -v "^#" | head -70 >"results/$name-perf.txt" || true
  cat "results/$name-perf.txt"
}
