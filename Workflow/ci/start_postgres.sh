#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the workflow tests.
#
# Installs the Debian packages when initdb is missing, initialises a cluster in $MVA_PG_DIR
# (default /tmp/mva-postgres), starts it on a free port, creates role and database `mva_test`
# and prints ONE line on stdout:
#     export MVA_TEST_POSTGRES_URL=postgresql+psycopg://mva_test:...@127.0.0.1:PORT/mva_test
# Use:  eval "$(bash Workflow/ci/start_postgres.sh)"
# Stop: bash Workflow/ci/start_postgres.sh --stop
# Everything else goes to stderr. Running it again reuses a server that is still up.
set -euo pipefail

PG_DIR="${MVA_PG_DIR:-/tmp/mva-postgres}"
DATA="$PG_DIR/data"
PASSWORD="mva_test_password"

log() { echo "start_postgres: $*" >&2; }

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

BIN=$(find_bin)
if [ -z "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then log "PostgreSQL is not installed and this is not root: install postgresql"; exit 1; fi
    log "installing PostgreSQL (apt-get)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
fi

# initdb refuses to run as root: run the server as the `postgres` account then.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /bin/bash postgres
    AS_PG=(runuser -u postgres --)
else
    AS_PG=()
fi

if [ "${1:-}" = "--stop" ]; then
    "${AS_PG[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    exit 0
fi

mkdir -p "$PG_DIR"
[ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"

if [ -f "$PG_DIR/port" ] && "${AS_PG[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    PORT=$(cat "$PG_DIR/port")
    log "reusing the server on 127.0.0.1:$PORT"
else
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initialising $DATA"
        "${AS_PG[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --no-locale >&2
    fi
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$PORT" > "$PG_DIR/port"
    "${AS_PG[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PG_DIR -c fsync=off -c max_connections=50" start >&2
    log "started on 127.0.0.1:$PORT (log: $PG_DIR/server.log)"
fi

PSQL=("${AS_PG[@]}" "$BIN/psql" -h "$PG_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'mva_test'")" != 1 ]; then
    "${PSQL[@]}" -c "CREATE ROLE mva_test LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'mva_test'")" != 1 ]; then
    "${PSQL[@]}" -c "CREATE DATABASE mva_test OWNER mva_test" >&2
fi

echo "export MVA_TEST_POSTGRES_URL=postgresql+psycopg://mva_test:$PASSWORD@127.0.0.1:$PORT/mva_test"
