#!/usr/bin/env bash
# The independent count of DynamoDB's capacity units (tests/capacity/ddb_meter.py, a metering
# proxy in front of the emulator) checked against DynamoDB's documented sizing rules, one kind
# of request at a time: put, update, delete, conditional failure, batch write, transaction,
# get, batch get, query, transactional get; strongly and eventually consistent. The same meter
# checks `traffic aws-measure`'s own count in tests/aws/measure.rs (the nextest run).
#
#   AWS_ENDPOINT_URL=http://127.0.0.1:5300 bash scripts/test.d/capacity.sh
#       (scripts/test.sh starts moto and sets it; without it the emulator cases fail)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
py=python
if ! "$py" -c 'import boto3' 2>/dev/null; then
  py="$root/.venv/bin/python"
fi
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  echo "capacity: needs AWS_ENDPOINT_URL (an emulator: ./scripts/test.sh starts moto)" >&2
  exit 1
fi
"$py" -m unittest discover --start-directory tests/capacity --pattern "test_*.py"
