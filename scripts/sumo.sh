#!/usr/bin/env bash
# The control loop in Eclipse SUMO (simulator/sumo/README.md). Sets up the project's virtual
# environment (.venv) with the SUMO packages pinned in simulator/sumo/requirements.txt, builds
# the `traffic` command when the closed loop needs it, and runs:
#
#   ./scripts/sumo.sh --net N.net.xml --routes R.rou.xml \
#                     --control fixed|webster|actuated|adaptive|max-pressure|sumo-webster \
#                     [--duration 2h] [--seed S] [--lamp-failures P]
#                     [--silent-detectors FRACTION] [--outage START+DURATION]
#   ./scripts/sumo.sh --resco NAME --control fixed|actuated|adaptive|webster|max-pressure [--seed S]
#       one run (--resco: a RESCO network with its routes, begin and end, from the pinned
#       sumo-rl wheel, downloaded into target/resco/ on first use); progress on stderr, and as
#       the last line on stdout one JSON object: {"network","control","seed","mean_delay_s",
#       "p95_delay_s","vehicles_arrived","unfinished",...,"retimings"}
#   ./scripts/sumo.sh scenario [--name shipped|grid-2770|grid-4800] [--out DIR]
#       generates a scenario's network and routes (fixed seeds) into DIR
#       (default simulator/sumo/scenarios/)
#   ./scripts/sumo.sh compare [--name shipped|grid-2770|grid-4800] [--out DIR]
#       generates the scenario and runs every control on it: a Markdown table on stdout
#   ./scripts/sumo.sh compare (--resco NAME | --name NAME) [--seeds 5] [--controls A,B,...]
#                     [--reference CONTROL] [--silent-detectors FRACTION] [--outage START+DURATION]
#       paired seeds 1..N per control: a Markdown table of each control's delay and its
#       difference from actuated (or --reference) (mean, 95 % interval), then one JSON line
#   Faults of the closed loop's inputs (simulator/sumo/traffic_sumo/faults.py): that share of
#   the lights' detectors never reports to the system (chosen by the seed); the system is
#   unreachable from START to START+DURATION after the begin (like 20m+1h: no ticks, the
#   controller keeps the last plan). The result's "faults" names them.
#
# The closed loop (`webster`, `adaptive`) runs `traffic sumo`: TRAFFIC_BIN names the binary to use instead
# of building one (`cargo build --bin traffic`, the dev profile); the engine's variables
# (TRAFFIC_WINDOWS, TRAFFIC_ALLOWED_LATENESS, TRAFFIC_MERGE_EVERY, WEBSTER_*, PLAN_*) are
# passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

venv="$root/.venv"
bash scripts/venv.sh simulator/sumo/requirements.txt >&2

needs_traffic=no
case " $* " in
  *" webster "*|*" --control=webster "*|*" adaptive "*|*" --control=adaptive "*) needs_traffic=yes ;;
esac
[ "${1:-}" = compare ] && needs_traffic=yes
if [ -z "${TRAFFIC_BIN:-}" ] && [ "$needs_traffic" = yes ]; then
  echo "sumo: building the traffic command" >&2
  build_cli
fi
export TRAFFIC_BIN="${TRAFFIC_BIN:-traffic}"

export PYTHONPATH="$root/simulator/sumo${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
  scenario|compare)
    cmd=$1
    shift
    exec "$venv/bin/python" -m traffic_sumo "$cmd" "$@"
    ;;
  *)
    exec "$venv/bin/python" -m traffic_sumo run --traffic "$TRAFFIC_BIN" "$@"
    ;;
esac
