#!/usr/bin/env bash
# Show one canary (status.sh NAMESPACE NAME), or every canary and the active freezes (status.sh)
set -euo pipefail
. "$(dirname "$0")/common.sh"
if [[ $# -ge 2 ]]; then
    call "$GATEHOUSE_URL/v1/canaries/$1/$2"
else
    call "$GATEHOUSE_URL/v1/canaries"
    call "$GATEHOUSE_URL/v1/freezes"
fi
