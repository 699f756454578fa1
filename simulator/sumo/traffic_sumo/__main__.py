"""``python -m traffic_sumo``: run a SUMO scenario under one control (what ``scripts/sumo.sh``
calls), map a network to a city file, make the shipped scenarios, or compare controls.

    python -m traffic_sumo run --net N.net.xml --routes R.rou.xml --control webster \\
        [--duration 2h] [--seed S] [--lamp-failures P] [--silent-detectors F] \\
        [--outage START+DURATION] [--traffic BIN] [-- ARGS OF traffic sumo]
    python -m traffic_sumo run --resco NAME --control fixed|actuated|webster|max-pressure [--seed S]
    python -m traffic_sumo city N.net.xml
    python -m traffic_sumo scenario [--out DIR] [--name shipped|grid-2770|grid-4800]
    python -m traffic_sumo compare [--out DIR] [--name shipped|grid-2770|grid-4800]
    python -m traffic_sumo compare (--resco NAME | --name NAME) --seeds N [--controls A,B,...] \\
        [--reference CONTROL] [--silent-detectors F] [--outage START+DURATION]

``run`` prints progress on stderr and, as its last line on stdout, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from . import bridge, compare, faults, network, resco, scenario

#: Where scenarios are written by default (ignored by git).
SCENARIO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "scenarios")


def duration_s(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``2h`` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration (like 90s, 15m, 2h): {text!r}")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def share(text: str) -> float:
    """A share 0..1 (``--silent-detectors``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share 0..1: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is 0..1, got {text!r}")
    return v


def outage(text: str) -> tuple[int, int]:
    """``20m+1h`` → (start, length), s (``--outage``)."""
    try:
        return faults.parse_outage(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_faults(p: argparse.ArgumentParser) -> None:
    """The fault options (:mod:`traffic_sumo.faults`; the closed loop's inputs)."""
    p.add_argument("--silent-detectors", type=share, default=0.0, metavar="FRACTION",
                   help="that share of the lights' detectors (chosen by the seed) never report"
                   " to the system (webster, adaptive)")
    p.add_argument("--outage", type=outage, default=None, metavar="START+DURATION",
                   help="the system unreachable from START to START+DURATION after the begin,"
                   " like 20m+1h: no ticks, the last plan stays (webster, adaptive)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="traffic_sumo", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a scenario under one control")
    r.add_argument("--net")
    r.add_argument("--routes")
    r.add_argument("--resco", metavar="NAME",
                   help="a RESCO network with its routes, begin and end"
                   f" ({', '.join(resco.NETWORKS)}) instead of --net and --routes")
    r.add_argument("--control", required=True, choices=list(bridge.CONTROLS))
    r.add_argument("--duration", type=duration_s, default=None,
                   help="stop after this much simulated time (default: the RESCO network's end,"
                   " else when every vehicle arrived)")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--lamp-failures", type=float, default=0.0,
                   help="probability that a reading breaks one of its light's lamps")
    r.add_argument("--traffic", default="traffic", help="the traffic command (webster)")
    add_faults(r)
    r.add_argument("--workdir", default=None)
    r.add_argument("--progress-every", type=duration_s, default=300)
    r.add_argument("traffic_args", nargs="*", help="extra arguments of `traffic sumo`")
    c = sub.add_parser("city", help="print the city file of a network")
    c.add_argument("net")
    for name, what in [("scenario", "generate a scenario (network and routes)"),
                       ("compare", "generate a scenario and run every control on it")]:
        s = sub.add_parser(name, help=what)
        s.add_argument("--out", default=SCENARIO_DIR)
        s.add_argument("--name", default="shipped", choices=sorted(scenario.SCENARIOS))
        s.add_argument("--seed", type=int, default=1)
    s = sub.choices["compare"]
    s.add_argument("--resco", metavar="NAME",
                   help="a RESCO network instead of --name (paired seeds)")
    s.add_argument("--seeds", type=int, default=None,
                   help="paired seeds 1..N per control, each control's difference from actuated"
                   f" (default {compare.PAIRED_SEEDS} with --resco)")
    s.add_argument("--controls", default=None,
                   help="comma-separated controls of the paired comparison"
                   f" (default {','.join(compare.PAIRED_CONTROLS)})")
    s.add_argument("--reference", default=compare.REFERENCE,
                   help="the control every other's difference is taken from"
                   f" (default {compare.REFERENCE})")
    add_faults(s)
    a = p.parse_args(argv)
    if a.cmd == "run":
        if not 0.0 <= a.lamp_failures <= 1.0:
            p.error("--lamp-failures must be 0..1")
        span: dict = {}
        if a.resco:
            if a.net or a.routes:
                p.error("--resco replaces --net and --routes")
            if a.control not in bridge.BENCHMARK_CONTROLS:
                p.error(f"--resco runs {', '.join(bridge.BENCHMARK_CONTROLS)}, not {a.control}")
            try:
                sc = resco.scenario(a.resco)
            except resco.RescoError as e:
                p.error(str(e))
            a.net, a.routes = sc.net, ",".join(sc.routes)
            span = {"begin_s": sc.begin_s, "end_s": sc.end_s, "network": sc.name}
        elif not (a.net and a.routes):
            p.error("give --net and --routes, or --resco")
        for flag, path in (("--net", a.net), *(("--routes", r) for r in a.routes.split(","))):
            if not os.path.isfile(path):
                p.error(f"{flag}: no such file: {path}")
        try:
            result = bridge.run(bridge.Options(
                net=a.net, routes=a.routes, control=a.control, duration_s=a.duration,
                seed=a.seed, lamp_failure_probability=a.lamp_failures, traffic=a.traffic,
                traffic_args=a.traffic_args, progress_every_s=a.progress_every,
                workdir=a.workdir, silent_detectors=a.silent_detectors, outage=a.outage,
                **span,
            ))
        except Exception as e:  # SUMO's, the system's or the network's: said, not traced
            print(f"traffic_sumo run: error: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result), flush=True)
    elif a.cmd == "city":
        print(json.dumps(network.city(network.read_network(a.net)), indent=1))
    elif a.cmd == "scenario":
        for path in scenario.generate(a.name, a.out):
            print(path)
    elif a.resco or a.seeds or a.controls:
        controls = a.controls.split(",") if a.controls else list(compare.PAIRED_CONTROLS)
        for c in controls:
            if c not in bridge.BENCHMARK_CONTROLS:
                p.error(f"--controls: {c!r} is not one of {', '.join(bridge.BENCHMARK_CONTROLS)}")
        if a.reference not in controls:
            p.error(f"--reference: {a.reference!r} is not among the controls compared")
        seeds = a.seeds or compare.PAIRED_SEEDS
        if seeds < 1:
            p.error("--seeds must be at least 1")
        if a.resco:
            try:
                resco.check_name(a.resco)
            except resco.RescoError as e:
                p.error(str(e))
            target, name = ["--resco", a.resco], a.resco
        else:
            net, routes = scenario.generate(a.name, a.out)
            target, name = ["--net", net, "--routes", routes], a.name
        fault_args = [f"--silent-detectors={a.silent_detectors:g}"]
        if a.outage:
            fault_args.append(f"--outage={a.outage[0]}+{a.outage[1]}")
        runs = compare.run_paired([*target, *fault_args], controls,
                                  list(range(1, seeds + 1)),
                                  os.environ.get("TRAFFIC_BIN", "traffic"))
        summary = compare.summarise(name, controls, runs, a.reference)
        print(compare.paired_table(summary))
        print(json.dumps(summary), flush=True)
    else:
        if a.silent_detectors or a.outage or a.reference != compare.REFERENCE:
            p.error("--silent-detectors, --outage and --reference go with the paired comparison"
                    " (give --seeds or --controls)")
        net, routes = scenario.generate(a.name, a.out)
        rows = compare.run_all(net, routes, a.seed, os.environ.get("TRAFFIC_BIN", "traffic"))
        print(compare.table(a.name, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
