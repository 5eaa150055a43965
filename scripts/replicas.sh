#!/usr/bin/env bash
# An installation on SQLite moved to PostgreSQL with `gatehouse migrate`, then two replicas of the
# built binary on it (run under scripts/with-postgres.sh, on its fresh database): the gate opened
# before the move is open, and a gate opened or closed through one replica is seen by Flagger's
# next check on the other, at once.
#
#   scripts/with-postgres.sh scripts/replicas.sh .build/debug/gatehouse
set -euo pipefail
binary=${1:?usage: replicas.sh BINARY}
: "${GATEHOUSE_TEST_POSTGRES:?run under scripts/with-postgres.sh}"
logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$logs"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
a=$(free_port)
b=$(free_port)

# Before: one service on SQLite, with an open gate, stopped.
"$binary" serve --database "$logs/old.sqlite" --host 127.0.0.1 --port "$a" >"$logs/old.log" 2>&1 &
old=$!
for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$a/readyz" && break; sleep 0.2; done
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/promotion/open" -d '{"sticky":true}'
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/rollout/open?cluster=eu-1" -d '{}'
kill -TERM "$old"
wait "$old"
copied=$("$binary" migrate --from "$logs/old.sqlite" --to "$GATEHOUSE_TEST_POSTGRES")
echo "migrate: $copied"
[[ "$copied" == "copied 2 canaries, 2 gates, 0 freezes and 2 audit entries from "* ]] || {
    echo "replicas: gatehouse migrate said: $copied" >&2
    exit 1
}
again=$("$binary" migrate --from "$logs/old.sqlite" --to "$GATEHOUSE_TEST_POSTGRES" 2>&1) && {
    echo "replicas: a second migrate into a database that holds data was not refused: $again" >&2
    exit 1
}
echo "ok: a second migrate is refused: $again"

for port in "$a" "$b"; do
    "$binary" serve --database "$GATEHOUSE_TEST_POSTGRES" --host 127.0.0.1 --port "$port" >"$logs/$port.log" 2>&1 &
    pids+=($!)
done
for port in "$a" "$b"; do
    for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.2; done
    curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" || { cat "$logs/$port.log"; exit 1; }
done
check() {
    curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$b/v1/flagger/confirm-promotion" \
        -d '{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"c1"}'
}
expect() {
    local got
    got=$(check)
    if [[ "$got" != "$1" ]]; then
        echo "replicas: $2: the check on B answered $got, not $1" >&2
        exit 1
    fi
    echo "ok: $2 ($got)"
}
expect 200 "opened on SQLite before the move, approved on B"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/promotion/close" -d '{}'
expect 403 "closed through A, refused on B"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/promotion/open" -d '{"sticky":true}'
expect 200 "opened through A, approved on B"
eu=$(curl -fs "http://127.0.0.1:$b/v1/canaries/test/podinfo?cluster=eu-1")
[[ "$eu" == *'"cluster":"eu-1"'* && "$eu" == *'"rollout":{"actor"'* ]] || {
    echo "replicas: the eu-1 canary did not arrive whole: $eu" >&2
    exit 1
}
echo "ok: eu-1/test/podinfo arrived with its cluster and gate"
if grep -h '"level":"error"' "$logs"/*.log; then
    echo "replicas: a replica logged an error" >&2
    exit 1
fi
