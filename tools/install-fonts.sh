#!/usr/bin/env bash
# Installs what the case-file page (report.pdf of every evidence package) needs when missing:
#   fonts-wqy-microhei  the Simplified Chinese font (TrueType outlines, so matplotlib embeds it)
#   poppler-utils       pdftoppm/pdftotext, with which the tests look at the page as a person would
#   openssl             the signature check the page prints (openssl pkeyutl -verify -rawin)
# Needs root (CI runs as root); otherwise it says what to install. Without the font the page is
# written in English only; the tests of the page fail without these tools (they never skip).
set -euo pipefail
FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if [ -f "$FONT" ] && command -v pdftoppm >/dev/null 2>&1 \
    && command -v pdftotext >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-fonts: run: sudo apt-get install fonts-wqy-microhei poppler-utils openssl" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends fonts-wqy-microhei poppler-utils openssl >/dev/null
test -f "$FONT" && command -v pdftoppm >/dev/null && command -v openssl >/dev/null
