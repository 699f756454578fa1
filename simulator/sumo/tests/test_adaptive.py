"""The ``adaptive`` control: plans from the system become the bounds of SUMO's actuated
program at the junction's next cycle, the last plan stays when the system falls silent, and a
few simulated minutes through ``traffic sumo``."""

from __future__ import annotations

from traffic_sumo import bridge, loop, network
from test_closed_loop import ROUTES, TRAFFIC, loop_env, run  # noqa: F401 (a fixture)


def plan_answer(now: str, bounds: list[tuple[float, float, float]]) -> dict:
    """An answer of the system with one plan for the crossing ``C``: per contract phase
    ``(min, green, max)``."""
    phases = [{"min_green_s": lo, "green_s": g, "max_green_s": hi} for lo, g, hi in bounds]
    return {"now": now, "merged": True, "alarms": [], "timings": [{
        "intersection_id": "C", "retimed_from": f"1m@{now}", "cycle_s": 0.0,
        "phases": [{"lights": [], "green_s": g, "red_s": 0.0} for _, g, _ in bounds],
        "plan": {"cycle_s": 0.0, "offset_s": None, "phases": phases},
    }]}


class ScriptedSystem:
    """Stands in for ``traffic sumo``: answers the ticks of :attr:`script` with its plans
    and every other tick with nothing; records the ticks it was asked."""

    script: dict[str, list[tuple[float, float, float]]] = {}
    asked: list[str] = []

    def __init__(self, argv, env):
        ScriptedSystem.asked = []

    def exchange(self, now: str, readings: list[dict]) -> dict:
        ScriptedSystem.asked.append(now)
        if now in self.script:
            return plan_answer(now, self.script[now])
        return {"now": now, "merged": False, "timings": [], "alarms": []}

    def close(self) -> int:
        return 0


def scripted_run(crossing, tmp_path, monkeypatch, script, **kw):
    """`crossing` under ``adaptive`` for 6 simulated minutes with :class:`ScriptedSystem`;
    returns the applied plans and the program's phases as ``(index, start, end)``."""
    monkeypatch.setattr(loop, "System", ScriptedSystem)
    ScriptedSystem.script = script
    routes = tmp_path / "r.rou.xml"
    routes.write_text(ROUTES)
    seen: list[tuple[str, dict]] = []
    spans: list[list] = []
    step = bridge.AdaptiveLoop.step

    def watching(self, traci, now):
        step(self, traci, now)
        phase = traci.trafficlight.getPhase("C")
        if not spans or spans[-1][0] != phase:
            if spans:
                spans[-1][2] = now
            spans.append([phase, now, None])

    monkeypatch.setattr(bridge.AdaptiveLoop, "step", watching)
    opts = bridge.Options(net=crossing, routes=str(routes), control="adaptive", duration_s=360,
                          traffic="unused", progress_every_s=0, workdir=str(tmp_path / "w"),
                          observer=lambda kind, what: seen.append((kind, what)), **kw)
    result = bridge.run(opts)
    applied = [w for k, w in seen if k == "applied"]
    return result, applied, [tuple(s) for s in spans if s[2] is not None]


def green_indices(crossing) -> list[int]:
    """The program index of each contract phase of the crossing."""
    import sumolib

    (j,) = network.map_network(sumolib.net.readNet(crossing, withPrograms=True))
    return [ph.program_index for ph in j.phases]


# min = max: SUMO's actuated program then runs the green exactly that long.
PLAN = [(9.0, 9.0, 9.0), (17.0, 17.0, 17.0)]


def test_a_plan_arriving_mid_phase_takes_effect_at_the_next_cycle_start(
        crossing, tmp_path, monkeypatch):
    result, applied, spans = scripted_run(
        crossing, tmp_path, monkeypatch, {bridge.iso(60): PLAN})
    greens = green_indices(crossing)
    assert len(applied) == 1 and result["retimings"] == 1
    at = applied[0]["time"]
    # the plan is written into the program as the bounds of its green phases
    program = applied[0]["phases"]
    for (lo, g, hi), i in zip(PLAN, greens):
        assert program[i][0] == g and program[i][2] == lo and program[i][3] == hi
    # it arrived at 60 s in the middle of a phase, and is written when the program enters
    # its last phase (the yellow before its first), not before
    last = len(program) - 1
    assert at > 60
    assert (last, at) in [(p, start) for p, start, _ in spans]
    # a phase running at 60 s is not cut: no phase before the write has the plan's length
    before = [(p, end - start) for p, start, end in spans if end <= at and start > 0]
    assert before and all(d not in (9.0, 17.0) for p, d in before if p in greens), before
    # every green from the next cycle on lasts the plan's green
    after = [(p, end - start) for p, start, end in spans if start > at]
    assert after and after[0][0] == 0
    for p, d in after:
        if p in greens:
            assert d == PLAN[greens.index(p)][1], (p, d, spans)


def test_the_last_plan_stays_when_the_system_falls_silent(crossing, tmp_path, monkeypatch):
    later = [(30.0, 30.0, 30.0), (30.0, 30.0, 30.0)]
    result, applied, spans = scripted_run(
        crossing, tmp_path, monkeypatch, {bridge.iso(60): PLAN, bridge.iso(180): later},
        silent_after_s=90)
    greens = green_indices(crossing)
    # asked at 60 s only: silent from 90 s on, so the plan for 180 s never comes
    assert ScriptedSystem.asked == [bridge.iso(60)]
    assert len(applied) == 1
    after = [(p, end - start) for p, start, end in spans if start > applied[0]["time"]]
    assert sum(1 for p, _ in after if p == greens[0]) >= 5, "cycles until the end"
    for p, d in after:
        if p in greens:
            assert d == PLAN[greens.index(p)][1]


def test_a_few_minutes_of_adaptive_through_the_system(crossing, tmp_path, loop_env):
    result, seen = run(crossing, tmp_path, control="adaptive")
    answers = [a for k, a in seen if k == "answer"]
    assert len(answers) == 4 and answers[-1]["rejected"] == 0
    applied = [a for k, a in seen if k == "applied"]
    assert applied and result["retimings"] == len(applied)
    # the program after the first plan: the plan's bounds on its green phases (whole
    # seconds), SUMO's actuated type, yellows unchanged
    first = next(i for i, (k, _) in enumerate(seen) if k == "applied")
    latest = [t for k, a in seen[:first] if k == "answer" for t in a["timings"]][-1]
    greens = green_indices(crossing)
    program = applied[0]["phases"]
    for ph, i in zip(latest["plan"]["phases"], greens):
        assert program[i][2] == max(1.0, round(ph["min_green_s"]))
        assert program[i][3] == max(program[i][2], round(ph["max_green_s"]))
        assert program[i][2] <= program[i][0] <= program[i][3]
    assert program[1][0] == program[3][0] == 3.0
    assert result["vehicles_inserted"] > 0

    assert "adaptive" in bridge.BENCHMARK_CONTROLS


def test_a_green_phase_outside_the_plan_runs_only_on_demand(
        left_turn_crossing, tmp_path, monkeypatch):
    # the protected left turn (program phase 3) is no light's own: no contract phase
    assert green_indices(left_turn_crossing) == [0, 5]
    _, applied, _ = scripted_run(left_turn_crossing, tmp_path, monkeypatch,
                                 {bridge.iso(60): PLAN})
    program = applied[0]["phases"]
    assert program[0][2:] == (9.0, 9.0) and program[5][2:] == (17.0, 17.0)
    # its minimum drops to the shortest, its maximum stays actuated's
    assert program[3][2] == bridge.UNPLANNED_MIN_DUR_S
    assert program[3][3] == bridge.ACTUATED_MAX_DUR_S
    # yellows and the all-red keep theirs
    assert [program[i][0] for i in (1, 2, 4, 6)] == [3.0, 2.0, 3.0, 3.0]
