"""The traffic-light programs in SUMO: every program again as ``actuated``, and the timings and
plans the system answers turned into green durations and bounds and written into the running
programs."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from . import network

#: Shortest and longest green of a phase under ``actuated`` where the network gives none
#: (netconvert's defaults, ``--tls.min-dur`` and ``--tls.max-dur``).
ACTUATED_MIN_DUR_S = 5
ACTUATED_MAX_DUR_S = 50

#: Shortest green under ``adaptive`` of a green phase the plan does not cover (no light's own:
#: a protected turn, a second combination of movements): it has no share in Webster's plan,
#: so it runs only while its detectors see traffic, SUMO's stand-in for skipping a phase
#: without calls.
UNPLANNED_MIN_DUR_S = 1


@dataclass
class Retiming:
    """New green durations for a TLS program, waiting for the program's next cycle."""

    program_id: str
    durations: dict[int, float]


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


def actuated_additional(ctx) -> list[str]:
    """The additional file of :func:`actuated_xml` in the run's work directory."""
    path = os.path.join(ctx.work, "actuated.add.xml")
    with open(path, "w") as f:
        f.write(actuated_xml(ctx.net))
    return [path]


def retiming_of(j: network.Junction, answer: dict) -> Retiming:
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


def plan_of(j: network.Junction, answer: dict) -> PlanBounds:
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


def running_program(traci, tls: str):
    now = [lg for lg in traci.trafficlight.getAllProgramLogics(tls)
           if lg.programID == traci.trafficlight.getProgram(tls)]
    return now[0] if now else None


def apply_plan(traci, tls: str, plan: PlanBounds) -> list[tuple[float, str, float, float]]:
    """Writes `plan` into `tls`'s running (actuated) program, in its current phase: SUMO
    keeps the current phase's own schedule and runs every phase it enters next under the new
    bounds. A green phase the plan does not cover gets :data:`UNPLANNED_MIN_DUR_S` as its
    minimum (and keeps its maximum); yellow and all-red phases keep theirs. Returns the
    program read back, ``(duration, state, minDur, maxDur)`` per phase."""
    lg = running_program(traci, tls)
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
    now = running_program(traci, tls)
    return [(p.duration, p.state, p.minDur, p.maxDur) for p in now.phases] if now else []


def apply_retiming(traci, tls: str, r: Retiming) -> list[tuple[float, str]]:
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
