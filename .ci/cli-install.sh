#!/usr/bin/env bash
# The CLI as the README installs it: scripts/install-cli.sh into a fresh prefix, then used as
# `gatehouse` and as the kubectl plugin `kubectl gatehouse` against a running service, with the
# completion script the README mentions.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$prefix"' EXIT
failures=0
passes=0
check() { # description command...
    local description=$1; shift
    if "$@" >/dev/null 2>&1; then passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: $description"; fi
}

scripts/install-cli.sh "$prefix" >"$prefix/install.log" 2>&1 || { cat "$prefix/install.log"; exit 1; }
export PATH="$prefix/bin:$PATH"
check "installed as gatehouse" test "$(command -v gatehouse)" = "$prefix/bin/gatehouse"
check "gatehouse --version" test "$(gatehouse --version)" = 0.1.0

port=$((20000 + RANDOM % 20000))
export GATEHOUSE_URL="http://127.0.0.1:$port"
gatehouse serve --host 127.0.0.1 --port "$port" --database "$prefix/gatehouse.sqlite" >"$prefix/server.log" 2>&1 &
for _ in $(seq 1 100); do curl -fs "$GATEHOUSE_URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -s -X POST "$GATEHOUSE_URL/v1/flagger/confirm-rollout" \
    -d '{"name": "podinfo", "namespace": "test", "checksum": "c1"}' >/dev/null

check "gatehouse version names the service's version" grep -q "Server: 0.1.0" <<<"$(gatehouse version)"
if ! command -v kubectl >/dev/null; then
    echo "FAIL: kubectl is not installed, so the plugin cannot be tried"; failures=$((failures + 1))
else
    check "kubectl plugin list finds kubectl-gatehouse" grep -q "$prefix/bin/kubectl-gatehouse" <<<"$(kubectl plugin list 2>&1)"
    status=$(kubectl gatehouse status -A)
    check "kubectl gatehouse status -A lists the canary: $status" grep -q "test/podinfo" <<<"$status"
    check "kubectl gatehouse opens a gate" kubectl gatehouse open rollout podinfo -n test --reason "via kubectl"
    check "kubectl gatehouse's help names it so" grep -q "USAGE: kubectl gatehouse" <<<"$(kubectl gatehouse --help)"
fi
check "a bash completion script" grep -q "gatehouse" <<<"$(gatehouse --generate-completion-script bash)"

echo "cli-install: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
