#!/usr/bin/env bash
# Debian's Chromium for the console's browser tests (tests/browser): installed from Debian's
# packages when missing, never downloaded by a test tool. Prints the browser's path.
set -euo pipefail
BROWSER="${LEADTRAIL_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BROWSER" ]; then
  echo "$BROWSER"
  exit 0
fi
if ! command -v apt-get > /dev/null; then
  echo "error: no $BROWSER and no apt-get: install Chromium and set LEADTRAIL_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo -n"
fi
echo "installing Debian's chromium for the browser tests ..." >&2
if ! $SUDO apt-get install -y --no-install-recommends chromium > /tmp/leadtrail-chromium.log 2>&1; then
  $SUDO apt-get update > /dev/null 2>&1 || true
  $SUDO apt-get install -y --no-install-recommends chromium >> /tmp/leadtrail-chromium.log 2>&1 || {
    echo "error: could not install chromium (see /tmp/leadtrail-chromium.log)" >&2
    exit 1
  }
fi
echo "$BROWSER"
