"""The closed loops: SUMO's detectors read into contract readings every simulated minute, sent to
``traffic sumo`` (:class:`System`), and its answers written into the programs
(:mod:`traffic_sumo.programs`): the timings under ``webster`` (:class:`ClosedLoop`), the plans
under ``adaptive`` (:class:`AdaptiveLoop`)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import TYPE_CHECKING

from . import coordination, demand, faults, network, programs
from .clock import READING_PERIOD_S, START, iso, window_seconds

if TYPE_CHECKING:
    from .bridge import Options


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


def log(msg: str) -> None:
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
        env.setdefault("WEBSTER_YELLOW_S", f"{programs.clearance_s(junctions):g}")
        self.opts = opts
        self.system = System([opts.traffic, "sumo", "--city", city_path, *opts.traffic_args],
                             env)
        self.by_id = {j.intersection_id: j for j in junctions}
        self.readings = Readings(junctions, opts.lamp_failure_probability, opts.seed)
        self.faults = faults.Faults(
            [(j.intersection_id, lt.index) for j in junctions for lt in j.lights],
            opts.silent_detectors, opts.outage, opts.begin_s, opts.seed)
        self.pending: dict[str, programs.Retiming] = {}
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
        return programs.retiming_of(j, answer)

    def apply(self, traci, tls: str, pending) -> list:
        """Applies a pending change; returns the program read back."""
        return programs.apply_retiming(traci, tls, pending)

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
                log(f"alarm: {a['intersection_id']} light {a['light']} "
                     f"{a['lamp']} lamp broken at {a['ts']}")

    def close(self) -> dict:
        code = self.system.close()
        if code != 0:
            raise RuntimeError(f"traffic sumo exited with code {code}")
        log(f"[{self.opts.control}] {len(self.windows)} control windows gave timings; "
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
            lg = programs.running_program(traci, j.tls_id)
            self.last_index[j.tls_id] = len(lg.phases) - 1 if lg else 0

    @staticmethod
    def additional(ctx: Context) -> list[str]:
        return ClosedLoop.additional(ctx) + programs.actuated_additional(ctx)

    def due(self, traci, tls: str, phase: int) -> bool:
        """When the program has just entered its last phase (normally the clearance before
        its first): the plan is written then, so the next cycle runs under it whole."""
        last = self.last_index.get(tls, 0)
        return phase == last and self.last_phase.get(tls, last) != last

    def pending_of(self, j: network.Junction, answer: dict):
        return programs.plan_of(j, answer)

    def apply(self, traci, tls: str, pending) -> list:
        program = programs.apply_plan(traci, tls, pending)
        if pending.junction is not None:
            self.holder.set(tls, coordination.schedule_of(pending.junction, pending.plan,
                                                          program))
        return program

    def step(self, traci, now: float) -> None:
        super().step(traci, now)
        self.holder.step(traci, now)

    def close(self) -> dict:
        out = super().close()
        log(f"[{self.opts.control}] {len(self.holder.schedules)} junctions coordinated; "
             f"{self.holder.forced} force-offs")
        return out
