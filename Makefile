# Bridge: realtime gateway (WebSocket, SSE, long-poll) over NATS JetStream.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= Release

.PHONY: help run test build nats-server load-smoke bench bench-rooms microbench format format-check clean test-js js-test-run js-bundle lint-k8s lint-docker cluster cluster-test pack pack-check pack-check-run

help:
	@echo "make run          start nats-server (JetStream) and the worker on http://127.0.0.1:8080; Ctrl-C stops both"
	@echo "                  WORKER_URL=http://127.0.0.1:8081 (or ASPNETCORE_URLS) moves the worker,"
	@echo "                  NATS_PORT=4222 NATS_MONITOR_PORT=8222 move nats-server, BRIDGE_DATA=.data its storage"
	@echo "                  (a relative BRIDGE_DATA is relative to the checkout);"
	@echo "                  NATS_SERVER_BIN=/path/to/nats-server runs that binary (>= 2.14) instead of tools/ or PATH;"
	@echo "                  in the background, stop it with the recipe it prints (SIGTERM to the pid in .data/run.pid)"
	@echo "make test         build and run every test (starts the real nats-server it needs)"
	@echo "make load-smoke   short load run with thresholds (part of make test)"
	@echo "make test-js      the browser client's tests (Node, real worker) and the dashboard in headless Chromium"
	@echo "make js-bundle    rebuild Bridge.Worker/wwwroot/js/bridge-client.js from clients/js (commit the result)"
	@echo "make lint-k8s     yamllint the Kubernetes manifests in k8s/ (part of make test)"
	@echo "make lint-docker  lint the Dockerfile with dockerfile-utils (part of make test)"
	@echo "make pack         NuGet packages Bridge.Client, Bridge.Contracts, the bridgectl tool, and the JS client's npm tarball in artifacts/packages"
	@echo "make pack-check   pack, then install each package in a fresh project and talk to a worker (part of make test)"
	@echo "make bench        peers (SignalR + Redis, raw NATS WebSocket) and every scenario at full size"
	@echo "make microbench   in-process BenchmarkDotNet runs of the per-message stages (FILTER='*Payload*', JOB=short)"
	@echo "make cluster      3 nats-server (JetStream cluster) + 3 workers + nginx on loopback, like production"
	@echo "make cluster-test failure tests on that cluster: kill/restart workers and NATS, nothing lost (part of make test)"
	@echo "make format       apply dotnet format; make format-check verifies the layout (part of make test)"

nats-server:
	@scripts/ensure-nats-server.sh >/dev/null

build:
	dotnet build Bridge.sln -c $(CONFIG) -nologo

run: nats-server
	scripts/run.sh

# yamllint from Debian's packages, unpacked into tools/ when missing (scripts/ensure-yamllint.sh).
lint-k8s:
	"$$(scripts/ensure-yamllint.sh)" -s k8s .yamllint

# dockerfile-utils from npm, unpacked into tools/ when missing (scripts/ensure-dockerfile-lint.sh).
lint-docker:
	"$$(scripts/ensure-dockerfile-lint.sh)" lint Dockerfile

pack:
	CONFIG=$(CONFIG) scripts/pack.sh

# Packs what the build made (--no-build), then checks the packages from a fresh .NET and Node project (about 1 min).
pack-check: nats-server build
	$(MAKE) --no-print-directory pack-check-run

pack-check-run:
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" CONFIG=$(CONFIG) scripts/check-packages.sh --no-build

test: nats-server lint-k8s lint-docker build format-check
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" scripts/test-dotnet.sh $(CONFIG)
	$(MAKE) --no-print-directory load-smoke
	$(MAKE) --no-print-directory js-test-run
	$(MAKE) --no-print-directory pack-check-run
	$(MAKE) --no-print-directory cluster-test

# A short load run (small N) of every main scenario whose thresholds catch breakage: zero loss and duplicates
# everywhere, delivery within a generous latency bound, generous memory bound. Each scenario starts its own
# nats-server and worker(s) on loopback and stops by itself; about 75 s. Reports: results/load-smoke.{md,html,csv}.
# A scenario that fails runs once more; passing then, it is named on a FLAKY line at the end (like test-dotnet.sh).
# Open files: raised to the hard limit (idle connections hold one descriptor per connection on each side).
load-smoke: nats-server build
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- smoke

# The JavaScript client (clients/js): npm ci, type check, build, check that the committed dashboard bundle is what
# the sources build, then node --test against a real worker + nats-server, then the dashboard in Debian's headless
# Chromium (installed by scripts/ensure-chromium.sh; Playwright's browser download is not used). A file with a failed
# test runs once more alone (scripts/test-js.sh): passing then is reported as FLAKY, like scripts/test-dotnet.sh.
WORKER_DLL := Bridge.Worker/bin/$(CONFIG)/net10.0/Bridge.Worker.dll

test-js: nats-server
	dotnet build Bridge.Worker -c $(CONFIG) -nologo -v q
	$(MAKE) --no-print-directory js-test-run

js-test-run:
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	cd clients/js && npm run --silent typecheck && npx tsc -p tsconfig.json && node scripts/bundle.mjs --check
	nats="$$(scripts/ensure-nats-server.sh)" && chromium="$$(scripts/ensure-chromium.sh)" && \
	  export NATS_SERVER_BIN="$$nats" CHROMIUM_BIN="$$chromium" BRIDGE_WORKER_DLL="$(CURDIR)/$(WORKER_DLL)" && \
	  cd clients/js && ../../scripts/test-js.sh 120000 test/*.test.mjs && ../../scripts/test-js.sh 180000 test-browser/*.test.mjs

js-bundle:
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm run build

# Peers: Bridge (JSON, msgpack) vs ASP.NET Core SignalR + Redis vs nats-server's own WebSocket listener, same
# workload in the same run (docs/benchmarks.md); then every Bridge scenario at full size; then one table of every
# goal (issue 14's ratios, Bridge.LoadTests/Harness/Goals.cs) in results/goals-bench.md. BENCH_ARGS adds options,
# e.g. BENCH_ARGS="--repeat 3"; "--fail-on-goals" makes a missed goal fail the run.

cluster: nats-server
	scripts/cluster.sh

# Failure tests on the local cluster (docs/cluster.md): a worker SIGKILLed, a nats-server SIGKILLed, a rolling
# restart of the workers, the whole NATS cluster restarted, each while clients publish and receive through nginx;
# lost and duplicated must be 0. Loopback only, bounded, about 2 minutes.
cluster-test: nats-server build
	@scripts/ensure-nginx.sh >/dev/null
	NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)" dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- cluster

bench: nats-server build
	scripts/ensure-redis.sh >/dev/null
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; ulimit -n 65536 2>/dev/null || true; \
	export NATS_SERVER_BIN="$$(scripts/ensure-nats-server.sh)"; \
	dotnet run --project Bridge.LoadTests -c $(CONFIG) --no-build -- bench $(BENCH_ARGS)

# In-process micro-benchmarks of the worker's per-message stages (bench/Microbench): where a goal's microseconds go.
microbench:
	dotnet run --project bench/Microbench -c Release -- --filter '$(or $(FILTER),*)' --job $(or $(JOB),short) --artifacts results/microbench

bench-rooms: bench

format:
	dotnet format Bridge.sln

# dotnet format has three parts: whitespace, code style (IDE rules) and analyzers (CA rules). The build already fails
# on the last two (TreatWarningsAsErrors and EnforceCodeStyleInBuild, Directory.Build.props), so the check verifies
# the part nothing else does, the layout .editorconfig asks for (about 15 s; all three take minutes). Part of make test.
format-check:
	dotnet format whitespace Bridge.sln --verify-no-changes

clean:
	dotnet clean Bridge.sln -nologo -v q
	rm -rf TestResults results .data clients/js/dist artifacts
