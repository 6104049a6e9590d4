#!/usr/bin/env bash
# Prints the folder holding dotnet-gcdump, dotnet-counters and dotnet-trace (the profiling tools behind the
# numbers in docs/benchmarks.md), installing any that is missing into tools/dotnet-tools/ with
# `dotnet tool install --tool-path` (no global or system-wide install; tools/ is ignored by git).
# Usage: "$(scripts/ensure-dotnet-tools.sh)/dotnet-gcdump" collect -p <pid>
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/dotnet-tools"
# Pinned: the versions the profiles in docs/benchmarks.md were taken with.
version="10.0.750501"

for tool in dotnet-gcdump dotnet-counters dotnet-trace; do
  if [ ! -x "$dir/$tool" ]; then
    echo "ensure-dotnet-tools: installing $tool $version into tools/dotnet-tools" >&2
    dotnet tool install --tool-path "$dir" "$tool" --version "$version" >&2
  fi
done

echo "$dir"
