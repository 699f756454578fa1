"""Runs a SUMO network under one control and reports SUMO's trip statistics.

Controls:

- ``fixed``: the network's own programs, untouched;
- ``webster``: the closed loop through the system. Every simulated minute the detectors on
  the approach lanes give one reading per light (the reading contract: vehicles that crossed
  the stop line's detectors in that minute, their mean speed, the lamps), sent to
  ``traffic sumo`` (the same ``ingest``, ``fault`` and ``merge`` handlers on the embedded
  store), which answers with the timings its merge wrote. New timings replace the green
  phases' durations from the next cycle of the junction's program (when it next enters its
  first phase); yellow and all-red phases keep theirs. Nothing is computed here but readings;
- ``actuated``: SUMO's own actuated control on the same phases (the program's type switched
  to ``actuated``, green phases between :data:`ACTUATED_MIN_DUR_S` and
  :data:`ACTUATED_MAX_DUR_S`, the defaults of ``netconvert --tls.default-type actuated``);
- ``sumo-webster``: SUMO's offline Webster (``tools/tlsCycleAdaptation.py`` with its defaults),
  which knows every route in advance: a reference, not a controller that could run in a city.

Simulated time starts at :data:`START` (SUMO time 0), so a run is deterministic for a seed.
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

from . import network

#: SUMO time 0, as the readings' event time.
START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=timezone.utc)

#: The period of the readings (the reading contract's "one reading per light per minute").
READING_PERIOD_S = 60

#: Shortest and longest green of a phase under ``actuated`` (netconvert's defaults).
ACTUATED_MIN_DUR_S = 5
ACTUATED_MAX_DUR_S = 50

CONTROLS = ("fixed", "webster", "actuated", "sumo-webster")


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


@dataclass
class Options:
    """One run."""

    net: str
    routes: str
    control: str
    duration_s: int | None = None
    seed: int = 1
    #: Probability that a reading breaks one of its light's lamps (it stays broken).
    lamp_failure_probability: float = 0.0
    #: The ``traffic`` command (``webster`` only).
    traffic: str = "traffic"
    #: Extra arguments of ``traffic sumo``.
    traffic_args: list[str] = field(default_factory=list)
    #: Progress lines on stderr every this many simulated seconds (0: none).
    progress_every_s: int = 300
    #: Where the run's files go (a temporary directory when empty).
    workdir: str | None = None
    #: Called with ``("answer", answer)`` for every answer of the system and with
    #: ``("applied", {"tls", "time", "phases": [(duration, state), ...]})`` with the program
    #: read back from SUMO after every retiming (tests watch the loop through it).
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
                attrs["minDur"] = str(ACTUATED_MIN_DUR_S)
                attrs["maxDur"] = str(ACTUATED_MAX_DUR_S)
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


def run(opts: Options) -> dict:
    """Runs the simulation; returns the result object (the last line of ``sumo.sh``)."""
    import libsumo as traci
    import sumolib

    if opts.control not in CONTROLS:
        raise ValueError(f"control must be one of {', '.join(CONTROLS)}, got {opts.control!r}")
    work = opts.workdir or tempfile.mkdtemp(prefix="traffic-sumo-")
    os.makedirs(work, exist_ok=True)
    net = sumolib.net.readNet(opts.net, withPrograms=True)
    junctions = network.map_network(net)
    lanes = {lane: net.getLane(lane).getLength() for j in junctions for lt in j.lights
             for lane in lt.lanes}
    adds = [os.path.join(work, "detectors.add.xml")]
    with open(adds[0], "w") as f:
        f.write(network.detectors_xml(junctions, lanes, READING_PERIOD_S,
                                      os.path.join(work, "detectors.out.xml")))
    if opts.control == "actuated":
        adds.append(os.path.join(work, "actuated.add.xml"))
        with open(adds[-1], "w") as f:
            f.write(actuated_xml(net))
    elif opts.control == "sumo-webster":
        adds.append(os.path.join(work, "tls-webster.add.xml"))
        subprocess.run(
            [sys.executable, os.path.join(sumo_home(), "tools", "tlsCycleAdaptation.py"),
             "-n", opts.net, "-r", opts.routes, "-o", adds[-1]],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    stats = os.path.join(work, "statistics.xml")
    argv = [sumo_binary("sumo"), "-n", opts.net, "-r", opts.routes, "-a", ",".join(adds),
            "--no-step-log", "--no-warnings", "--seed", str(opts.seed),
            "--statistic-output", stats, "--duration-log.statistics", "true",
            "--duration-log.disable"]
    if opts.duration_s:
        argv += ["--end", str(opts.duration_s)]

    system = None
    if opts.control == "webster":
        city_path = os.path.join(work, "city.json")
        with open(city_path, "w") as f:
            json.dump(network.city(junctions), f)
        env = dict(os.environ)
        env.setdefault("WEBSTER_YELLOW_S", f"{clearance_s(junctions):g}")
        system = System([opts.traffic, "sumo", "--city", city_path, *opts.traffic_args], env)

    by_id = {j.intersection_id: j for j in junctions}
    readings = Readings(junctions, opts.lamp_failure_probability, opts.seed)
    pending: dict[str, Retiming] = {}
    last_phase: dict[str, int] = {}
    retimings = 0
    alarms = 0
    windows = set()
    wall = time.monotonic()
    # SUMO writes its messages to the process's stdout: send them to stderr with the progress,
    # so that stdout carries only the result.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    traci.start(argv)
    try:
        while True:
            if opts.duration_s is None and traci.simulation.getMinExpectedNumber() <= 0:
                break
            traci.simulationStep()
            now = traci.simulation.getTime()
            if opts.duration_s is not None and now >= opts.duration_s:
                break
            # Retimings take effect when a program starts its next cycle.
            for tls in list(pending):
                phase = traci.trafficlight.getPhase(tls)
                if phase == 0 and last_phase.get(tls, 0) != 0:
                    program = _apply(traci, tls, pending.pop(tls))
                    retimings += 1
                    if opts.observer:
                        opts.observer("applied", {"tls": tls, "time": now, "phases": program})
                last_phase[tls] = phase
            if system is not None and int(now) % READING_PERIOD_S == 0:
                answer = system.exchange(iso(now), readings.read(traci, now))
                if "error" in answer:
                    raise RuntimeError(f"traffic sumo: {answer['error']}")
                if opts.observer:
                    opts.observer("answer", answer)
                for t in answer.get("timings", []):
                    j = by_id.get(t["intersection_id"])
                    if j is not None:
                        pending[j.tls_id] = _retiming_of(j, t)
                        last_phase[j.tls_id] = traci.trafficlight.getPhase(j.tls_id)
                        windows.add(t.get("retimed_from"))
                for a in answer.get("alarms", []):
                    alarms += 1
                    _log(f"alarm: {a['intersection_id']} light {a['light']} "
                         f"{a['lamp']} lamp broken at {a['ts']}")
            if opts.progress_every_s and int(now) % opts.progress_every_s == 0:
                _log(f"[{opts.control}] {iso(now)}  running {traci.vehicle.getIDCount():>5}  "
                     f"arrived {traci.simulation.getArrivedNumber():>4}/step  "
                     f"retimings {retimings}  ({time.monotonic() - wall:.1f} s)")
    finally:
        traci.close()
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        if system is not None:
            code = system.close()
            if code != 0:
                raise RuntimeError(f"traffic sumo exited with code {code}")
    result = {"control": opts.control, **trip_statistics(stats), "retimings": retimings}
    if system is not None:
        _log(f"[{opts.control}] {len(windows)} control windows gave timings; {alarms} alarms")
    return result
