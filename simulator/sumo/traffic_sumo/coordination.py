"""Coordinated actuated control in the bridge: a plan with an offset holds its junction's
cycle to the group's clock.

A plan's ``offset_s`` and ``coordinated_phase`` (``core/src/coordination.rs``) say that the
coordinated phase's green starts at every instant ``t`` (seconds since the Unix epoch) with
``(t - offset_s) mod cycle_s = 0``. SUMO's actuated programs run free (each green ends on a
gap, between its ``minDur`` and ``maxDur``), so the bridge holds them to that clock the way a
coordinated actuated controller does (fixed cycle, the coordinated phase taking the slack):

- **yield point**: the coordinated green ends at ``offset + green`` of its cycle (the plan's
  green, as written into the program): when the program enters it, its remaining duration is
  set to reach the yield point after the one its previous green served (``setPhaseDuration``),
  at least its minimum. A program that comes back early (the other phases gapped out) holds
  the coordinated green longer, until the yield point: the early return to green of
  coordinated controllers. One that comes back late gets its minimum, and the force-offs pull
  the next cycle back;
- **force-offs**: every other green phase must end by the point where the plan's durations
  (greens and clearances after the coordinated green, in program order) end it; still green
  past it (or before the yield point, the cycle running late), it ends as soon as it has had
  its ``minDur``. Within its window it stays actuated: it may gap out early, never run long.

A plan without an offset removes the junction's schedule: the program runs free again,
exactly as without coordination.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import network


@dataclass
class Schedule:
    """A junction's coordinated cycle, in positions from its coordinated green's start."""

    cycle_s: float
    #: The coordinated green starts at epoch seconds ``offset_s + k * cycle_s``.
    offset_s: float
    #: The coordinated green's program index, its planned green and minimum.
    phase: int
    green_s: float
    min_s: float
    #: Per other green phase (program index): the position by which it must end, its minimum.
    force_off: dict[int, tuple[float, float]]


def schedule_of(j: network.Junction, plan: dict,
                program: list[tuple[float, str, float, float]]) -> Schedule | None:
    """The schedule of `plan` on `j`'s `program` (``(duration, state, minDur, maxDur)`` per
    phase, the plan written into it); ``None`` when the plan has no offset."""
    offset, k, cycle = plan.get("offset_s"), plan.get("coordinated_phase"), plan.get("cycle_s")
    if offset is None or k is None or not cycle or cycle <= 0 or k >= len(j.phases):
        return None
    s = j.phases[k].program_index
    n = len(program)
    if s >= n:
        return None
    green, _, lo, _ = program[s]
    pos = green
    force_off = {}
    i = (s + 1) % n
    while i != s:
        pos += program[i][0]
        if network.is_green(program[i][1]):
            force_off[i] = (pos, program[i][2])
        i = (i + 1) % n
    return Schedule(float(cycle), float(offset), s, float(green), float(lo), force_off)


def hold_until(s: Schedule, p: float, now: float, last: float | None) -> tuple[float, float]:
    """When the coordinated green entered at time `now` (cycle position `p`) ends, and the
    yield point it serves: the one after `last` (the yield point the previous coordinated
    green served; the next one from now for the first), skipping whole cycles the program has
    fallen behind. It ends at that yield point, at least its minimum from now: a program back
    early holds the green until it (early return to green), one back late gets its minimum."""
    if last is None:
        target = now + (s.green_s - p) % s.cycle_s
    else:
        target = last + s.cycle_s
        while target + s.cycle_s <= now + s.min_s:
            target += s.cycle_s
    return max(target, now + s.min_s), target


class Holder:
    """Holds the coordinated junctions' programs to their schedules, one step at a time."""

    def __init__(self, epoch_at_zero: float):
        #: Epoch seconds at simulated time 0.
        self.epoch_at_zero = epoch_at_zero
        self.schedules: dict[str, Schedule] = {}
        self.last: dict[str, int] = {}
        #: Per TLS, the yield point its last coordinated green served (simulated time).
        self.served: dict[str, float] = {}
        self.forced = 0

    def set(self, tls: str, schedule: Schedule | None) -> None:
        """`tls`'s schedule from now on (``None``: free again)."""
        if schedule != self.schedules.get(tls):
            self.served.pop(tls, None)
        if schedule is None:
            self.schedules.pop(tls, None)
        else:
            self.schedules[tls] = schedule

    def position(self, s: Schedule, now: float) -> float:
        """Where simulated time `now` is in `s`'s cycle."""
        return (self.epoch_at_zero + now - s.offset_s) % s.cycle_s

    def step(self, traci, now: float) -> None:
        for tls, s in self.schedules.items():
            cur = traci.trafficlight.getPhase(tls)
            entered = cur != self.last.get(tls)
            self.last[tls] = cur
            p = self.position(s, now)
            if cur == s.phase:
                if entered:
                    end, self.served[tls] = hold_until(s, p, now, self.served.get(tls))
                    # SUMO ends the phase one step after the remaining duration set here
                    traci.trafficlight.setPhaseDuration(tls, max(0.0, round(end - now) - 1))
            elif cur in s.force_off:
                end, lo = s.force_off[cur]
                late = p >= end or p < s.green_s
                if late and traci.trafficlight.getSpentDuration(tls) >= lo:
                    traci.trafficlight.setPhaseDuration(tls, 0.0)
                    self.forced += 1
