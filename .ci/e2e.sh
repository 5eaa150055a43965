#!/usr/bin/env bash
# End-to-end checks against the built gatehouse binary: the README's curl commands, the shape of
# answers, durability across kill -9, a clean exit on SIGTERM, the log (JSON lines with typed
# values, every change once, start and stop).
# E2E_WORK names the work folder (the caller's, kept); .ci/runtime-image.sh runs this script
# against the binary inside the image's file system that way.
set -euo pipefail

binary=${1:?usage: e2e.sh PATH_TO_GATEHOUSE_BINARY}
if [[ -n "${E2E_WORK:-}" ]]; then
    work=$E2E_WORK
    trap 'kill -9 $(jobs -p) 2>/dev/null || true' EXIT
else
    work=$(mktemp -d)
    trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fi
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
failures=0
passes=0

start() {
    "$binary" serve --host 127.0.0.1 --port "$port" --database "$work/gatehouse.sqlite" >>"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -fs "$base/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server did not become ready"; cat "$work/server.log"; exit 1
}

# expect STATUS BODY_SUBSTRING curl-args...
expect() {
    local want_status=$1 want_body=$2; shift 2
    local out status body
    out=$(curl -s -w '\n%{http_code}' "$@")
    status=${out##*$'\n'}
    body=${out%$'\n'*}
    if [[ "$status" == "$want_status" && "$body" == *"$want_body"* ]]; then
        passes=$((passes + 1))
    else
        failures=$((failures + 1))
        echo "FAIL: curl $* -> $status '$body' (wanted $want_status '*$want_body*')"
    fi
}

flagger() { # hook checksum [phase]
    echo "{\"name\": \"podinfo\", \"namespace\": \"test\", \"phase\": \"${3:-Progressing}\", \"checksum\": \"$2\"}"
}

start

# The README's examples, in the README's order.
expect 403 "rollout gate of test/podinfo is closed" -X POST "$base/v1/flagger/confirm-rollout" -d "$(flagger x c1 Waiting)"
expect 200 '"state":"open"' -X POST "$base/v1/canaries/test/podinfo/gates/rollout/open" -d '{"reason": "release 1.4.2", "ttl": "2h"}'
expect 200 "rollout gate of test/podinfo is open" -X POST "$base/v1/flagger/confirm-rollout" -d "$(flagger x c1 Waiting)"
expect 200 '"remainingSteps":3' -X POST "$base/v1/canaries/test/podinfo/gates/traffic/open" -d '{"steps": 3}'
expect 200 '"mode":"sticky"' -X POST "$base/v1/canaries/test/podinfo/gates/promotion/open" -d '{"sticky": true, "expiresAt": "2099-01-01T00:00:00Z"}'
expect 200 '"state":"closed"' -X POST "$base/v1/canaries/test/podinfo/gates/promotion/close" -d '{"reason": "hold on"}'
expect 409 "is not known to be in a rollout" -X POST "$base/v1/canaries/test/idle/rollback" -d '{"reason": "errors"}'
expect 403 "no rollback requested" -X POST "$base/v1/flagger/rollback" -d "$(flagger x c2)"
expect 200 '"state":"open"' -X POST "$base/v1/canaries/test/podinfo/rollback" -d '{"reason": "error rate up", "ttl": "30m"}'
expect 200 "rollback of test/podinfo requested" -X POST "$base/v1/flagger/rollback" -d "$(flagger x c2)"
expect 202 "recorded" -X POST "$base/v1/flagger/events" -d '{"name": "podinfo", "namespace": "test", "phase": "Failed", "checksum": "c2", "metadata": {"eventMessage": "Canary failed! Scaling down podinfo.test", "eventType": "Warning", "timestamp": "1763762460000"}}'
expect 202 "recorded" -X POST "$base/v1/flagger/post-rollout" -d "$(flagger x c2 Failed)"
expect 403 "no rollback requested" -X POST "$base/v1/flagger/rollback" -d "$(flagger x c3)"
expect 201 '"reason":"end of quarter"' -X POST "$base/v1/freezes" -d '{"namespace": "test", "reason": "end of quarter", "for": "4h"}'
expect 200 '"reason":"end of quarter"' "$base/v1/freezes"
expect 403 "deployments to namespace test are frozen" -X POST "$base/v1/flagger/confirm-rollout" -d "$(flagger x c1 Waiting)"
expect 403 "Forbidden" -X POST "$base/gate/check" -d '{"name": "podinfo","namespace":"test"}'
expect 200 '"liftedBy"' -X DELETE "$base/v1/freezes/1"
expect 200 '"name":"podinfo"' "$base/v1/canaries"
expect 200 '"waitingOn"' "$base/v1/canaries/test/podinfo"
expect 200 '"events"' "$base/v1/canaries/test/podinfo/events?limit=5"
expect 200 '"events"' "$base/v1/events?limit=20"
# The loadtester's own examples.
expect 403 "Forbidden" -X POST "$base/gate/check" -d '{"name": "podinfo","namespace":"test"}'
expect 202 "" -d '{"name": "podinfo","namespace":"test"}' "$base/gate/open"
expect 200 "Approved" -d '{"name": "podinfo","namespace":"test"}' "$base/gate/check"
expect 202 "" -d '{"name": "podinfo","namespace":"test"}' "$base/gate/close"
expect 200 "OK" -X POST "$base/gate/approve"
expect 403 "Forbidden" -X POST "$base/gate/halt"
expect 202 "" -d '{"name": "podinfo","namespace":"test"}' "$base/rollback/open"
expect 200 "Approved" -d '{"name": "podinfo","namespace":"test"}' "$base/rollback/check"
expect 202 "" -d '{"name": "podinfo","namespace":"test"}' "$base/rollback/close"
expect 200 "ok" "$base/healthz"
expect 200 "openapi: 3" "$base/openapi.yaml"
expect 200 '{"version":"' "$base/v1/version"

# Answers of the native endpoints end with a newline and keep slashes as they are; the
# loadtester's endpoints answer its exact bodies.
answer() { curl -s "$@" | od -An -c | tr -s ' \n' ' '; }
bytes() { printf '%s' "$1" | od -An -c | tr -s ' \n' ' '; }
same() { # what-it-is got want
    if [[ "$2" == "$3" ]]; then passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: $1: got $2, wanted $3"; fi
}
same "GET /healthz" "$(answer "$base/healthz")" "$(bytes $'ok\n')"
same "/gate/check (the loadtester's exact body)" "$(answer -d '{"name": "podinfo","namespace":"test"}' "$base/gate/check")" "$(bytes Forbidden)"
same "/gate/approve (the loadtester's exact body)" "$(answer -X POST "$base/gate/approve")" "$(bytes OK)"
json_tail=$(curl -s "$base/v1/canaries/test/podinfo" | tail -c 2 | od -An -c | tr -s ' \n' ' ')
same "JSON answers end with a newline" "$json_tail" "$(bytes $'}\n')"
refusal_tail=$(curl -s -X POST "$base/v1/flagger/confirm-promotion" -d "$(flagger x c9)" | tail -c 1 | od -An -c | tr -s ' \n' ' ')
same "a refusal to Flagger ends with a newline" "$refusal_tail" "$(bytes $'\n')"
curl -s -X POST "$base/v1/canaries/test/podinfo/gates/promotion/open" -d '{"reason": "see https://ci.example/1"}' >"$work/slashes.json"
if grep -q 'https://ci.example/1' "$work/slashes.json" && ! grep -qF '\/' "$work/slashes.json"; then
    passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: JSON escapes slashes: $(cat "$work/slashes.json")"; fi

# Durability: an acknowledged open survives kill -9 a moment later.
for i in $(seq 1 20); do
    curl -fs -X POST "$base/v1/canaries/durable/app-$i/gates/promotion/open" -d '{"sticky": true}' >/dev/null
done
kill -9 "$server"
wait "$server" 2>/dev/null || true
start
for i in $(seq 1 20); do
    expect 200 "is open" -X POST "$base/v1/flagger/confirm-promotion" -d "{\"name\": \"app-$i\", \"namespace\": \"durable\"}"
done

# SIGTERM: the service drains and exits 0, answering first a check whose body was still arriving.
python3 - "$port" "$work/held-ready" >"$work/held.txt" 2>&1 <<'PY' &
import socket, sys, time
port, ready = int(sys.argv[1]), sys.argv[2]
body = b'{"name": "app-1", "namespace": "durable"}'
head = b"POST /v1/flagger/confirm-promotion HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
connection = socket.create_connection(("127.0.0.1", port))
connection.settimeout(10)
connection.sendall(head + body[:10])
open(ready, "w").close()
time.sleep(1)
connection.sendall(body[10:])
answer = b""
while b"\r\n\r\n" not in answer:
    chunk = connection.recv(4096)
    if not chunk:
        break
    answer += chunk
print(answer.split(b"\r\n")[0].decode() if answer else "no answer")
PY
held=$!
for _ in $(seq 1 50); do [[ -f "$work/held-ready" ]] && break; sleep 0.1; done
kill -TERM "$server"
if wait "$server"; then passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: exit status after SIGTERM was not 0"; fi
wait "$held" || true
if grep -q "200" "$work/held.txt"; then passes=$((passes + 1)); else
    failures=$((failures + 1)); echo "FAIL: a check in flight at SIGTERM was not answered: $(cat "$work/held.txt")"
fi

# At a terminal the log is text for people: the service under `script`, which gives it one.
tty_port=$((port + 1))
setsid script -qfec "$(printf '%q ' "$binary" serve --host 127.0.0.1 --port "$tty_port" --database "$work/tty.sqlite")" \
    "$work/tty.log" >/dev/null 2>&1 &
tty_session=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$tty_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
kill -TERM -- "-$tty_session" 2>/dev/null || true
wait "$tty_session" 2>/dev/null || true
if grep -q "Gatehouse 0.1.0 starting" "$work/tty.log" && ! grep -q '^{' "$work/tty.log"; then
    passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: the log at a terminal is not text: $(head -3 "$work/tty.log")"; fi

# The log (not a terminal here): JSON lines; numbers are numbers; each change of a gate is logged
# once at info, whoever made it (an operator or a Flagger check); start and stop are logged.
if python3 - "$work/server.log" <<'PY'; then passes=$((passes + 1)); else failures=$((failures + 1)); echo "FAIL: the log"; fi
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
assert records, "no log lines"
said = [r["message"] for r in records]
def count(message): return said.count(message)
assert count("Gatehouse 0.1.0 starting") == 2, said[:3]     # two starts: the first, and after kill -9
assert count("stopped") == 1, "the SIGTERM stop is logged"
ready = [r for r in records if r["message"] == "database ready"]
assert all(isinstance(r["canaries"], int) for r in ready), ready
assert count("opened rollout gate of test/podinfo") == 1, "an operator's open, once"
bound = [r for r in records if r["message"] == "bound rollout gate of test/podinfo"]
assert len(bound) == 1 and bound[0]["level"] == "info" and bound[0]["checksum"] == "c1", bound
assert any(m.startswith("post-rollout of test/podinfo") for m in said), "Flagger's end-of-rollout report"
assert not any(isinstance(v, str) and v.startswith("[") for r in records for v in r.values()), "arrays as strings"
PY

echo "e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
