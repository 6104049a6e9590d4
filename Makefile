# Bridge: realtime gateway (WebSocket, SSE, long-poll) over NATS JetStream.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= Release

.PHONY: help run test build nats-server load-smoke bench bench-rooms format format-check clean cluster cluster-test

help:
	@echo "make run          start nats-server (JetStream) and the worker on http://127.0.0.1:8080"
	@echo "make test         build and run every test (starts the real nats-server it needs)"
	@echo "make load-smoke   short load run with thresholds (part of make test)"
	@echo "make cluster      3 nats-server (JetStream cluster) + 3 workers + nginx on loopback, like production"
	@echo "make cluster-test failure tests on that cluster: kill/restart workers and NATS, nothing lost (part of make test)"
	@echo "make bench        benchmarks: 10,000 rooms, core subs vs consumers, fan-out to 1,000, resume"
	@echo "make format       apply dotnet format; make format-check verifies"

nats-server:
	@scripts/ensure-nats-server.sh >/dev/null

build:
	dotnet build Bridge.sln -c $(CONFIG) -nologo

run: nats-server
	scripts/run.sh

test: nats-server build
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" dotnet test Bridge.sln -c $(CONFIG) --no-build -nologo \
	  --logger "console;verbosity=normal" --results-directory TestResults --blame-hang-timeout 5m
	$(MAKE) --no-print-directory load-smoke
	$(MAKE) --no-print-directory cluster-test

# A short load run (small N) whose thresholds catch breakage: zero loss everywhere, delivery within a generous
# latency bound. Each scenario starts its own nats-server and worker on loopback and stops by itself.
load-smoke: nats-server build
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- rooms --rooms 2000 --connections 20 --messages 4000
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- fanout --connections 100 --messages 50 --rate 20 --seconds 3 --p99-ms 500
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- resume --messages 2000 --rooms 100 --per-room 10
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- storm --clients 100 --rate 50 --seconds 6

cluster: nats-server
	scripts/cluster.sh

# Failure tests on the local cluster (docs/cluster.md): a worker SIGKILLed, a nats-server SIGKILLed, a rolling
# restart of the workers, the whole NATS cluster restarted, each while clients publish and receive through nginx;
# lost and duplicated must be 0. Loopback only, bounded, about 2 minutes.
cluster-test: nats-server build
	@scripts/ensure-nginx.sh >/dev/null
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- cluster

bench: nats-server build
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- rooms
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- rooms-compare
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- fanout
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- resume
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- storm

bench-rooms: bench

format:
	dotnet format Bridge.sln

format-check:
	dotnet format Bridge.sln --verify-no-changes

clean:
	dotnet clean Bridge.sln -nologo -v q
	rm -rf TestResults results .data
