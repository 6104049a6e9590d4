#!/usr/bin/env bash
# `make run`: nats-server with JetStream on an ignored data folder, then the worker on http://127.0.0.1:8080.
# Ctrl-C stops both.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

NATS_PORT="${NATS_PORT:-4222}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
WORKER_URL="${WORKER_URL:-http://127.0.0.1:8080}"

nats_bin="$(scripts/ensure-nats-server.sh)"
data="$root/.data/nats"
mkdir -p "$data"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$nats_bin" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js -sd "$data" >"$root/.data/nats-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null ||
  { echo "nats-server did not start; see .data/nats-server.log"; exit 1; }

dotnet build Bridge.Worker -c Release -v q -nologo
ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Development}" \
  dotnet Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll \
  --urls "$WORKER_URL" --Bridge:Nats:Url "nats://127.0.0.1:$NATS_PORT" &
pids+=($!)

host="${WORKER_URL#http://}"
for _ in $(seq 1 150); do
  curl -fsS "$WORKER_URL/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

cat <<MSG

Bridge is running.
  Dashboard   $WORKER_URL/             (the demo page: rooms, live messages, simulated devices)
  WebSocket   ws://$host/ws        (subprotocols bridge.v1.json, bridge.v1.msgpack)
  Health      $WORKER_URL/healthz   $WORKER_URL/readyz
  SSE         $WORKER_URL/sse?rooms=demo
  Metrics     $WORKER_URL/metrics
  NATS        nats://127.0.0.1:$NATS_PORT   (JetStream data in .data/nats)
  NATS monitor http://127.0.0.1:$NATS_MONITOR_PORT

Try it:  see README.md ("Try it"). Ctrl-C stops both.
MSG
wait -n "${pids[@]}"
