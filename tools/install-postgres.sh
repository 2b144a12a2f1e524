#!/usr/bin/env bash
# PostgreSQL for the registry tests (tests/survey/registry): installs Debian's postgresql when
# missing and starts a throw-away cluster that listens on a Unix socket in its own folder only
# (no TCP port, trust authentication, nothing else on the machine touched).
#
#   bash tools/install-postgres.sh          install if needed, start (or reuse) the cluster,
#                                           print its URL and write it to $DIR/url
#   bash tools/install-postgres.sh stop     stop the cluster and remove its folder
#
# DIR is $SITEWATCH_PG_DIR, default /tmp/sitewatch-postgres-<uid>; tests/survey/registry/
# conftest.py reads $SITEWATCH_TEST_POSTGRES_URL, else DIR/url. PostgreSQL refuses to run as
# root: as root the cluster belongs to the `postgres` user (runuser), otherwise to you.
# Installing needs root (CI runs as root); without it the script says what to install and
# exits 0, and the PostgreSQL tests skip (they fail under SITEWATCH_REQUIRE_POSTGRES=1, as
# `make test` sets).
set -euo pipefail
DIR="${SITEWATCH_PG_DIR:-/tmp/sitewatch-postgres-$(id -u)}"
DATA="$DIR/data"

bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

as_owner() {
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-start}" = "stop" ]; then
    if BIN="$(bindir)" && [ -f "$DATA/PG_VERSION" ]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    exit 0
fi

if ! BIN="$(bindir)"; then
    if [ "$(id -u)" != "0" ]; then
        echo "install-postgres: PostgreSQL missing; run: sudo apt-get install postgresql" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # the package's own cluster is not needed; policy-rc.d may stop it from starting, fine
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    BIN="$(bindir)"
fi

if [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    cat "$DIR/url"
    exit 0
fi

rm -rf "$DIR"
mkdir -p "$DIR"
if [ "$(id -u)" = "0" ]; then
    chown postgres: "$DIR"
    chmod 755 "$DIR"
fi
as_owner "$BIN/initdb" -D "$DATA" -U sitewatch --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$DIR/initdb.log" 2>&1 || as_owner "$BIN/initdb" -D "$DATA" -U sitewatch --auth=trust \
    -E UTF8 >"$DIR/initdb.log" 2>&1
as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$DIR' -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null
URL="postgresql://sitewatch@/postgres?host=$DIR"
echo "$URL" >"$DIR/url.tmp"
mv "$DIR/url.tmp" "$DIR/url"
echo "$URL"
