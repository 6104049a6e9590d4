# Bridge: realtime gateway (WebSocket, SSE, long-poll) over NATS JetStream.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= Release

.PHONY: help run test build nats-server bench bench-rooms format format-check clean

help:
	@echo "make run          start nats-server (JetStream) and the worker on http://127.0.0.1:8080"
	@echo "make test         build and run every test (starts the real nats-server it needs)"
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

bench: nats-server build
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- rooms
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- rooms-compare
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- fanout
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- resume

bench-rooms: bench

format:
	dotnet format Bridge.sln

format-check:
	dotnet format Bridge.sln --verify-no-changes

clean:
	dotnet clean Bridge.sln -nologo -v q
	rm -rf TestResults results .data
