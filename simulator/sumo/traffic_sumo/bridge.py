"""Runs a SUMO network under one control and measures it.

Controls (:data:`CONTROLS`, one entry each):

- ``fixed``: the network's own programs, untouched;
- ``webster``: the closed loop through the system. Every simulated minute the detectors on
  the approach lanes give one reading per light (the reading contract: vehicles that crossed
  the stop line's detectors in that minute, their mean speed, the lamps), sent to
  ``traffic sumo`` (the same ``ingest``, ``fault`` and ``merge`` handlers on the embedded
  store), which answers with the timings its merge wrote. New timings replace the green
  phases' durations from the next cycle of the junction's program (when it next enters its
  first phase); yellow and all-red phases keep theirs. Nothing is computed here but readings;
- ``actuated``: SUMO's own actuated control on the network's programs (type ``actuated``,
  same phases; each green phase keeps the ``minDur``/``maxDur`` the network gives it, and
  where it gives none gets the ones of :func:`actuated_bounds`);
- ``adaptive``: the closed loop of ``webster`` driving ``actuated``: the same programs as
  ``actuated`` (its bounds until the first plan), and each plan the system answers (per
  contract phase a minimum, fixed-time and maximum green) sets its green phases' ``minDur``,
  ``duration`` and ``maxDur`` from the junction's next cycle: the plan is written while the
  program runs the cycle's last phase, so the first phase starts under it and no phase
  changes its bounds mid-way. A green phase outside the plan (no light's own) then runs only
  on demand (:data:`UNPLANNED_MIN_DUR_S`). When the system stops answering, the last plan
  stays;
- ``max-pressure``: the reference controller of :mod:`traffic_sumo.maxpressure`, deciding
  every 10 s here in the bridge;
- ``sumo-webster``: SUMO's offline Webster (``tools/tlsCycleAdaptation.py`` with its defaults),
  which knows every route in advance: a reference, not a controller that could run in a city
  (it needs routes with their edges, so it is no benchmark control).

The measure (:mod:`traffic_sumo.metrics`): time loss + depart delay of every vehicle due
before the end, finished or not. A run with an end (``duration_s``, ``end_s``: the benchmark's
runs) never teleports a vehicle (``--time-to-teleport -1``); a run without one lasts until
every vehicle has arrived and keeps SUMO's teleporting, so that a gridlock cannot make it
endless.

Simulated time 0 is :data:`START`, so a run is deterministic for a seed.

The modules: :mod:`~traffic_sumo.clock` (simulated time), :mod:`~traffic_sumo.programs` (the
programs and what the answers write into them), :mod:`~traffic_sumo.loop` (the closed loops
through ``traffic sumo``); here the options of a run, the controls and the run itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable

from . import faults, maxpressure, metrics
from .clock import READING_PERIOD_S, START, iso, sumo_time, window_seconds  # noqa: F401
from .home import sumo_binary, sumo_home
from .loop import AdaptiveLoop, ClosedLoop, Context, Readings, System, log  # noqa: F401
from .programs import (  # noqa: F401
    ACTUATED_MAX_DUR_S,
    ACTUATED_MIN_DUR_S,
    UNPLANNED_MIN_DUR_S,
    actuated_additional,
    actuated_bounds,
    actuated_xml,
    clearance_s,
)


@dataclass
class Options:
    """One run."""

    net: str
    #: Route files, comma-separated.
    routes: str
    control: str
    #: Simulated seconds from the begin after which the run stops (default: ``end_s``, else
    #: when every vehicle has arrived).
    duration_s: int | None = None
    seed: int = 1
    #: SUMO's begin and end times (a RESCO network's own); ``duration_s`` wins over ``end_s``.
    begin_s: int = 0
    end_s: int | None = None
    #: The network's name in the result (default: the net file's).
    network: str | None = None
    #: Probability that a reading breaks one of its light's lamps (it stays broken).
    lamp_failure_probability: float = 0.0
    #: The ``traffic`` command (``webster`` only).
    traffic: str = "traffic"
    #: Extra arguments of ``traffic sumo``.
    traffic_args: list[str] = field(default_factory=list)
    #: Test hook: the system is no longer asked after this many simulated seconds from the
    #: begin (as if it had stopped answering; ``webster`` and ``adaptive``).
    silent_after_s: int | None = None
    #: Share of the lights whose detectors never report to the system (:mod:`.faults`).
    silent_detectors: float = 0.0
    #: ``(start, length)``, s from the begin: the system unreachable then (:mod:`.faults`).
    outage: tuple[int, int] | None = None
    #: Progress lines on stderr every this many simulated seconds (0: none).
    progress_every_s: int = 300
    #: Where the run's files go (a temporary directory when empty).
    workdir: str | None = None
    #: Called with ``("answer", answer)`` for every answer of the system and with
    #: ``("applied", {"tls", "time", "phases": [(duration, state), ...]})`` with the program
    #: read back from SUMO after every retiming (tests watch the loop through it); under
    #: ``max-pressure`` with its decisions (:class:`traffic_sumo.maxpressure.MaxPressure`).
    observer: Callable[[str, dict], None] | None = None


def trip_statistics(path: str) -> dict:
    """SUMO's ``--statistic-output``: inserted, arrived and the per-trip means."""
    root = ET.parse(path).getroot()
    vehicles = root.find("vehicles")
    trips = root.find("vehicleTripStatistics")
    if vehicles is None or trips is None:
        raise RuntimeError(f"{path}: no vehicle statistics")
    return {
        "vehicles_inserted": int(vehicles.get("inserted", "0")),
        "vehicles_arrived": int(trips.get("count", "0")),
        "mean_time_loss_s": round(float(trips.get("timeLoss", "0")), 2),
        "mean_travel_time_s": round(float(trips.get("duration", "0")), 2),
        "mean_waiting_s": round(float(trips.get("waitingTime", "0")), 2),
        "teleports": int((root.find("teleports") if root.find("teleports") is not None
                          else ET.Element("t")).get("total", "0")),
    }


class _MaxPressure(maxpressure.MaxPressure):
    def __init__(self, traci, ctx: Context, now: float):
        super().__init__(traci, now, ctx.opts.observer, net=ctx.net)

    def close(self) -> dict:
        return {}


def _sumo_webster_additional(ctx: Context) -> list[str]:
    path = os.path.join(ctx.work, "tls-webster.add.xml")
    subprocess.run(
        [sys.executable, os.path.join(sumo_home(), "tools", "tlsCycleAdaptation.py"),
         "-n", ctx.opts.net, "-r", ctx.opts.routes, "-o", path],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return [path]


@dataclass(frozen=True)
class Control:
    """A way of running the signals: the files SUMO loads for it and what drives the signals
    while it runs (a class with ``step(traci, now)`` after every step and ``close()`` giving
    the result's extra fields)."""

    additional: Callable[[Context], list[str]] | None = None
    controller: Callable[..., object] | None = None
    #: Whether it runs on any network and routes (the benchmark's and ``compare``'s controls).
    benchmark: bool = True


#: Every control by name (``--control``). A new controller is one entry.
CONTROLS: dict[str, Control] = {
    "fixed": Control(),
    "actuated": Control(additional=actuated_additional),
    "webster": Control(additional=ClosedLoop.additional, controller=ClosedLoop),
    "adaptive": Control(additional=AdaptiveLoop.additional, controller=AdaptiveLoop),
    "max-pressure": Control(controller=_MaxPressure),
    "sumo-webster": Control(additional=_sumo_webster_additional, benchmark=False),
}

#: The controls a benchmark compares (every control that runs on any network).
BENCHMARK_CONTROLS = tuple(n for n, c in CONTROLS.items() if c.benchmark)


def network_name(opts: Options) -> str:
    name = os.path.basename(opts.net)
    return opts.network or (name[:-len(".net.xml")] if name.endswith(".net.xml") else name)


def run(opts: Options) -> dict:
    """Runs the simulation; returns the result object (the last line of ``sumo.sh``)."""
    import libsumo as traci
    import sumolib

    control = CONTROLS.get(opts.control)
    if control is None:
        raise ValueError(f"control must be one of {', '.join(CONTROLS)}, got {opts.control!r}")
    work = opts.workdir or tempfile.mkdtemp(prefix="traffic-sumo-")
    os.makedirs(work, exist_ok=True)
    ctx = Context(opts, sumolib.net.readNet(opts.net, withPrograms=True), work)
    adds = control.additional(ctx) if control.additional else []
    begin = opts.begin_s
    end = begin + opts.duration_s if opts.duration_s else opts.end_s
    stats = os.path.join(work, "statistics.xml")
    tripinfo = os.path.join(work, "tripinfo.xml")
    argv = [sumo_binary("sumo"), "-n", opts.net, "-r", opts.routes,
            "--no-step-log", "--no-warnings", "--seed", str(opts.seed),
            "--begin", str(begin),
            "--statistic-output", stats, "--duration-log.statistics", "true",
            "--duration-log.disable", "--tripinfo-output", tripinfo, *metrics.TRIPINFO_OPTIONS]
    if adds:
        argv += ["-a", ",".join(adds)]
    if end is not None:
        argv += ["--end", str(end), "--time-to-teleport", "-1"]

    arrived = 0
    extra: dict = {}
    wall = time.monotonic()
    # SUMO writes its messages to the process's stdout: send them to stderr with the progress,
    # so that stdout carries only the result.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    traci.start(argv)
    driver = None
    try:
        if control.controller:
            driver = control.controller(traci, ctx, traci.simulation.getTime())
        while True:
            if end is None and traci.simulation.getMinExpectedNumber() <= 0:
                break
            traci.simulationStep()
            now = traci.simulation.getTime()
            arrived += traci.simulation.getArrivedNumber()
            if end is not None and now >= end:
                break
            if driver is not None:
                driver.step(traci, now)
            if opts.progress_every_s and int(now) % opts.progress_every_s == 0:
                log(f"[{opts.control}] {iso(now)}  running {traci.vehicle.getIDCount():>5}  "
                     f"arrived {arrived:>6}  ({time.monotonic() - wall:.1f} s)")
    finally:
        traci.close()
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        if driver is not None:
            extra = driver.close()
    sumo_stats = trip_statistics(stats)
    sumo_stats.pop("vehicles_arrived")  # the same count as the trip information's
    return {
        "network": network_name(opts),
        "control": opts.control,
        "seed": opts.seed,
        "begin_s": begin,
        "end_s": end,
        **metrics.trip_delays(tripinfo),
        **sumo_stats,
        "retimings": 0,
        **extra,
        "faults": faults.describe(opts.silent_detectors, opts.outage),
        "wall_s": round(time.monotonic() - wall, 1),
    }
