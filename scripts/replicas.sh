#!/usr/bin/env bash
# Two replicas of the built binary on one PostgreSQL (run under scripts/with-postgres.sh): a gate
# opened and closed through one is seen by Flagger's next check on the other, at once.
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
expect 403 "a closed gate refuses"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/promotion/open" -d '{"sticky":true}'
expect 200 "opened through A, approved on B"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$a/v1/canaries/test/podinfo/gates/promotion/close" -d '{}'
expect 403 "closed through A, refused on B"
if grep -h '"level":"error"' "$logs"/*.log; then
    echo "replicas: a replica logged an error" >&2
    exit 1
fi
