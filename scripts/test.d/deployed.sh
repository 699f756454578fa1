#!/usr/bin/env bash
# The deployed stack end to end (scripts/deployed-e2e.sh), as part of the test command.
#
# scripts/test.sh starts moto for the other tests and exports its endpoint; moto runs no
# Lambda code, so here that endpoint is dropped and deployed-e2e.sh starts MiniStack itself. An
# endpoint the user gave (LocalStack) is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${TRAFFIC_EMULATOR:-}" = moto ]; then
  unset AWS_ENDPOINT_URL TRAFFIC_EMULATOR
fi
# The pure parts of the driver first: a broken comparison would pass anything.
.venv/bin/python tests/deployed/test_e2e.py
exec bash scripts/deployed-e2e.sh
