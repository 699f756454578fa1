"""Coordination in the bridge: a plan with an offset holds the junction's coordinated green
to the group's clock (its green ends at ``offset + green + k * cycle``), other greens end by
their force-offs, and a plan without one leaves the program free."""

from __future__ import annotations

import pytest

from traffic_sumo import bridge, coordination, network
from test_adaptive import ScriptedSystem, green_indices, scripted_run  # noqa: F401

# A 40 s cycle: two greens of 17 s (minimum 5 s, maximum 51 s) and two yellows of 3 s.
BOUNDS = [(5.0, 17.0, 51.0), (5.0, 17.0, 51.0)]


def coordinated_answer(offset):
    def answer(now, bounds):
        a = ORIGINAL(now, bounds)
        plan = a["timings"][0]["plan"]
        plan.update(cycle_s=40.0, offset_s=offset, coordinated_phase=None if offset is None
                    else 0)
        return a
    return answer


ORIGINAL = None


def coordinated_run(crossing, tmp_path, monkeypatch, offset):
    import test_adaptive

    global ORIGINAL
    ORIGINAL = test_adaptive.plan_answer
    monkeypatch.setattr(test_adaptive, "plan_answer", coordinated_answer(offset))
    return scripted_run(crossing, tmp_path, monkeypatch, {bridge.iso(60): BOUNDS})


def position(t: float, offset: float) -> float:
    return (bridge.START.timestamp() + t - offset) % 40.0


@pytest.mark.parametrize("offset", [7.0, 31.5])
def test_the_coordinated_green_ends_on_the_groups_clock_and_covers_its_offset(
        crossing, tmp_path, monkeypatch, offset):
    result, applied, spans = coordinated_run(crossing, tmp_path, monkeypatch, offset)
    (first, second) = green_indices(crossing)
    at = applied[0]["time"]
    # from the second cycle under the plan on, every coordinated green ends at the yield
    # point (offset + 17 s of the 40 s cycle, to the second) and is green at the offset
    greens = [(s, e) for p, s, e in spans if p == first and s > at + 40]
    assert len(greens) >= 4, spans
    for s, e in greens:
        assert abs(position(e, offset) - 17.0) <= 1.0, (s, e, offset, spans)
        assert e - s >= 17.0 - 1.0
    # and the cycle is the group's: one coordinated green per 40 s
    starts = [e for _, e in greens]
    assert all(b - a == pytest.approx(40.0, abs=1.0) for a, b in zip(starts, starts[1:]))
    # the other green ends by its force-off (17 + 3 + 17 s: 37 s into the cycle)
    others = [(s, e) for p, s, e in spans if p == second and s > at + 40]
    for s, e in others:
        p = position(e, offset)
        assert 17.0 <= p <= 37.0 + 1.0, (s, e, p)


def test_without_an_offset_the_program_runs_free(crossing, tmp_path, monkeypatch):
    _, applied, spans = coordinated_run(crossing, tmp_path, monkeypatch, None)
    first = green_indices(crossing)[0]
    at = applied[0]["time"]
    # nothing holds the heavy north-south green to 17 s: it runs on its detectors
    lengths = {e - s for p, s, e in spans if p == first and s > at}
    assert lengths and lengths != {17.0}, lengths


def test_an_early_return_holds_the_coordinated_green_to_the_yield_point():
    s = coordination.Schedule(cycle_s=40.0, offset_s=0.0, phase=0, green_s=17.0, min_s=5.0,
                              force_off={2: (37.0, 5.0)})
    # the first: to the next yield point (17 s into the cycle)
    assert coordination.hold_until(s, 0.0, 100.0, None) == (117.0, 117.0)
    # the previous green served the yield at 117 s; back at 145 s (28 s into the next
    # cycle, 12 s early): held until 157 s
    assert coordination.hold_until(s, 28.0, 145.0, 117.0) == (157.0, 157.0)
    # back at 155 s: late for the yield at 157 s, so its minimum
    assert coordination.hold_until(s, 38.0, 155.0, 117.0) == (160.0, 157.0)
    # more than a cycle behind: the missed yield points are skipped
    assert coordination.hold_until(s, 38.0, 195.0, 117.0) == (200.0, 197.0)


def test_a_schedule_takes_its_force_offs_from_the_plan_written_into_the_program():
    program = [(17.0, "GGrr", 5.0, 51.0), (3.0, "yyrr", 3.0, 3.0),
               (12.0, "rrGG", 5.0, 36.0), (3.0, "rryy", 3.0, 3.0)]
    j = network.Junction("C", "C", "0", 0.0, 0.0, [],
                         [network.Phase(0, [0], 17.0, 0.0), network.Phase(2, [1], 12.0, 0.0)])
    plan = {"cycle_s": 35.0, "offset_s": 4.0, "coordinated_phase": 1}
    s = coordination.schedule_of(j, plan, program)
    assert s is not None and s.phase == 2 and s.green_s == 12.0
    assert s.force_off == {0: (32.0, 5.0)}
    assert coordination.schedule_of(j, {**plan, "offset_s": None}, program) is None
