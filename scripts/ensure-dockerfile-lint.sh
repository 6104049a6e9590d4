#!/usr/bin/env bash
# Prints the path of dockerfile-utils (npm; its `lint` validates a Dockerfile's instructions and flags deprecated or
# ineffective ones), installing the pinned version into tools/dockerfile-utils when missing. No Docker engine needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=0.16.3
dir="$root/tools/dockerfile-utils"
bin="$dir/node_modules/.bin/dockerfile-utils"
if [ ! -x "$bin" ] || [ "$(node -p "require('$dir/node_modules/dockerfile-utils/package.json').version" 2>/dev/null)" != "$version" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --no-save "dockerfile-utils@$version" >&2
fi
echo "$bin"
