# Sourced by scripts/profile-fanout.sh and scripts/profile-replay.sh: one profile window of a worker, and who used the
# two cores over it. Not run on its own.
#   profile_begin MODE PID LOADGEN_PID NATS_PID NAME   starts collecting MODE from PID into results/NAME*:
#       counters  dotnet-counters System.Runtime      -> results/NAME-counters.csv
#       trace     dotnet-trace, sampled thread time   -> results/NAME.nettrace
#       perf      perf record at PERF_HZ (default 499) -> results/NAME.perf
#     and takes the CPU ticks of the worker, the load generator, nats-server and the machine; returns 2 for another MODE.
#   profile_end      waits for the collector (started for $seconds) and prints the cores' use over the window.
# Needs: $tools (scripts/ensure-dotnet-tools.sh) and $seconds.

profile_ticks() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
profile_machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

profile_begin() {
  local mode="$1" name="$5"
  profile_pids=("$2" "$3" "$4")
  profile_before=("$(profile_ticks "$2")" "$(profile_ticks "$3")" "$(profile_ticks "$4")" $(profile_machine))
  case "$mode" in
    counters)
      "$tools/dotnet-counters" collect -p "$2" --counters System.Runtime --refresh-interval 1 \
        --duration "00:00:00:0$seconds" --format csv -o "results/$name-counters.csv" >/dev/null & ;;
    trace)
      "$tools/dotnet-trace" collect -p "$2" --profile dotnet-sampled-thread-time --duration "00:00:00:0$seconds" \
        -o "results/$name.nettrace" >/dev/null & ;;
    perf)
      perf record -F "${PERF_HZ:-499}" -g -p "$2" -o "results/$name.perf" -- sleep "$seconds" >/dev/null 2>&1 & ;;
    *) return 2 ;;
  esac
  profile_collector=$!
}

profile_end() {
  local after=("$(profile_ticks "${profile_pids[0]}")" "$(profile_ticks "${profile_pids[1]}")" "$(profile_ticks "${profile_pids[2]}")" $(profile_machine))
  wait "$profile_collector"
  awk -v w="$((after[0]-profile_before[0]))" -v l="$((after[1]-profile_before[1]))" -v n="$((after[2]-profile_before[2]))" \
      -v busy="$((after[3]-profile_before[3]))" -v all="$((after[4]-profile_before[4]))" -v s="$seconds" -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    printf "cores busy over the window: %.0f%% of 2; worker %.0f%%, load generator %.0f%%, nats-server %.0f%% of one core; the rest (other processes) %.0f%%; load average %s\n",
      100*busy/all, w/s, l/s, n/s, 200*busy/all - (w+l+n)/s, la }'
}
