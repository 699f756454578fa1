#!/usr/bin/env bash
# The project's Python virtual environment, .venv, with the pinned test tools of
# scripts/requirements-test.txt (moto, MiniStack, cfn-lint, the SAM translator, cargo-lambda,
# Schemathesis).
# Created when missing, reinstalled when that file changed since the last install; prints
# nothing when it is up to date. Used by scripts/test.sh and scripts/deployed-e2e.sh, after
# `scripts/prereqs.sh python`.
#
#   bash scripts/venv.sh            then use .venv/bin/python, .venv/bin/moto_server, ...
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(pwd)/.venv"

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv" >&2
  python3 -m venv "$venv"
fi
if ! cmp -s scripts/requirements-test.txt "$venv/.requirements"; then
  echo "== installing Python test tools (scripts/requirements-test.txt)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$venv/.requirements"
fi
