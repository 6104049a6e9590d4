#!/usr/bin/env bash
# `make run`: nats-server with JetStream, then the worker (Development: anonymous users allowed).
#
# Variables (all optional):
#   WORKER_URL         where the worker listens (default: the first of ASPNETCORE_URLS, else http://127.0.0.1:8080);
#                      ASPNETCORE_URLS, when set and WORKER_URL is not, is passed to the worker whole
#   NATS_PORT          nats-server client port (default 4222)
#   NATS_MONITOR_PORT  nats-server monitoring port (default 8222)
#   BRIDGE_DATA        where JetStream stores and the logs go (default .data in the repository; a relative path is
#                      relative to the checkout, not to the caller's directory: the script runs there)
#   BRIDGE_WORKER_DLL  run this worker build instead of building Bridge.Worker (Release)
#   NATS_SERVER_BIN    run this nats-server (>= 2.14) instead of tools/nats-server or the one on PATH
#
# "Bridge is running" is printed only once this script's own worker answers. A port that is taken stops the start
# with one line naming it and the variable that moves it; everything started is stopped and the exit code is 1.
# Ctrl-C (or SIGTERM) stops the worker first (it drains: clients get 1012 and reconnect elsewhere), then
# nats-server, and exits 0. While it runs, its pid is in $BRIDGE_DATA/run.pid (.data/run.pid), removed once the run
# has ended (its worker and nats-server stopped). A run in the background stops with the recipe it prints (absolute
# paths, shell-quoted), which signals that pid only if it still is this checkout's run.sh (its working directory is
# the checkout and its command line is exactly `bash [path/]run.sh`, paths without spaces; a pidfile left by a killed run may name another
# process by then). From the checkout, for the default data folder:
#   pid=$(cat .data/run.pid) && [ "$(readlink /proc/$pid/cwd)" = "$(pwd -P)" ] && tr '\0' ' ' </proc/$pid/cmdline | grep -Eqx '([^ ]*/)?bash ([^ ]*/)?run\.sh ' && kill "$pid"
# The run holds an flock on $BRIDGE_DATA/run.lock for its whole life, and its nats-server and worker inherit it. A
# second run with the same data folder is refused while any of them holds it (they would share JetStream's store),
# before the port checks: "another run of this checkout is going" while the first run.sh is alive, "a run of another
# checkout (pid N, in DIR) uses" the folder when the holder is another checkout's live run.sh, or, when the run.sh
# was killed (kill -9) and its nats-server or worker still runs, a line naming their pids (anything else that
# holds the lock is named apart, not as a process to kill). Where util-linux's setpriv
# is found (Linux), the children get SIGTERM when run.sh dies however it dies, so a killed run stops them too.
set -euo pipefail
# cd must not print or look elsewhere (an exported CDPATH would make a relative BRIDGE_DATA two lines, or another folder).
unset CDPATH

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

NATS_PORT="${NATS_PORT:-4222}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
urls="${WORKER_URL:-${ASPNETCORE_URLS:-http://127.0.0.1:8080}}"
WORKER_URL="${urls%%;*}"
data="${BRIDGE_DATA:-$root/.data}"

say() { echo "run.sh: $*" >&2; }

# scheme, host and port of WORKER_URL; wildcard hosts (+, *, 0.0.0.0, [::]) are reached on loopback.
if [[ ! "$WORKER_URL" =~ ^(https?)://(\[[^]]*\]|[^:/]+)(:([0-9]+))?(/.*)?$ ]]; then
  say "WORKER_URL='$WORKER_URL' is not an http(s)://host:port address"
  exit 1
fi
scheme="${BASH_REMATCH[1]}"
host="${BASH_REMATCH[2]}"
port="${BASH_REMATCH[4]:-$([ "$scheme" = https ] && echo 443 || echo 80)}"
case "$host" in
  '+' | '*' | 0.0.0.0 | localhost) host=127.0.0.1 ;;
  '[::]') host='[::1]' ;;
esac
base="$scheme://$host:$port"

mkdir -p -- "$data"
# Absolute (a relative BRIDGE_DATA is relative to the checkout): the messages and the stop recipe name it.
data="$(cd -- "$data" && pwd)"
pidfile="$data/run.pid"
lock="$data/run.lock"
lock_path="$(cd -- "$data" && pwd -P)/run.lock"
checkout="$(pwd -P)"
# A word the shell reads back as $1 whatever it holds (spaces, quotes, globs): '...' with each ' as '\''.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# bash running run.sh with no other argument (run.sh cds to its checkout). Not `tail -f scripts/run.sh`, an editor.
is_run_sh() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -Eqx '([^ ]*/)?bash ([^ ]*/)?run\.sh '; }
# Exactly this checkout's run.sh: not another checkout's run.
is_run() {
  [ -n "$1" ] && [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$checkout" ] && is_run_sh "$1"
}
# The processes that have the lock file open: this data folder's run.sh, nats-server and worker. Each open file's
# path is compared as a string (find -lname would read [, * and ? in the data folder's path as a pattern).
holders() {
  { find /proc/[0-9]*/fd -maxdepth 1 -type l -printf '%p\t%l\n' 2>/dev/null || true; } |
    LOCK="$lock_path" awk '{ i = index($0, "\t"); if (substr($0, i + 1) == ENVIRON["LOCK"]) { split(substr($0, 1, i - 1), p, "/"); print p[3] } }' |
    sort -un
}
describe() {
  case "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" in
    *nats-server*) echo "nats-server (pid $1)" ;;
    *Bridge.Worker*) echo "the worker (pid $1)" ;;
    *) echo "pid $1 ($(cat "/proc/$1/comm" 2>/dev/null || echo gone))" ;;
  esac
}
# A run of this data folder that is still going (its pid is this checkout's run.sh): refused. A stale pidfile is
# overwritten.
other="$(cat "$pidfile" 2>/dev/null || true)"
# Only a live run of this data folder: not this very script (a killed run's pid reused by it), and holding this
# folder's lock on its fd 9 (not this checkout's run on another BRIDGE_DATA that got the pid).
if [ "$other" != "$$" ] && is_run "$other" && [ "$(readlink "/proc/$other/fd/9" 2>/dev/null)" = "$lock_path" ]; then
  say "another run of this checkout is going (pid $other, $pidfile). Stop it first: kill $other, or give this one its own BRIDGE_DATA"
  exit 1
fi
# The lock, held until this run and its children have ended (fd 9 is inherited by nats-server and the worker, and
# closed for everything else that could outlive the run, such as dotnet build's servers).
exec 9>>"$lock"
pids=""
if ! command -v flock >/dev/null 2>&1; then
  # No util-linux flock (macOS, some BusyBox): nothing here can tell another run on this folder.
  say "no flock here: a second run on $data is not refused (they would share JetStream's store); give each run its own BRIDGE_DATA"
elif ! flock -n 9; then
  exec 9>&- # not one of the holders
  if [ ! -d /proc/self/fd ]; then
    # flock but no /proc (macOS with Homebrew's flock): refused all the same, without naming the holders.
    say "$lock is locked by another process (its holders cannot be listed here), maybe a run using $data. Stop it first, or give this one its own BRIDGE_DATA"
    exit 1
  fi
  pids="$(holders | tr '\n' ' ')"
  if [ -z "$pids" ]; then
    # The holder may have just ended (a run stopped a moment ago): once more before blaming anyone.
    exec 9>>"$lock"
    if ! flock -n 9; then
      exec 9>&-
      say "$lock is locked by a process this user cannot see (another user's run?), which uses $data. Give this one its own BRIDGE_DATA"
      exit 1
    fi
  fi
fi
if [ -n "$pids" ]; then
  for pid in $pids; do
    if is_run "$pid"; then
      say "another run of this checkout is going (pid $pid, $pidfile). Stop it first: kill $pid, or give this one its own BRIDGE_DATA"
      exit 1
    fi
  done
  # A live run.sh of another checkout: it stops its worker, then nats-server, when its run.sh gets SIGTERM.
  for pid in $pids; do
    if is_run_sh "$pid"; then
      say "a run of another checkout (pid $pid, in $(readlink "/proc/$pid/cwd" 2>/dev/null || echo '?')) uses $data. Stop it first with the recipe it printed (SIGTERM to that run.sh: kill $pid), or give this one its own BRIDGE_DATA"
      exit 1
    fi
  done
  # The kill hint names only a run's own processes (nats-server, the worker): anything else that has the file open
  # (a run.sh starting this very moment, a command reading it) is listed, not to be killed.
  run_pids=""
  other_pids=""
  for pid in $pids; do
    case "$(describe "$pid")" in
      nats-server* | 'the worker'*) run_pids="$run_pids $pid" ;;
      *) other_pids="$other_pids $pid" ;;
    esac
  done
  names() { for pid in $1; do describe "$pid"; done | paste -sd, - | sed 's/,/, /g'; }
  also=""
  [ -n "$other_pids" ] && also=" ($lock is also open in: $(names "$other_pids"))"
  if [ -n "$run_pids" ]; then
    say "an earlier run on $data was killed before it stopped its processes, and they still run: $(names "$run_pids"). They would share JetStream's store with this run. Stop them first: kill${run_pids}${also}"
  else
    say "$lock is locked, and no run's nats-server or worker holds it: $(names "$other_pids"). Stop what holds it, or give this one its own BRIDGE_DATA"
  fi
  exit 1
fi

# Something already answering on a port we are about to use: say which and how to move it, start nothing.
in_use() { (exec 3<>"/dev/tcp/${1//[\[\]]/}/$2") 2>/dev/null; }
taken() {
  say "port $2 ($1) is in use by another process. Stop it, or pick another port: $3 make run"
  exit 1
}
in_use 127.0.0.1 "$NATS_PORT" && taken "nats-server, NATS_PORT" "$NATS_PORT" "NATS_PORT=$((NATS_PORT + 1))"
in_use 127.0.0.1 "$NATS_MONITOR_PORT" && taken "nats-server monitoring, NATS_MONITOR_PORT" "$NATS_MONITOR_PORT" "NATS_MONITOR_PORT=$((NATS_MONITOR_PORT + 1))"
in_use "$host" "$port" && taken "the worker, WORKER_URL=$WORKER_URL" "$port" "WORKER_URL=$scheme://$host:$((port + 1))"

nats_bin="$(scripts/ensure-nats-server.sh 9>&-)"
mkdir -p "$data/nats"

nats_pid=""
worker_pid=""
# Stops one child: SIGTERM, then SIGKILL if it is still there after $2 seconds.
stop() {
  local pid="$1" grace="$2"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# The worker first (its drain takes at most Bridge:Shutdown:DrainTimeout plus the host's stop), then nats-server.
shutdown() {
  # A second signal while stopping changes nothing (the stop already ends in SIGKILL if need be).
  trap '' INT TERM
  trap - EXIT
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    say "stopping the worker (it drains its connections)..."
    stop "$worker_pid" 45
  fi
  if [ -n "$nats_pid" ] && kill -0 "$nats_pid" 2>/dev/null; then
    say "stopping nats-server..."
    stop "$nats_pid" 10
  fi
  # The pid file goes once the run has ended (and only this run's, not one a later run wrote).
  if [ "$(cat "$pidfile" 2>/dev/null)" = "$$" ]; then rm -f "$pidfile"; fi
}
on_signal() {
  echo >&2
  shutdown
  say "stopped."
  exit 0
}
trap on_signal INT TERM
trap shutdown EXIT
echo "$$" >"$pidfile"

# Each child in its own session: a Ctrl-C in the terminal reaches this script only, which stops them in order.
# Where util-linux's setpriv can ask the kernel for it (PR_SET_PDEATHSIG, Linux), each child also gets SIGTERM when
# this script dies however it dies (kill -9 included), so a killed run does not leave them running.
deathsig=()
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then deathsig=(setpriv --pdeathsig TERM); fi
setsid ${deathsig[@]+"${deathsig[@]}"} "$nats_bin" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js -sd "$data/nats" >"$data/nats-server.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 100); do
  kill -0 "$nats_pid" 2>/dev/null || break
  curl -fsS --max-time 2 "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! kill -0 "$nats_pid" 2>/dev/null ||
  ! curl -fsS --max-time 2 "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1; then
  say "nats-server did not start; its log ($data/nats-server.log) ends with:"
  tail -n 5 "$data/nats-server.log" >&2 || true
  exit 1
fi

dll="${BRIDGE_WORKER_DLL:-}"
if [ -z "$dll" ]; then
  dotnet build Bridge.Worker -c Release -v q -nologo 9>&-
  dll=Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll
fi

ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Development}" \
  setsid ${deathsig[@]+"${deathsig[@]}"} dotnet "$dll" --urls "$urls" --Bridge:Nats:Url "nats://127.0.0.1:$NATS_PORT" &
worker_pid=$!

# Up when this worker answers; if it exits first, say why (its exit code: 2 invalid settings, 3 address in use).
for _ in $(seq 1 300); do
  if ! kill -0 "$worker_pid" 2>/dev/null; then
    code=0
    wait "$worker_pid" || code=$?
    worker_pid=""
    case "$code" in
      3) say "the worker's port $port is in use by another process. Stop it, or pick another port: WORKER_URL=$scheme://$host:$((port + 1)) make run" ;;
      2) say "the worker refused its configuration (the lines above name the setting)" ;;
      *) say "the worker exited with code $code before it answered (see above)" ;;
    esac
    exit 1
  fi
  curl -fsSk --max-time 2 "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
if ! curl -fsSk --max-time 2 "$base/healthz" >/dev/null 2>&1; then
  say "the worker did not answer on $base/healthz within 60 s"
  exit 1
fi

ws="ws"
[ "$scheme" = https ] && ws="wss"
cat <<MSG

Bridge is running.
  Dashboard    $base/             (the demo page: rooms, live messages, simulated devices)
  WebSocket    $ws://$host:$port/ws        (subprotocols bridge.v1.json, bridge.v1.msgpack, and their -batch forms)
  Health       $base/healthz   $base/readyz
  SSE          $base/sse?rooms=demo
  Metrics      $base/metrics
  NATS         nats://127.0.0.1:$NATS_PORT   (JetStream data in $data/nats)
  NATS monitor http://127.0.0.1:$NATS_MONITOR_PORT

Try it: see README.md ("Try it"). Ctrl-C stops the worker, then nats-server. In the background:
  pid=\$(cat $(quote "$pidfile")) && [ "\$(readlink /proc/\$pid/cwd)" = $(quote "$checkout") ] && tr '\\0' ' ' </proc/\$pid/cmdline | grep -Eqx '([^ ]*/)?bash ([^ ]*/)?run\\.sh ' && kill "\$pid"
MSG

# Either one ending on its own ends the run (the EXIT trap stops the other).
code=0
wait -n "$worker_pid" "$nats_pid" || code=$?
kill -0 "$worker_pid" 2>/dev/null || { say "the worker exited (code $code)"; worker_pid=""; }
kill -0 "$nats_pid" 2>/dev/null || { say "nats-server exited (code $code); its log: $data/nats-server.log"; nats_pid=""; }
exit 1
