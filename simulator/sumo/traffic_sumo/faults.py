"""Faults between SUMO and the system, for the closed loop (``webster``, ``adaptive``): what
the loop does when its inputs fail.

- **Silent detectors** (``--silent-detectors FRACTION``): that share of the lights' detectors
  (rounded to whole lights, chosen by the run's seed) never report. A detector here is a
  light's sensor of the reading contract, one reading stream per light: a dead one sends
  nothing at all, so its light's readings never reach the system (not readings of zero
  vehicles). SUMO's own actuated control (``actuated``, and ``adaptive``'s programs) keeps
  its detectors: those are the controller's in the field, wired to the cabinet, while the
  system's are the ones that report over the network; a fault of the one says nothing about
  the other.
- **Outage** (``--outage START+DURATION``, e.g. ``20m+1h``, from the run's begin): between
  those simulated instants the system is unreachable: it gets no tick (the readings of that
  time are lost, as a field device's buffer would lose an hour) and so gives no answer; the
  controller keeps running the last timings or plan it received. Dropping the answers while
  the system still took the readings would lose timing changes it believes delivered (an
  answer carries changes only): a fault of the bridge's protocol, not of the loop.

Neither fault touches ``fixed``, ``actuated`` or ``max-pressure``, which never hear from the
system; a run's result names the faults it was given (``faults``) whatever its control.
"""

from __future__ import annotations

import random
import re

#: ``START+DURATION`` of ``--outage``: each a number and a unit (s, m, h; none: seconds).
OUTAGE = re.compile(r"\s*(\d+)\s*([smh]?)\s*\+\s*(\d+)\s*([smh]?)\s*")

_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_outage(text: str) -> tuple[int, int]:
    """``20m+1h`` → ``(1200, 3600)``: the outage's start from the run's begin and its length,
    s. A malformed text or an empty outage is refused with a reason."""
    m = OUTAGE.fullmatch(text)
    if not m:
        raise ValueError(f"not an outage START+DURATION (like 20m+1h): {text!r}")
    start = int(m.group(1)) * _UNIT[m.group(2)]
    length = int(m.group(3)) * _UNIT[m.group(4)]
    if length <= 0:
        raise ValueError(f"an outage lasts more than 0 s: {text!r}")
    return start, length


def silent_lights(lights: list[tuple[str, int]], fraction: float, seed: int
                  ) -> set[tuple[str, int]]:
    """The lights whose detectors are dead: ``round(fraction × len(lights))`` of them, drawn
    by `seed` (the same for a seed and a network, whatever the control)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the share of silent detectors is 0..1, got {fraction}")
    ordered = sorted(lights)
    # A generator of its own: the lamp failures' draws stay what they were without faults.
    return set(random.Random(f"silent-detectors:{seed}").sample(
        ordered, round(fraction * len(ordered))))


class Faults:
    """The faults of one run, between the detectors and the system."""

    def __init__(self, lights: list[tuple[str, int]], silent_fraction: float,
                 outage: tuple[int, int] | None, begin_s: float, seed: int):
        self.silent = silent_lights(lights, silent_fraction, seed)
        self.outage = None if outage is None else (begin_s + outage[0],
                                                   begin_s + outage[0] + outage[1])

    def unreachable(self, now_s: float) -> bool:
        """Whether the system cannot be reached at `now_s` (within the outage)."""
        return self.outage is not None and self.outage[0] <= now_s < self.outage[1]

    def reported(self, readings: list[dict]) -> list[dict]:
        """The readings that reach the system: none of a silent light."""
        return [r for r in readings if (r["intersection_id"], r["light"]) not in self.silent]


def describe(silent_fraction: float, outage: tuple[int, int] | None) -> dict:
    """The result's ``faults``: ``{"silent_detectors": share, "outage_s": [start, length]
    or null}``."""
    return {"silent_detectors": silent_fraction,
            "outage_s": None if outage is None else list(outage)}
