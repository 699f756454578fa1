#!/usr/bin/env bash
# The build AWS runs (scripts/lambda-build.sh: cargo-lambda, for arm64), then the deployed stack
# end to end (scripts/deployed-e2e.sh), whose last step deploys those bootstraps to the stack's
# functions with `cargo lambda deploy` (scripts/lambda-deploy.sh) and checks that only their code
# changed.
#
# Where Rust's standard library for aarch64-unknown-linux-gnu is not installed the arm64 build
# cannot run: this says so plainly and builds the same way for this host's architecture instead.
#
# scripts/test.sh starts moto for the other tests and exports its endpoint; moto runs no
# Lambda code, so here that endpoint is dropped and deployed-e2e.sh starts MiniStack itself. An
# endpoint the user gave (LocalStack) is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

rc=0
bash scripts/lambda-build.sh --arm64 || rc=$?
if [ "$rc" -eq 3 ] && [ "$(uname -m)" = x86_64 ]; then
  host=x86-64
  echo "deployed: arm64 NOT built (Rust's standard library for aarch64-unknown-linux-gnu is" >&2
  echo "          missing here: rustup target add aarch64-unknown-linux-gnu); building the" >&2
  echo "          same way for this host's $host instead" >&2
  bash scripts/lambda-build.sh "--$host"
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi

if [ "${TRAFFIC_EMULATOR:-}" = moto ]; then
  unset AWS_ENDPOINT_URL TRAFFIC_EMULATOR
fi
# The pure parts of the driver first, and the named queries on DuckDB: a broken comparison
# would pass anything.
.venv/bin/python tests/deployed/test_e2e.py
.venv/bin/python tests/deployed/test_archive.py
LAMBDA_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}/lambda" exec bash scripts/deployed-e2e.sh
