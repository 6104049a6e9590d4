#!/usr/bin/env bash
# `make pack`: the NuGet packages Bridge.Contracts and Bridge.Client (README, XML docs, symbols .snupkg, SourceLink),
# the bridgectl tool (Bridge.Cli), and the JavaScript client as an npm tarball, all into artifacts/packages/.
# The version is VersionPrefix in Directory.Build.props; clients/js/package.json must carry the same one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$root/artifacts/packages"
config="${CONFIG:-Release}"
# --no-build: pack what `make build` already built (make test); SourceLink then comes from that build.
no_build=()
[ "${1:-}" = "--no-build" ] && no_build=(--no-build)

version="$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)"
js_version="$(node -p "require('./clients/js/package.json').version")"
if [ "$version" != "$js_version" ]; then
  echo "pack.sh: Directory.Build.props has version $version but clients/js/package.json has $js_version" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
# SourceLink maps sources to the 'origin' remote on GitHub; a clone without one gets an empty link (a warning).
git remote get-url origin 2>/dev/null | grep -q github.com ||
  echo "pack.sh: no GitHub 'origin' remote here: the packages' SourceLink will be empty" >&2
for project in Bridge.Contracts Bridge.Client Bridge.Cli; do
  dotnet pack "$project" -c "$config" -o "$out" -nologo -v q "${no_build[@]}" -p:ContinuousIntegrationBuild=true
done

# npm pack takes dist/ (package.json "files"): the TypeScript build, not the dashboard bundle.
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p tsconfig.json && npm pack --silent --pack-destination "$out" >/dev/null)
ls -1 "$out"
