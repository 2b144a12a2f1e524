#!/usr/bin/env bash
# Installs Debian's redis-server for the test of the case platform's Redis job broker
# (tests/survey/web/test_jobs.py starts its own throw-away server on a free localhost port;
# nothing is started here). Needs root (CI runs as root); otherwise it says what to install and
# the test skips (it fails under SITEWATCH_REQUIRE_REDIS=1, as `make test` sets).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-redis: run: sudo apt-get install redis-server" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server
