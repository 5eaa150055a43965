#!/usr/bin/env bash
# The audit trail, newest first: events.sh [NAMESPACE NAME] [LIMIT]
set -euo pipefail
. "$(dirname "$0")/common.sh"
if [[ $# -ge 2 ]]; then
    call "$GATEHOUSE_URL/v1/canaries/$1/$2/events?limit=${3:-20}"
else
    call "$GATEHOUSE_URL/v1/events?limit=${1:-20}"
fi
