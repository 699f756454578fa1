"""Max-pressure control (Varaiya, 2013), the reference controller of the benchmark: what RESCO
publishes as "MaxPressure" beside its learned controllers.

Every :data:`PERIOD_S` a junction whose green has lasted at least :data:`MIN_GREEN_S` gives
green to the green phase of its own program (a state with ``G`` or ``g`` and no ``y``) with
the most pressure. A phase's pressure is the sum over its movements (the distinct pairs of
incoming and outgoing lane of the links it gives ``G`` or ``g``) of the queue on the
incoming side less the queue on the outgoing side. A side's queue is the halting vehicles
(SUMO's ``getLastStepHaltingNumber``: slower than 0.1 m/s) on its lane and on the street it
continues, up to :data:`REACH_M` from the junction: the lanes before an incoming lane that
lead nowhere else, the lanes after an outgoing lane that nothing else leads to (a street
split into several edges with no choice between them). The current phase is kept on a tie.

Queues rather than every vehicle on the lane: on cologne8 the vehicle count gives 29 s of
mean delay (seed 1), the queue 23.5 s, near RESCO's published figure. The continued street:
real networks split a street into short edges (ingolstadt7 feeds a junction through a lane
1 m long, after a 44 m edge where 280 trips start), and a queue past the first split is
invisible: the light starves it and the vehicles cannot even enter the network (ingolstadt7,
seed 1: 207 s with the lanes alone, 36 s with their streets; cologne8 unchanged). Lanes
beyond a branching are not counted: a queue there is not this movement's (counting every
lane within reach gave 104 s on cologne8).

A change runs the network's own clearance: the yellow and then the all-red time that follow
the current phase in the program, with yellow on the links that lose their green and red
(all-red) on them after; links green in both phases keep it. The signals are driven through
TraCI's ``setRedYellowGreenState``; no program is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .network import is_green

#: Seconds between two decisions of a junction.
PERIOD_S = 10
#: Shortest green a decision can end.
MIN_GREEN_S = 10
#: How far from the junction a side's queue is counted along its street, m.
REACH_M = 200.0
#: Yellow of a phase after which the program has no clearance at all.
DEFAULT_YELLOW_S = 3.0


@dataclass(frozen=True)
class GreenPhase:
    """A green phase of a program, with the clearance that follows it there."""

    index: int
    state: str
    yellow_s: float
    red_s: float


def green_phases(program: list[tuple[float, str]]) -> list[GreenPhase]:
    """The program's green phases, each with the duration of the yellow phases (a ``y``) and
    of the other phases (all-red) between it and the next green phase."""
    n, out = len(program), []
    for i, (_, state) in enumerate(program):
        if not is_green(state):
            continue
        yellow = red = 0.0
        j = (i + 1) % n
        while j != i and not is_green(program[j][1]):
            if any(c in "yY" for c in program[j][1]):
                yellow += float(program[j][0])
            else:
                red += float(program[j][0])
            j = (j + 1) % n
        out.append(GreenPhase(i, state, yellow, red))
    return out


def best_phase(pressures: dict[int, float], current: int) -> int:
    """The phase of most pressure; the current one on a tie, else the first in program order."""
    top = max(pressures.values())
    if pressures.get(current) == top:
        return current
    return min(i for i, p in pressures.items() if p == top)


def transition(current: str, target: str, yellow_s: float, red_s: float
               ) -> list[tuple[str, float]]:
    """The clearance stages from the state `current` to `target`: yellow, then all-red, for
    the links that lose their green (stages of no duration left out)."""
    def stage(losing: str) -> str:
        out = []
        for c, t in zip(current, target):
            if c in "Gg" and t in "Gg":
                out.append(c)
            elif c in "Gg":
                out.append(losing)
            else:
                out.append("s" if c == "s" else "r")
        return "".join(out)

    stages = []
    if yellow_s > 0:
        stages.append((stage("y"), yellow_s))
    if red_s > 0:
        stages.append((stage("r"), red_s))
    return stages


def reach(lane: str, length: dict[str, float], neighbours: dict[str, list[str]],
          reach_m: float = REACH_M) -> list[str]:
    """`lane` and the lanes `neighbours` leads to from it (before it, or after it) within
    `reach_m` of its junction end, `length` giving each lane's length."""
    out, seen = [lane], {lane}
    frontier = [(lane, length.get(lane, reach_m))]
    while frontier:
        cur, dist = frontier.pop()
        if dist >= reach_m:
            continue
        for nxt in neighbours.get(cur, []):
            if nxt not in seen:
                seen.add(nxt)
                out.append(nxt)
                frontier.append((nxt, dist + length.get(nxt, reach_m)))
    return sorted(out)


def lane_graph(net) -> tuple[dict[str, float], dict[str, list[str]], dict[str, list[str]]]:
    """A `sumolib` network's lane lengths, and each lane's street: the lanes before it that
    lead only to it, the lanes after it that only it leads to."""
    length: dict[str, float] = {}
    before: dict[str, set[str]] = {}
    after: dict[str, set[str]] = {}
    for edge in net.getEdges():
        for ln in edge.getLanes():
            length[ln.getID()] = ln.getLength()
            for c in ln.getOutgoing():
                to = c.getToLane().getID()
                after.setdefault(ln.getID(), set()).add(to)
                before.setdefault(to, set()).add(ln.getID())
    return (length,
            {ln: sorted(p for p in ps if after.get(p) == {ln}) for ln, ps in before.items()},
            {ln: sorted(q for q in qs if before.get(q) == {ln}) for ln, qs in after.items()})


class _Junction:
    def __init__(self, tls: str, phases: list[GreenPhase], movements: dict[int, list]):
        self.tls = tls
        self.phases = {g.index: g for g in phases}
        self.movements = movements  # phase index -> [(in lanes, out lanes)]
        self.current = phases[0].index
        self.next_decision = 0.0
        self.stages: list[tuple[str, float]] = []  # clearance still to run
        self.stage_end = 0.0
        self.target: int | None = None


class MaxPressure:
    """The controller of every traffic light of a running simulation (libsumo or TraCI).

    `observer` gets ``("decision", {"tls", "time", "phase", "pressures"})`` at every decision
    and ``("green", {"tls", "time", "phase", "state", "program_state"})`` when a green starts
    after a change."""

    def __init__(self, traci, now: float,
                 observer: Callable[[str, dict], None] | None = None, net=None):
        self.observer = observer
        self.junctions: list[_Junction] = []
        # each side's lanes: the lane alone without the network, else its reach
        if net is not None:
            length, before, after = lane_graph(net)
            self.upstream = lambda ln: reach(ln, length, before)
            self.downstream = lambda ln: reach(ln, length, after)
        else:
            self.upstream = self.downstream = lambda ln: [ln]
        for tls in sorted(traci.trafficlight.getIDList()):
            program = traci.trafficlight.getProgram(tls)
            logics = [lg for lg in traci.trafficlight.getAllProgramLogics(tls)
                      if lg.programID == program]
            if not logics:
                continue
            plan = green_phases([(p.duration, p.state) for p in logics[0].phases])
            if not plan:
                continue
            links = traci.trafficlight.getControlledLinks(tls)
            movements = {}
            for g in plan:
                pairs = {(ln[0], ln[1]) for k, group in enumerate(links)
                         if k < len(g.state) and g.state[k] in "Gg" for ln in group}
                movements[g.index] = [(tuple(self.upstream(a)), tuple(self.downstream(b)))
                                      for a, b in sorted(pairs)]
            j = _Junction(tls, plan, movements)
            # start on the green the program is in (or comes to next)
            at = traci.trafficlight.getPhase(tls)
            later = [g.index for g in plan if g.index >= at]
            j.current = later[0] if later else plan[0].index
            traci.trafficlight.setRedYellowGreenState(tls, j.phases[j.current].state)
            j.next_decision = now + MIN_GREEN_S
            self.junctions.append(j)

    def pressures(self, traci, j: _Junction, counts: dict[str, int]) -> dict[int, float]:
        def n(lanes: tuple[str, ...]) -> int:
            total = 0
            for lane in lanes:
                if lane not in counts:
                    counts[lane] = traci.lane.getLastStepHaltingNumber(lane)
                total += counts[lane]
            return total

        return {i: float(sum(n(a) - n(b) for a, b in mv)) for i, mv in j.movements.items()}

    def step(self, traci, now: float) -> None:
        """Called after every simulation step, `now` the simulation time."""
        counts: dict[str, int] = {}
        for j in self.junctions:
            if j.target is not None:
                if now >= j.stage_end:
                    self._advance(traci, j, now)
                continue
            if now < j.next_decision:
                continue
            pressures = self.pressures(traci, j, counts)
            best = best_phase(pressures, j.current)
            if self.observer:
                self.observer("decision", {"tls": j.tls, "time": now, "phase": best,
                                           "pressures": pressures})
            if best == j.current:
                j.next_decision = now + PERIOD_S
                continue
            g, target = j.phases[j.current], j.phases[best]
            losing = any(c in "Gg" and t not in "Gg" for c, t in zip(g.state, target.state))
            yellow, red = g.yellow_s, g.red_s
            if yellow == 0 and red == 0:
                yellow = DEFAULT_YELLOW_S
            j.stages = transition(g.state, target.state, yellow, red) if losing else []
            j.target = best
            self._advance(traci, j, now)

    def _advance(self, traci, j: _Junction, now: float) -> None:
        """The next clearance stage of a change, or the target's green when none is left."""
        if j.stages:
            state, d = j.stages.pop(0)
            traci.trafficlight.setRedYellowGreenState(j.tls, state)
            j.stage_end = now + d
            return
        j.current, j.target = j.target, None
        state = j.phases[j.current].state
        traci.trafficlight.setRedYellowGreenState(j.tls, state)
        j.next_decision = now + MIN_GREEN_S
        if self.observer:
            self.observer("green", {
                "tls": j.tls, "time": now, "phase": j.current, "program_state": state,
                "state": traci.trafficlight.getRedYellowGreenState(j.tls)})
