#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on 127.0.0.1 and its URL in
# GATEHOUSE_TEST_POSTGRES; the server and its files are removed afterwards.
#
#   scripts/with-postgres.sh swift test
#
# Needs Debian's postgresql package (initdb and postgres under /usr/lib/postgresql/*/bin).
# As root, the server runs as the `postgres` user the package creates.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z "$bin" ]]; then
    echo "with-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
fi
run_as=()
if [[ $(id -u) == 0 ]]; then run_as=(runuser -u postgres --); fi

dir=$(mktemp -d /tmp/gatehouse-pg.XXXXXX)
chmod 755 "$dir"
[[ $(id -u) == 0 ]] && chown postgres "$dir"
port=${PGPORT_FOR_TESTS:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

stop() {
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U gatehouse --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}
"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
}
"$bin/createdb" -h 127.0.0.1 -p "$port" -U gatehouse gatehouse_test

export GATEHOUSE_TEST_POSTGRES="postgres://gatehouse@127.0.0.1:$port/gatehouse_test?sslmode=disable"
export GATEHOUSE_TEST_POSTGRES_DATA="$dir/data"
export GATEHOUSE_TEST_POSTGRES_CTL="${run_as[*]} $bin/pg_ctl"
"$@"
