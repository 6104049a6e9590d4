#!/usr/bin/env bash
# `make cluster`: the production topology on loopback. Three nats-server processes forming a JetStream cluster
# (the ROOMS stream with 3 replicas), three workers each connected to all three servers, and nginx in front
# with the proxy settings of deploy/nginx/. Ctrl-C stops everything. Data and logs go to .data/cluster/.
#
# Ports (override with the environment): nginx CLUSTER_LISTEN (127.0.0.1:8080), workers WORKER_PORT_BASE+1..3
# (8081-8083), NATS clients NATS_PORT_BASE+0..2 (4222-4224), routes ROUTE_PORT_BASE+0..2 (6222-6224),
# NATS monitoring MONITOR_PORT_BASE+0..2 (8222-8224).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CLUSTER_LISTEN="${CLUSTER_LISTEN:-127.0.0.1:8080}"
WORKER_PORT_BASE="${WORKER_PORT_BASE:-8080}"
NATS_PORT_BASE="${NATS_PORT_BASE:-4222}"
ROUTE_PORT_BASE="${ROUTE_PORT_BASE:-6222}"
MONITOR_PORT_BASE="${MONITOR_PORT_BASE:-8222}"
N=3

nats_bin="$(scripts/ensure-nats-server.sh)"
nginx_bin="$(scripts/ensure-nginx.sh)"
data="$root/.data/cluster"
logs="$data/logs"
mkdir -p "$logs"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=("${CLUSTER_LISTEN##*:}")
for i in $(seq 1 $N); do
  ports+=($((WORKER_PORT_BASE + i)) $((NATS_PORT_BASE + i - 1)) $((ROUTE_PORT_BASE + i - 1)) $((MONITOR_PORT_BASE + i - 1)))
done
for p in "${ports[@]}"; do
  port_free "$p" || { echo "port $p is in use (is make run or another cluster running?); set the *_PORT_BASE variables"; exit 1; }
done

pids=()
names=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  # Workers first (they close their clients with 1012 and finish their publishes), then nginx and NATS.
  local first=() rest=()
  for i in "${!pids[@]}"; do
    case "${names[$i]}" in worker-*) first+=("${pids[$i]}") ;; *) rest+=("${pids[$i]}") ;; esac
  done
  for group in first rest; do
    local -n g=$group
    [ ${#g[@]} -gt 0 ] || continue
    kill "${g[@]}" 2>/dev/null || true
    wait "${g[@]}" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

wait_for() { # $1: url, $2: what, $3: log
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$2 did not get ready at $1; see $3"
  exit 1
}

# 1. NATS: three servers, each routing to the other two; JetStream stores under .data/cluster/nats-N.
nats_urls=()
for i in $(seq 1 $N); do nats_urls+=("nats://127.0.0.1:$((NATS_PORT_BASE + i - 1))"); done
for i in $(seq 1 $N); do
  routes=()
  for j in $(seq 1 $N); do
    [ "$j" -eq "$i" ] || routes+=("nats://127.0.0.1:$((ROUTE_PORT_BASE + j - 1))")
  done
  "$nats_bin" -a 127.0.0.1 -p $((NATS_PORT_BASE + i - 1)) -m $((MONITOR_PORT_BASE + i - 1)) \
    -js -sd "$data/nats-$i" --server_name "nats-$i" --cluster_name bridge \
    --cluster "nats://127.0.0.1:$((ROUTE_PORT_BASE + i - 1))" --routes "$(IFS=,; echo "${routes[*]}")" \
    >"$logs/nats-$i.log" 2>&1 &
  pids+=($!)
  names+=("nats-$i")
done
# Plain /healthz is ok once the server's JetStream is current with the cluster (a meta leader is elected).
for i in $(seq 1 $N); do
  wait_for "http://127.0.0.1:$((MONITOR_PORT_BASE + i - 1))/healthz" "nats-$i" "$logs/nats-$i.log"
done
# That alone is not enough: a server can answer ok while the meta group has not taken in every peer yet, and a
# 3-replica stream then fails with "no suitable peers for placement". Wait until the meta leader sees the
# other two as current.
formed=""
for _ in $(seq 1 150); do
  for i in $(seq 1 $N); do
    jsz=$(curl -fsS "http://127.0.0.1:$((MONITOR_PORT_BASE + i - 1))/jsz?leader-only=true" 2>/dev/null) || continue
    [ "$(grep -c '"current": true' <<<"$jsz")" -ge $((N - 1)) ] && formed=yes && break
  done
  [ -n "$formed" ] && break
  sleep 0.2
done
[ -n "$formed" ] || { echo "the JetStream cluster did not form (meta leader with $N current peers); see $logs/nats-*.log"; exit 1; }

# 2. Workers: each knows all three servers (NATS.Net takes a comma-separated Url) and asks for 3 replicas.
dotnet build Bridge.Worker -c Release -v q -nologo
for i in $(seq 1 $N); do
  ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Development}" \
  Bridge__Nats__Url="$(IFS=,; echo "${nats_urls[*]}")" \
  Bridge__Nats__Replicas=3 \
  Bridge__Worker__Id="worker-$i" \
    dotnet Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll --urls "http://127.0.0.1:$((WORKER_PORT_BASE + i))" \
    >"$logs/worker-$i.log" 2>&1 &
  pids+=($!)
  names+=("worker-$i")
  # One after the other: workers starting together on a fresh cluster race to create their key-value bucket.
  wait_for "http://127.0.0.1:$((WORKER_PORT_BASE + i))/readyz" "worker-$i" "$logs/worker-$i.log"
done

# 3. nginx in front: deploy/nginx/bridge.conf.template rendered with this cluster's addresses.
prefix="$data/nginx"
mkdir -p "$prefix/logs" "$prefix/temp"
workers=""
for i in $(seq 1 $N); do workers+="server 127.0.0.1:$((WORKER_PORT_BASE + i)) max_fails=0; "; done
sed -e "s|\${BRIDGE_LISTEN}|$CLUSTER_LISTEN|" -e "s|\${BRIDGE_WORKERS}|$workers|" \
  deploy/nginx/bridge.conf.template >"$prefix/bridge.conf"
cp deploy/nginx/nginx.local.conf "$prefix/nginx.conf"
"$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" -t -q
"$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" >"$logs/nginx.log" 2>&1 &
pids+=($!)
names+=("nginx")
wait_for "http://$CLUSTER_LISTEN/readyz" "nginx" "$prefix/logs/error.log"

processes=""
for i in "${!pids[@]}"; do processes+="${names[$i]}=${pids[$i]} "; done
cat <<MSG

Bridge cluster is running (everything on loopback).
  Through nginx  ws://$CLUSTER_LISTEN/ws   http://$CLUSTER_LISTEN/sse?rooms=demo   http://$CLUSTER_LISTEN/readyz
  Workers        $(for i in $(seq 1 $N); do printf 'http://127.0.0.1:%s ' $((WORKER_PORT_BASE + i)); done)(each: /readyz /metrics)
  NATS           $(IFS=,; echo "${nats_urls[*]}")
  NATS monitor   $(for i in $(seq 1 $N); do printf 'http://127.0.0.1:%s ' $((MONITOR_PORT_BASE + i - 1)); done)(/jsz?streams=true&config=true: ROOMS with num_replicas 3)
  Processes      $processes
  Logs           .data/cluster/logs/, nginx: .data/cluster/nginx/logs/

Try a failure by hand: kill -9 a worker's pid and watch clients move (see docs/cluster.md).
Ctrl-C stops everything.
MSG
# Stay up until Ctrl-C, even if a component is killed by hand to try a failure.
wait
