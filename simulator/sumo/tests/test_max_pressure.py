"""The max-pressure reference controller: every 10 s it gives green to the program's green phase
whose movements have the longest queues in front of the stop line less those beyond it, through
the network's yellow, after at least 10 s of green."""

from __future__ import annotations

import pytest

from traffic_sumo import bridge, maxpressure



def test_the_phase_with_most_pressure_wins_and_a_tie_keeps_the_current_one():
    assert maxpressure.best_phase({0: 3.0, 2: 7.0, 4: 1.0}, current=0) == 2
    assert maxpressure.best_phase({0: 7.0, 2: 7.0}, current=2) == 2
    assert maxpressure.best_phase({0: 7.0, 2: 7.0, 4: 9.0}, current=0) == 4
    assert maxpressure.best_phase({0: 5.0, 2: 5.0}, current=4) == 0


def test_the_change_runs_the_networks_yellow_and_all_red_for_the_links_that_lose_green():
    stages = maxpressure.transition("GGgrrs", "rrGGGs", yellow_s=3.0, red_s=2.0)
    # links 0-1 lose green (yellow, then red); link 2 keeps its (permissive) green; link 5
    # keeps its 's'
    assert stages == [("yygrrs", 3.0), ("rrgrrs", 2.0)]
    assert maxpressure.transition("GGrr", "rrGG", yellow_s=3.0, red_s=0.0) == [("yyrr", 3.0)]


def test_green_phases_carry_the_clearance_that_follows_them():
    program = [(30, "GGrr"), (3, "yyrr"), (2, "rrrr"), (30, "rrGG"), (4, "rryy")]
    plan = maxpressure.green_phases(program)
    assert [(g.index, g.state, g.yellow_s, g.red_s) for g in plan] == [
        (0, "GGrr", 3.0, 2.0), (3, "rrGG", 4.0, 0.0)]


def test_a_sides_queue_runs_up_its_street_within_the_reach():
    length = {"in": 1.0, "a": 44.0, "b": 300.0, "c": 10.0}
    before = {"in": ["a"], "a": ["b"], "b": ["c"]}
    # the 1 m lane and the 44 m one before it; the 300 m lane reaches past 200 m: the last one
    assert maxpressure.reach("in", length, before) == ["a", "b", "in"]
    assert maxpressure.reach("b", length, before) == ["b"]


class _Lane:
    def __init__(self, name, length):
        self.name, self.length, self.out = name, length, []

    def getID(self):
        return self.name

    def getLength(self):
        return self.length

    def getOutgoing(self):
        return [type("C", (), {"getToLane": lambda _, to=to: to})() for to in self.out]


def test_a_street_stops_where_lanes_branch_or_merge():
    lanes = {n: _Lane(n, 50.0) for n in ("a", "b", "in", "x", "out", "y", "z")}
    lanes["a"].out = [lanes["in"]]                 # a leads only to in: in's street
    lanes["b"].out = [lanes["in"], lanes["x"]]     # b branches: not in's street
    lanes["out"].out = [lanes["y"]]                # y comes only from out: out's street
    lanes["x"].out = [lanes["z"]]
    lanes["out"].out.append(lanes["z"])            # z also comes from x: not out's street
    net = type("N", (), {"getEdges": lambda _: [
        type("E", (), {"getLanes": lambda _, ln=ln: [ln]})() for ln in lanes.values()]})()
    length, before, after = maxpressure.lane_graph(net)
    assert before["in"] == ["a"]
    assert after["out"] == ["y"]


# Only east-west traffic while the program starts on its north-south green.
EAST_WEST = """<routes>
  <flow id="ew" begin="0" end="90" vehsPerHour="900" from="EC" to="CW"/>
  <flow id="we" begin="0" end="90" vehsPerHour="900" from="WC" to="CE"/>
</routes>"""


def test_on_a_crossing_the_loaded_approaches_get_green_after_the_minimum_green(crossing, tmp_path):
    routes = tmp_path / "ew.rou.xml"
    routes.write_text(EAST_WEST)
    seen: list[tuple[str, dict]] = []
    result = bridge.run(bridge.Options(
        net=crossing, routes=str(routes), control="max-pressure", duration_s=90,
        progress_every_s=0, workdir=str(tmp_path / "w"),
        observer=lambda kind, what: seen.append((kind, what))))
    decisions = [d for k, d in seen if k == "decision"]
    greens = [g for k, g in seen if k == "green"]
    # decisions every 10 s from the start; north-south keeps its green until a queue stands on
    # east-west
    assert [d["time"] for d in decisions[:2]] == [maxpressure.MIN_GREEN_S,
                                                  maxpressure.MIN_GREEN_S + maxpressure.PERIOD_S]
    k = next(i for i, d in enumerate(decisions) if d["phase"] != 0)
    assert all(d["pressures"][2] == d["pressures"][0] == 0 for d in decisions[:k])
    first = decisions[k]
    assert first["pressures"][2] > first["pressures"][0] == 0
    assert first["phase"] == 2
    # the north-south green's own yellow (3 s), then the east-west green as the program has it
    assert greens[0]["time"] == first["time"] + 3
    assert greens[0]["state"] == greens[0]["program_state"]
    assert greens[0]["phase"] == 2
    # nothing comes from the north or the south: east-west keeps the green, deciding every 10 s
    assert all(d["phase"] == 2 for d in decisions[k + 1:])
    assert [d["time"] for d in decisions[k + 1:k + 3]] == [greens[0]["time"] + 10,
                                                           greens[0]["time"] + 20]
    assert result["vehicles_arrived"] > 0
