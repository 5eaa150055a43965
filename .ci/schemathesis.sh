#!/usr/bin/env bash
# Schemathesis (--checks all, every operation) against the built binary serving its own OpenAPI
# document: once open (no access file, as the loadtester) and once with an access file, a bearer
# token and a protected /metrics. A fixed seed keeps the run the same each time.
#
#   .ci/schemathesis.sh BINARY
set -euo pipefail
binary=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=schemathesis-token-0123456789abcdef
cat >"$work/access.yaml" <<YAML
tokens:
  - name: schemathesis
    sha256: $(printf %s "$token" | sha256sum | cut -d' ' -f1)
    namespaces: ["*"]
    actions: [read, open, close, rollback, freeze]
YAML

run() { # name [serve options...]
    local name=$1 port=$((20000 + RANDOM % 20000))
    shift
    rm -f "$work"/*.sqlite*
    "$binary" serve --host 127.0.0.1 --port "$port" --database "$work/$name.sqlite" --log-level error "$@" \
        >"$work/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    local auth=()
    [[ $name == protected ]] && auth=(-H "Authorization: Bearer $token")
    echo "--- schemathesis: $name"
    (cd "$work" && st --config-file "$here/schemathesis.toml" run "http://127.0.0.1:$port/openapi.yaml" \
        --url "http://127.0.0.1:$port" --checks all --max-examples 50 --workers 1 --seed 1 \
        --no-color "${auth[@]}") | tail -20
    local status=${PIPESTATUS[0]}
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    if grep -q '"level":"error"\|"level":"critical"' "$work/$name.log"; then
        echo "the service logged an error during the run:"
        grep '"level":"error"\|"level":"critical"' "$work/$name.log" | head -5
        return 1
    fi
    return "$status"
}

run open
run protected --access-file "$work/access.yaml" --protect-metrics true
