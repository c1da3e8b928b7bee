# Sourced by scripts/test and scripts/bench: starts a throwaway PostgreSQL
# server on loopback (initdb into a temp dir; no system service) and
# exports POSTERN_TEST_DATABASE_URL for the black-box suite. The server and
# its files go away when the calling script exits.
#
#   start_test_postgres [fast]   returns 1 if PostgreSQL is not installed
#
# `fast` turns off fsync for the test pass; the benchmark keeps the
# durable defaults and loads pg_stat_statements (statements per flow).

_pg_bin() {
    if command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    # Debian keeps the server binaries off PATH.
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

# Runs a server command as a user initdb accepts (never root).
_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_test_postgres() {
    if [ -n "${_PG_DIR:-}" ]; then
        _pg_as "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$_PG_DIR"
        _PG_DIR=
    fi
}

start_test_postgres() {
    _PG_BIN=$(_pg_bin) || true
    if [ -z "$_PG_BIN" ]; then
        return 1
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "PostgreSQL is installed but there is no 'postgres' user to run it as" >&2
        return 1
    fi
    _PG_DIR=$(mktemp -d /tmp/postern-pg.XXXXXX)
    trap stop_test_postgres EXIT
    chmod 755 "$_PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$_PG_DIR"
    _pg_as "$_PG_BIN/initdb" -D "$_PG_DIR/data" -U postgres --auth=trust -E UTF8 \
        >"$_PG_DIR/initdb.log" 2>&1 || { cat "$_PG_DIR/initdb.log" >&2; return 2; }
    local opts="-c listen_addresses=127.0.0.1 -k $_PG_DIR -c max_connections=300"
    if [ "${1:-}" = fast ]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    else
        # The benchmark counts statements per flow.
        opts="$opts -c shared_preload_libraries=pg_stat_statements"
    fi
    local port tries=0
    while :; do
        port=$((20000 + RANDOM % 20000))
        if _pg_as "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -w -t 30 \
            -o "$opts -p $port" start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            cat "$_PG_DIR/server.log" >&2
            return 2
        fi
    done
    export POSTERN_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "PostgreSQL $("$_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $_PG_DIR)"
}
