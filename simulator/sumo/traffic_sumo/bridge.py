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
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime, timedelta, timezone

from . import coordination, demand, faults, maxpressure, metrics, network

#: SUMO time 0, as the readings' event time.
START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=timezone.utc)

#: The period of the readings (the reading contract's "one reading per light per minute").
READING_PERIOD_S = 60

#: Shortest and longest green of a phase under ``actuated`` where the network gives none
#: (netconvert's defaults, ``--tls.min-dur`` and ``--tls.max-dur``).
ACTUATED_MIN_DUR_S = 5
ACTUATED_MAX_DUR_S = 50

#: Shortest green under ``adaptive`` of a green phase the plan does not cover (no light's own:
#: a protected turn, a second combination of movements): it has no share in Webster's plan,
#: so it runs only while its detectors see traffic, SUMO's stand-in for skipping a phase
#: without calls.
UNPLANNED_MIN_DUR_S = 1


def sumo_home() -> str:
    """The ``eclipse-sumo`` package's SUMO_HOME."""
    import sumo

    return sumo.SUMO_HOME


def sumo_binary(name: str) -> str:
    """A SUMO binary of the ``eclipse-sumo`` package (``sumo``, ``netgenerate``, ...)."""
    return os.path.join(sumo_home(), "bin", name)


def iso(seconds: float) -> str:
    """The event time of SUMO time `seconds` (whole seconds, UTC)."""
    return (START + timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%SZ")


def sumo_time(event_time: str) -> float:
    """The SUMO time of an event time (the inverse of :func:`iso`)."""
    at = datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (at - START).total_seconds()


def window_seconds(window: str) -> tuple[float, float]:
    """A control window's key (``15m@2026-01-05T06:00:00Z``) as SUMO seconds ``[start, end)``."""
    return demand.window_bounds(window, 0.0, sumo_time)


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


@dataclass
class Retiming:
    """New green durations for a TLS program, waiting for the program's next cycle."""

    program_id: str
    durations: dict[int, float]


class System:
    """``traffic sumo`` as a child process speaking JSON lines."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def exchange(self, now: str, readings: list[dict]) -> dict:
        """Sends one minute of readings; returns the system's answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"now": now, "readings": readings}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"traffic sumo stopped (exit code {code})")
        return json.loads(line)

    def close(self) -> int:
        """Closes its input and waits for it."""
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.wait()


def clearance_s(junctions: list[network.Junction]) -> float:
    """The most common clearance (yellow and all-red after a green phase) of the network's
    mapped phases: the controller's yellow as the system's Webster sees it."""
    c = Counter(
        network.clearance_after(j.program, ph.program_index)
        for j in junctions
        for ph in j.phases
    )
    return c.most_common(1)[0][0] if c else 4.0


def actuated_bounds(duration: float, min_dur: float | None, max_dur: float | None
                    ) -> tuple[float, float]:
    """A green phase's ``minDur`` and ``maxDur`` under ``actuated``: the network's where it
    gives them; where it does not, netconvert's defaults for actuated programs
    (:data:`ACTUATED_MIN_DUR_S`, :data:`ACTUATED_MAX_DUR_S`), widened so that the phase's
    fixed duration stays within them: actuation may shorten or lengthen the engineer's green,
    never start by forbidding it."""
    lo = min_dur if min_dur is not None and min_dur >= 0 else min(ACTUATED_MIN_DUR_S, duration)
    hi = max_dur if max_dur is not None and max_dur >= 0 else max(ACTUATED_MAX_DUR_S, duration)
    return lo, max(lo, hi)


def actuated_xml(net) -> str:
    """Every TLS's program again as ``actuated`` (same phases) under a new program id."""
    root = ET.Element("additional")
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        programs = tls.getPrograms()
        if not programs:
            continue
        prog = programs[sorted(programs)[0]]
        el = ET.SubElement(
            root, "tlLogic", id=tls.getID(), type="actuated", programID="traffic-actuated",
            offset="0",
        )
        for p in prog.getPhases():
            attrs = {"duration": f"{p.duration:g}", "state": p.state}
            if network.is_green(p.state):
                lo, hi = actuated_bounds(float(p.duration), getattr(p, "minDur", None),
                                         getattr(p, "maxDur", None))
                attrs["minDur"] = f"{lo:g}"
                attrs["maxDur"] = f"{hi:g}"
            ET.SubElement(el, "phase", attrs)
    return ET.tostring(root, encoding="unicode") + "\n"


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


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Readings:
    """The detectors of the mapped junctions, read once per period into contract readings."""

    def __init__(self, junctions: list[network.Junction], failure_p: float, seed: int):
        self.junctions = junctions
        self.rng = random.Random(seed)
        self.failure_p = failure_p
        # (intersection, light) -> broken lamps
        self.broken: dict[tuple[str, int], set[str]] = {}

    def read(self, traci, now_s: float) -> list[dict]:
        """One reading per light for the period that ended at `now_s`."""
        out = []
        for j in self.junctions:
            for lt in j.lights:
                vehicles, speed_sum = 0, 0.0
                for lane in lt.lanes:
                    det = network.detector_id(lane)
                    n = traci.inductionloop.getLastIntervalVehicleNumber(det)
                    if n > 0:
                        vehicles += n
                        speed_sum += n * traci.inductionloop.getLastIntervalMeanSpeed(det)
                mean_kmh = speed_sum / vehicles * 3.6 if vehicles else 0.0
                broken = self.broken.setdefault((j.intersection_id, lt.index), set())
                if self.failure_p > 0 and self.rng.random() < self.failure_p:
                    broken.add(self.rng.choice(["red", "yellow", "green"]))
                out.append({
                    "intersection_id": j.intersection_id,
                    "light": lt.index,
                    "ts": iso(now_s),
                    "vehicles": vehicles,
                    "mean_speed_kmh": round(min(mean_kmh, 300.0), 2),
                    "lamps": {c: ("broken" if c in broken else "ok")
                              for c in ("red", "yellow", "green")},
                    "lat": j.lat,
                    "lon": j.lon,
                })
        return out


def _retiming_of(j: network.Junction, answer: dict) -> Retiming:
    """The green durations an answer's timings give `j`'s program phases (whole seconds,
    at least 1: SUMO steps in seconds here)."""
    by_index = {ph.program_index: k for k, ph in enumerate(j.phases)}
    phases = answer["phases"]
    durations = {}
    for p_index, k in by_index.items():
        if k < len(phases):
            durations[p_index] = max(1.0, float(round(phases[k]["green_s"])))
    return Retiming(j.program_id, durations)


@dataclass
class PlanBounds:
    """A plan for an actuated program: per program phase ``(minDur, duration, maxDur)``."""

    program_id: str
    bounds: dict[int, tuple[float, float, float]]
    #: The plan as answered (its cycle, offset and coordinated phase), and its junction.
    plan: dict = field(default_factory=dict)
    junction: network.Junction | None = None


def _plan_of(j: network.Junction, answer: dict) -> PlanBounds:
    """The bounds an answer's plan gives `j`'s green phases (whole seconds, the minimum at
    least 1, ``minDur <= duration <= maxDur``)."""
    by_index = {ph.program_index: k for k, ph in enumerate(j.phases)}
    phases = answer["plan"]["phases"]
    bounds = {}
    for p_index, k in by_index.items():
        if k < len(phases):
            lo = max(1.0, float(round(phases[k]["min_green_s"])))
            hi = max(lo, float(round(phases[k]["max_green_s"])))
            d = min(hi, max(lo, float(round(phases[k]["green_s"]))))
            bounds[p_index] = (lo, d, hi)
    return PlanBounds(j.program_id, bounds, answer["plan"], j)


def _program(traci, tls: str):
    now = [lg for lg in traci.trafficlight.getAllProgramLogics(tls)
           if lg.programID == traci.trafficlight.getProgram(tls)]
    return now[0] if now else None


def _apply_plan(traci, tls: str, plan: PlanBounds) -> list[tuple[float, str, float, float]]:
    """Writes `plan` into `tls`'s running (actuated) program, in its current phase: SUMO
    keeps the current phase's own schedule and runs every phase it enters next under the new
    bounds. A green phase the plan does not cover gets :data:`UNPLANNED_MIN_DUR_S` as its
    minimum (and keeps its maximum); yellow and all-red phases keep theirs. Returns the
    program read back, ``(duration, state, minDur, maxDur)`` per phase."""
    lg = _program(traci, tls)
    if lg is None:
        return []
    phases = []
    for i, p in enumerate(lg.phases):
        lo, d, hi = plan.bounds.get(i, (p.minDur, p.duration, p.maxDur))
        if i not in plan.bounds and network.is_green(p.state):
            lo = min(lo, UNPLANNED_MIN_DUR_S)
        phases.append(traci.trafficlight.Phase(d, p.state, lo, hi))
    traci.trafficlight.setProgramLogic(
        tls, traci.trafficlight.Logic(lg.programID, lg.type, traci.trafficlight.getPhase(tls),
                                      phases, lg.subParameter)
    )
    now = _program(traci, tls)
    return [(p.duration, p.state, p.minDur, p.maxDur) for p in now.phases] if now else []


def _apply(traci, tls: str, r: Retiming) -> list[tuple[float, str]]:
    """Replaces `tls`'s current program with the retimed one, entering its first phase now
    (called when the program has just entered it, so the cycle runs whole)."""
    logics = [lg for lg in traci.trafficlight.getAllProgramLogics(tls)
              if lg.programID == traci.trafficlight.getProgram(tls)]
    if not logics:
        return []
    lg = logics[0]
    phases = []
    for i, p in enumerate(lg.phases):
        d = r.durations.get(i, p.duration)
        phases.append(traci.trafficlight.Phase(d, p.state, d, d))
    spent = traci.trafficlight.getSpentDuration(tls)
    traci.trafficlight.setProgramLogic(
        tls, traci.trafficlight.Logic(lg.programID, lg.type, 0, phases)
    )
    traci.trafficlight.setPhase(tls, 0)
    traci.trafficlight.setPhaseDuration(tls, max(1.0, phases[0].duration - spent))
    now = [lg for lg in traci.trafficlight.getAllProgramLogics(tls)
           if lg.programID == traci.trafficlight.getProgram(tls)]
    return [(p.duration, p.state) for p in now[0].phases] if now else []


class Context:
    """What a control needs of its run: the options, the network, the work directory."""

    def __init__(self, opts: Options, net, work: str):
        self.opts, self.net, self.work = opts, net, work
        self._junctions: list[network.Junction] | None = None

    @property
    def junctions(self) -> list[network.Junction]:
        """The network mapped to the city contract (:mod:`traffic_sumo.network`)."""
        if self._junctions is None:
            self._junctions = network.map_network(self.net)
        return self._junctions


class ClosedLoop:
    """The ``webster`` control: readings to ``traffic sumo`` every simulated minute, its
    timings back into the programs from their next cycle."""

    def __init__(self, traci, ctx: Context, now: float):
        opts = ctx.opts
        junctions = ctx.junctions
        city_path = os.path.join(ctx.work, "city.json")
        with open(city_path, "w") as f:
            json.dump(network.city(junctions), f)
        env = dict(os.environ)
        env.setdefault("WEBSTER_YELLOW_S", f"{clearance_s(junctions):g}")
        self.opts = opts
        self.system = System([opts.traffic, "sumo", "--city", city_path, *opts.traffic_args],
                             env)
        self.by_id = {j.intersection_id: j for j in junctions}
        self.readings = Readings(junctions, opts.lamp_failure_probability, opts.seed)
        self.faults = faults.Faults(
            [(j.intersection_id, lt.index) for j in junctions for lt in j.lights],
            opts.silent_detectors, opts.outage, opts.begin_s, opts.seed)
        self.pending: dict[str, Retiming] = {}
        self.last_phase: dict[str, int] = {}
        self.retimings = 0
        self.alarms = 0
        self.windows: set = set()
        self.arrivals = demand.Arrivals(junctions, {
            j.tls_id: traci.trafficlight.getControlledLinks(j.tls_id) for j in junctions})
        self.demand_error = demand.DemandError()

    @staticmethod
    def additional(ctx: Context) -> list[str]:
        """The detectors the readings come from."""
        lanes = {lane: ctx.net.getLane(lane).getLength() for j in ctx.junctions
                 for lt in j.lights for lane in lt.lanes}
        path = os.path.join(ctx.work, "detectors.add.xml")
        with open(path, "w") as f:
            f.write(network.detectors_xml(ctx.junctions, lanes, READING_PERIOD_S,
                                          os.path.join(ctx.work, "detectors.out.xml")))
        return [path]

    def due(self, traci, tls: str, phase: int) -> bool:
        """Whether a pending retiming of `tls` applies now: when its program has just entered
        its first phase."""
        return phase == 0 and self.last_phase.get(tls, 0) != 0

    def pending_of(self, j: network.Junction, answer: dict):
        """What an answer's timings for `j` change, waiting for its next cycle."""
        return _retiming_of(j, answer)

    def apply(self, traci, tls: str, pending) -> list:
        """Applies a pending change; returns the program read back."""
        return _apply(traci, tls, pending)

    def step(self, traci, now: float) -> None:
        opts = self.opts
        # Retimings take effect when a program starts its next cycle.
        for tls in list(self.pending):
            phase = traci.trafficlight.getPhase(tls)
            if self.due(traci, tls, phase):
                program = self.apply(traci, tls, self.pending.pop(tls))
                self.retimings += 1
                if opts.observer:
                    opts.observer("applied", {"tls": tls, "time": now, "phases": program})
            self.last_phase[tls] = phase
        if int(now) % READING_PERIOD_S == 0:
            readings = self.readings.read(traci, now)
            self.arrivals.close_minute(traci, now, readings)
            if opts.silent_after_s is not None and now - opts.begin_s > opts.silent_after_s:
                return
            if self.faults.unreachable(now):
                return
            answer = self.system.exchange(iso(now), self.faults.reported(readings))
            if "error" in answer:
                raise RuntimeError(f"traffic sumo: {answer['error']}")
            self.demand_error.add(self.arrivals, answer.get("demand", []), window_seconds)
            if opts.observer:
                opts.observer("answer", answer)
            for t in answer.get("timings", []):
                j = self.by_id.get(t["intersection_id"])
                if j is not None:
                    self.pending[j.tls_id] = self.pending_of(j, t)
                    self.last_phase[j.tls_id] = traci.trafficlight.getPhase(j.tls_id)
                    self.windows.add(t.get("retimed_from"))
            for a in answer.get("alarms", []):
                self.alarms += 1
                _log(f"alarm: {a['intersection_id']} light {a['light']} "
                     f"{a['lamp']} lamp broken at {a['ts']}")

    def close(self) -> dict:
        code = self.system.close()
        if code != 0:
            raise RuntimeError(f"traffic sumo exited with code {code}")
        _log(f"[{self.opts.control}] {len(self.windows)} control windows gave timings; "
             f"{self.alarms} alarms")
        return {"retimings": self.retimings, "demand_error": self.demand_error.summary()}


class AdaptiveLoop(ClosedLoop):
    """The ``adaptive`` control: the closed loop's plans as the bounds of SUMO's actuated
    programs (those of ``actuated``), from each junction's next cycle; a plan with an offset
    holds its program to the group's cycle (:mod:`traffic_sumo.coordination`)."""

    def __init__(self, traci, ctx: Context, now: float):
        super().__init__(traci, ctx, now)
        self.holder = coordination.Holder(START.timestamp())
        self.last_index = {}
        for j in ctx.junctions:
            lg = _program(traci, j.tls_id)
            self.last_index[j.tls_id] = len(lg.phases) - 1 if lg else 0

    @staticmethod
    def additional(ctx: Context) -> list[str]:
        return ClosedLoop.additional(ctx) + _actuated_additional(ctx)

    def due(self, traci, tls: str, phase: int) -> bool:
        """When the program has just entered its last phase (normally the clearance before
        its first): the plan is written then, so the next cycle runs under it whole."""
        last = self.last_index.get(tls, 0)
        return phase == last and self.last_phase.get(tls, last) != last

    def pending_of(self, j: network.Junction, answer: dict):
        return _plan_of(j, answer)

    def apply(self, traci, tls: str, pending) -> list:
        program = _apply_plan(traci, tls, pending)
        if pending.junction is not None:
            self.holder.set(tls, coordination.schedule_of(pending.junction, pending.plan,
                                                          program))
        return program

    def step(self, traci, now: float) -> None:
        super().step(traci, now)
        self.holder.step(traci, now)

    def close(self) -> dict:
        out = super().close()
        _log(f"[{self.opts.control}] {len(self.holder.schedules)} junctions coordinated; "
             f"{self.holder.forced} force-offs")
        return out


class _MaxPressure(maxpressure.MaxPressure):
    def __init__(self, traci, ctx: Context, now: float):
        super().__init__(traci, now, ctx.opts.observer, net=ctx.net)

    def close(self) -> dict:
        return {}


def _actuated_additional(ctx: Context) -> list[str]:
    path = os.path.join(ctx.work, "actuated.add.xml")
    with open(path, "w") as f:
        f.write(actuated_xml(ctx.net))
    return [path]


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
    "actuated": Control(additional=_actuated_additional),
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
                _log(f"[{opts.control}] {iso(now)}  running {traci.vehicle.getIDCount():>5}  "
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
