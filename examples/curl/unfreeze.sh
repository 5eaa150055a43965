#!/usr/bin/env bash
# Lift a freeze: unfreeze.sh ID
set -euo pipefail
. "$(dirname "$0")/common.sh"
call -X DELETE "$GATEHOUSE_URL/v1/freezes/$1"
