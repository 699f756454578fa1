#!/usr/bin/env bash
# scripts/prereqs.sh's early exits and installs, on stand-in machines (tests/scripts/prereqs_test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash tests/scripts/prereqs_test.sh
