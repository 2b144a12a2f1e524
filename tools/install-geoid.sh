#!/usr/bin/env bash
# Installs the EGM96 geoid grid that DJI WPML route files with absolute heights need
# (flightplans/geoid.py): Debian's proj-data puts egm96_15.gtx in /usr/share/proj.
# sitewatch never downloads the grid at run time. Needs root (CI runs as root); otherwise it
# says what to install. Without the grid, plans with --dem cannot be written as WPML with
# heights above the geoid (one clear error), and the real-grid tests skip unless
# SITEWATCH_REQUIRE_GEOID=1.
set -euo pipefail
for f in /usr/share/proj/egm96_15.gtx /usr/share/proj/us_nga_egm96_15.tif; do
    [ -f "$f" ] && exit 0
done
if [ "$(id -u)" != "0" ]; then
    echo "install-geoid: run: sudo apt-get install proj-data" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends proj-data >/dev/null
test -f /usr/share/proj/egm96_15.gtx
