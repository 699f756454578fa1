#!/usr/bin/env bash
# The SUMO bridge's tests (simulator/sumo/tests): the junction mapping on tiny networks, a
# closed-loop run of a few simulated minutes through `traffic sumo`, and the benchmark's parts
# (its delay measure, the RESCO lookup on a fake wheel, max-pressure, the paired comparison),
# the adaptive control's plan switching at a cycle boundary and a few minutes of it, and the
# faults of the loop's inputs (silent detectors, an outage: on the shipped scenario the loop
# under each does no worse than fixed plans).
# Installs what they need into the project's virtual environment (.venv) itself, and builds
# the traffic command.
#
#   bash scripts/test.d/sumo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

venv="$root/.venv"
bash scripts/venv.sh simulator/sumo/requirements-test.txt
[ -n "${TRAFFIC_BIN:-}" ] || build_cli
cd simulator/sumo
PYTHONPATH="$root/simulator/sumo" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
