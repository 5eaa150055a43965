#!/usr/bin/env bash
# The loadtester-compatible gate, exactly as flagger-loadtester's docs use it:
# loadtester-gate.sh open|close|check NAMESPACE NAME [gate|rollback]
set -euo pipefail
. "$(dirname "$0")/common.sh"
curl -sS -w ' %{http_code}\n' -d "{\"name\": \"$3\",\"namespace\":\"$2\"}" "$GATEHOUSE_URL/${4:-gate}/$1"
