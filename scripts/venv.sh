#!/usr/bin/env bash
# The project's Python virtual environment, .venv: the one place it is created and filled.
# Installs each requirements file given (by default scripts/requirements-test.txt: moto,
# MiniStack, cfn-lint, the SAM translator, cargo-lambda, Schemathesis; the SUMO bridge's
# scripts pass simulator/sumo/requirements*.txt), created when missing, and a file installed
# again only when it (or a file it includes with `-r`) changed since its last install; prints
# nothing when everything is up to date. Used by scripts/test.sh, the suites of
# scripts/test.d, scripts/deployed-e2e.sh, the Lambda scripts and scripts/sumo.sh, after
# `scripts/prereqs.sh python`.
#
#   bash scripts/venv.sh [REQUIREMENTS...]    then use .venv/bin/python, .venv/bin/moto_server, ...
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(pwd)/.venv"
[ "$#" -gt 0 ] || set -- scripts/requirements-test.txt

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv" >&2
  python3 -m venv "$venv"
fi
for reqs in "$@"; do
  # What was installed: the file and the files it includes (pip reads `-r` beside the file).
  wanted=$(
    cat "$reqs"
    sed -n 's/^-r[[:space:]]*//p' "$reqs" | while read -r inc; do cat "$(dirname "$reqs")/$inc"; done
  )
  marker="$venv/.installed-$(printf '%s' "$reqs" | tr '/' '_')"
  if [ "$wanted" != "$(cat "$marker" 2>/dev/null)" ]; then
    echo "== installing into .venv: $reqs" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs" >&2
    printf '%s' "$wanted" >"$marker"
  fi
done
