#!/usr/bin/env bash
# Prints the path of a Chromium for the browser test, installing Debian's `chromium` package when none is found.
#
# Order: $CHROMIUM_BIN, /usr/bin/chromium, chromium or chromium-browser on PATH. Otherwise `apt-get install
# chromium` (as root, or through passwordless sudo). Unlike nats-server (scripts/ensure-nats-server.sh) it cannot
# be unpacked into tools/ with dpkg -x: Chromium needs some forty shared libraries (NSS, GTK, ...) that a bare
# machine lacks, so it is installed with its dependencies. Playwright's own browser download is not used.
set -euo pipefail

log() { echo "ensure-chromium: $*" >&2; }

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

for candidate in "${CHROMIUM_BIN:-}" /usr/bin/chromium "$(command -v chromium 2>/dev/null || true)" \
                 "$(command -v chromium-browser 2>/dev/null || true)"; do
  if works "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  log "Chromium is not installed and installing it needs root (apt-get install chromium)."
  log "Install it, or set CHROMIUM_BIN=/path/to/chromium."
  exit 1
fi
command -v apt-get >/dev/null || { log "no apt-get: install Chromium and set CHROMIUM_BIN"; exit 1; }

log "installing Debian's chromium package (once; a minute or two)"
install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
}
# A fresh machine has no package lists yet, or old ones: update and retry once.
if ! install; then
  "${sudo[@]}" apt-get update -q >&2
  install
fi
works /usr/bin/chromium || { log "chromium was installed but /usr/bin/chromium does not run"; exit 1; }
echo /usr/bin/chromium
