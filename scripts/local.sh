#!/usr/bin/env bash
# The README's run command: `traffic local` (release build) with the arguments given, after
# putting DuckDB's library in place (scripts/duckdb.sh), which the archive's SQL engine links.
#
#   ./scripts/local.sh [traffic local's options]     ./scripts/local.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/duckdb.sh
exec cargo run --release --quiet -- local "$@"
