#!/usr/bin/env bash
# Send what Flagger sends, to see how Gatehouse answers it:
# flagger-check.sh HOOK NAMESPACE NAME [PHASE] [CHECKSUM]
# HOOK: confirm-rollout, confirm-traffic-increase, confirm-promotion, rollback, events, post-rollout
set -euo pipefail
. "$(dirname "$0")/common.sh"
curl -sS -w ' %{http_code}\n' -X POST "$GATEHOUSE_URL/v1/flagger/$1" \
    -d "{\"name\": \"$3\", \"namespace\": \"$2\", \"phase\": \"${4:-Progressing}\", \"checksum\": \"${5:-}\"}"
