#!/usr/bin/env bash
# `make pack-check` (part of make test): packs (scripts/pack.sh), then checks each package as a stranger would use it:
# a fresh .NET console project restores Bridge.Client and Bridge.Contracts from artifacts/packages and round-trips a
# message through a worker; the bridgectl tool installs from there and publishes; a fresh Node project installs the npm
# tarball and round-trips a message. Offline-safe: NuGet reads only artifacts/packages and this machine's package
# cache (as a local feed, so a repacked 0.1.0 is never confused with a cached one); npm prefers its cache. The worker
# and nats-server come from scripts/run.sh on free loopback ports.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$root/artifacts/packages"
config="${CONFIG:-Release}"
version="$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)"
say() { echo "check-packages: $*"; }

scripts/pack.sh "$@" >/dev/null

tmp="$(mktemp -d)"
run_pid=""
cleanup() {
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM "$run_pid" 2>/dev/null || true # (a background job ignores SIGINT)
    wait "$run_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# What each package must carry: README and XML docs in the .nupkg (as NuGet extracts it below), a PDB in the .snupkg.
for p in Bridge.Contracts Bridge.Client Bridge.Cli; do
  [ -f "$out/$p.$version.nupkg" ] && [ -f "$out/$p.$version.snupkg" ] || { say "missing $p $version packages in $out"; exit 1; }
  if command -v unzip >/dev/null; then
    [[ "$(unzip -Z1 "$out/$p.$version.snupkg")" == *.pdb* ]] || { say "$p.$version.snupkg holds no PDB"; exit 1; }
  fi
done
[ -f "$out/bridge-client-$version.tgz" ] || { say "missing bridge-client-$version.tgz"; exit 1; }

# A worker to talk to: make run's script on free ports, its own data folder.
# Three distinct free ports, picked in this shell (a $(subshell) would repeat the same $RANDOM each time), below the
# kernel's ephemeral range (32768-60999 by default): a port there can be the local end of another process's outgoing
# connection, which the probe below does not see and which makes nats-server's listen fail ("address already in use").
used=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ "$used" == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    used+="$p "
    printf -v "$1" '%s' "$p"
    return
  done
}
free_port port
free_port nats_port
free_port monitor_port
WORKER_URL="http://127.0.0.1:$port" NATS_PORT="$nats_port" NATS_MONITOR_PORT="$monitor_port" BRIDGE_DATA="$tmp/data" \
  BRIDGE_WORKER_DLL="$root/Bridge.Worker/bin/$config/net10.0/Bridge.Worker.dll" scripts/run.sh >"$tmp/run.log" 2>&1 &
run_pid=$!
for _ in $(seq 1 300); do
  grep -q "^Bridge is running" "$tmp/run.log" && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$tmp/run.log"; exit 1; }
  sleep 0.2
done
grep -q "^Bridge is running" "$tmp/run.log" || { say "the worker did not start"; cat "$tmp/run.log"; exit 1; }

# NuGet: only the packages just made, and the machine's cache read as a feed (no network needed).
cache="$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')"
cat >"$tmp/NuGet.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="bridge" value="$out" />
    <add key="cache" value="$cache" />
  </packageSources>
</configuration>
XML
export NUGET_PACKAGES="$tmp/nuget"

mkdir -p "$tmp/dotnet"
cp samples/package-check/dotnet/* "$tmp/dotnet/"
cp "$tmp/NuGet.config" "$tmp/dotnet/"
(cd "$tmp/dotnet" && dotnet run -c Release -p:BridgeVersion="$version" -- "ws://127.0.0.1:$port/ws")
for p in bridge.client bridge.contracts; do
  name="$(ls "$NUGET_PACKAGES/$p/$version/lib/net10.0/" | grep '\.dll$')"
  [ -f "$NUGET_PACKAGES/$p/$version/README.md" ] && [ -f "$NUGET_PACKAGES/$p/$version/lib/net10.0/${name%.dll}.xml" ] ||
    { say "$p $version lacks its README or XML docs"; exit 1; }
done

dotnet tool install Bridge.Cli --version "$version" --tool-path "$tmp/tool" --configfile "$tmp/NuGet.config" >/dev/null
"$tmp/tool/bridgectl" pub packages.tool '{"from":"the bridgectl tool package"}' --url "http://127.0.0.1:$port" | grep "^stored as seq " |
  sed 's/^/tool: /'

mkdir -p "$tmp/node"
cp samples/package-check/node/* "$tmp/node/"
ws_version="$(node -p "require('./clients/js/package.json').devDependencies.ws")"
(cd "$tmp/node" && npm install --prefer-offline --no-audit --no-fund --loglevel=error "$out/bridge-client-$version.tgz" "ws@$ws_version" >/dev/null &&
  node check.mjs "http://127.0.0.1:$port")

say "Bridge.Contracts, Bridge.Client, Bridge.Cli and @bridge/client $version install from $out and work"
