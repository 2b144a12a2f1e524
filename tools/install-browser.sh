#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser tests when they are missing.
# Needs root (CI runs as root); otherwise it says what to install and leaves the tests to skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-browser: chromium/chromedriver missing; run: sudo apt-get install chromium chromium-driver" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium && command -v chromedriver
