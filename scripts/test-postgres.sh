#!/usr/bin/env bash
# scripts/test-postgres.sh: a throwaway PostgreSQL cluster for the test suite (127.0.0.1 only).
#
#   PGURL=$(scripts/test-postgres.sh start)   # prints exactly one line: the database URL
#   OPENLINE_TEST_POSTGRES_URL=$PGURL OPENLINE_REQUIRE_POSTGRES=1 cargo test --test store
#   scripts/test-postgres.sh stop             # stops the cluster and deletes its files
#   scripts/test-postgres.sh url              # the URL of the running cluster, if any
#
# `start` is idempotent: with a cluster of this checkout already running it prints its URL again.
# The cluster lives in a temporary directory (data, log, unix socket) owned by the `postgres` user
# when run as root; it listens on 127.0.0.1 on a free port with trust authentication, and runs
# with fsync off. It is for tests only. `stop DIR` stops the cluster in DIR (the directory printed
# on stderr by `start`). If PostgreSQL is not installed and we are root, Debian's `postgresql`
# package is installed with apt-get. All diagnostics go to stderr; stdout carries only the URL.
set -euo pipefail

DB_NAME=openline_test
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# One cluster per checkout, so two checkouts on one machine don't share (or stop) each other's.
STATE_FILE="${TMPDIR:-/tmp}/openline-test-postgres.$(printf '%s' "$ROOT_DIR" | cksum | cut -d' ' -f1)"
# The cluster owner may not be able to read the caller's working directory.
cd /

log() { printf 'test-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    # Not Debian's layout: fall back to whatever is on PATH.
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and we are not root to install it"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available"
    log "installing Debian package postgresql (waiting up to 300 s for the apt lock)"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    "${apt[@]}" update >&2
    "${apt[@]}" install -y --no-install-recommends postgresql >&2
}

# Runs a command as the cluster owner: `postgres` when we are root (initdb refuses root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

url_for() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$1" "$DB_NAME"; }

# Reads STATE_FILE into BASE, PORT, BINDIR; returns 1 if there is none.
load_state() {
    [[ -f "$STATE_FILE" ]] || return 1
    BASE=$(sed -n 1p "$STATE_FILE")
    PORT=$(sed -n 2p "$STATE_FILE")
    BINDIR=$(sed -n 3p "$STATE_FILE")
    [[ -n "$BASE" && -n "$PORT" && -n "$BINDIR" ]]
}

is_running() { [[ -d "$1/data" ]] && as_owner "$2/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

cmd_start() {
    local BASE PORT BINDIR
    if load_state && is_running "$BASE" "$BINDIR"; then
        log "already running in $BASE"
        url_for "$PORT"
        return 0
    fi
    rm -f "$STATE_FILE"

    if ! BINDIR=$(find_bindir); then
        install_postgres
        BINDIR=$(find_bindir) || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after install"
    fi
    log "using $BINDIR"

    BASE=$(mktemp -d "${TMPDIR:-/tmp}/openline-pg.XXXXXX")
    mkdir -p "$BASE/sock"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$BASE"
    log "cluster directory $BASE (stop with: $0 stop $BASE)"

    as_owner "$BINDIR/initdb" -D "$BASE/data" -U postgres --auth=trust -E UTF8 --locale=C \
        --no-sync >"$BASE/initdb.log" 2>&1 || { cat "$BASE/initdb.log" >&2; die "initdb failed"; }

    local attempt started=0
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$((20000 + RANDOM % 40000))
        port_in_use "$PORT" && continue
        if as_owner "$BINDIR/pg_ctl" -D "$BASE/data" -l "$BASE/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $BASE/sock -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off" start >&2; then
            started=1
            break
        fi
        log "start on port $PORT failed (attempt $attempt); retrying on another port"
        tail -n 5 "$BASE/postgres.log" >&2 || true
    done
    [[ $started -eq 1 ]] || die "could not start PostgreSQL; see $BASE/postgres.log"
    printf '%s\n%s\n%s\n' "$BASE" "$PORT" "$BINDIR" >"$STATE_FILE"

    as_owner "$BINDIR/createdb" -h "$BASE/sock" -p "$PORT" -U postgres "$DB_NAME" >&2 \
        || die "createdb $DB_NAME failed"
    url_for "$PORT"
}

cmd_stop() {
    local BASE PORT BINDIR
    if [[ $# -ge 1 ]]; then
        BASE=${1%/}
        [[ $(basename "$BASE") == data ]] && BASE=$(dirname "$BASE")
        BINDIR=$(find_bindir) || die "no pg_ctl found"
    elif ! load_state; then
        log "no cluster recorded for this checkout; nothing to stop"
        return 0
    fi
    if is_running "$BASE" "$BINDIR"; then
        as_owner "$BINDIR/pg_ctl" -D "$BASE/data" -m immediate -w stop >&2 || true
    fi
    case "$BASE" in
        "${TMPDIR:-/tmp}"/openline-pg.*) rm -rf "$BASE" ;;
        *) log "left $BASE in place (not a directory this script created)" ;;
    esac
    if [[ -f "$STATE_FILE" && $(sed -n 1p "$STATE_FILE") == "$BASE" ]]; then
        rm -f "$STATE_FILE"
    fi
    log "stopped"
}

cmd_url() {
    local BASE PORT BINDIR
    load_state && is_running "$BASE" "$BINDIR" || die "not running; use: $0 start"
    url_for "$PORT"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    url) cmd_url ;;
    *) printf 'usage: %s start | stop [DIR] | url\n' "$0" >&2; exit 2 ;;
esac
