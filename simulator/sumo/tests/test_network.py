"""The junction → intersection mapping (lights, phases, saturation) on tiny networks."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from traffic_sumo import network
from traffic_sumo.network import SATURATION_PER_LANE_VEH_H as PER_LANE


def test_a_crossing_maps_to_one_intersection_with_a_light_per_approach_in_compass_order(crossing):
    [j] = network.read_network(crossing)
    assert j.intersection_id == "C" and j.tls_id == "C"
    assert [lt.edges for lt in j.lights] == [["NC"], ["EC"], ["SC"], ["WC"]]
    assert [lt.index for lt in j.lights] == [0, 1, 2, 3]


def test_saturation_is_the_approach_lanes_times_the_rate_per_lane(crossing):
    [j] = network.read_network(crossing)
    assert [lt.saturation_veh_h for lt in j.lights] == [2 * PER_LANE, PER_LANE,
                                                        2 * PER_LANE, PER_LANE]
    assert [len(lt.lanes) for lt in j.lights] == [2, 1, 2, 1]


def test_phases_are_the_programs_green_phases_with_the_lights_they_serve(crossing):
    [j] = network.read_network(crossing)
    assert [(p.program_index, p.lights, p.green_s) for p in j.phases] == [
        (0, [0, 2], 42.0), (2, [1, 3], 42.0)]
    # red: the 90 s cycle minus the phase's green and its 3 s yellow.
    assert [p.red_s for p in j.phases] == [45.0, 45.0]


def test_a_left_turn_phase_that_is_no_lights_own_is_left_out_and_all_red_counts_as_clearance(
        left_turn_crossing):
    [j] = network.read_network(left_turn_crossing)
    assert [(p.program_index, p.lights) for p in j.phases] == [(0, [0, 2]), (5, [1, 3])]
    # cycle 79 s: phase 0 is followed by 3 s yellow and 2 s all-red, phase 5 by 3 s yellow.
    assert [p.red_s for p in j.phases] == [79 - 30 - 5, 79 - 30 - 3]


def test_the_city_file_is_valid_by_the_contract_and_keeps_what_the_bridge_needs(crossing):
    city = network.city(network.read_network(crossing))
    [x] = city["intersections"]
    assert set(x) >= {"id", "lat", "lon", "lights", "phases", "sumo_tls", "sumo_program"}
    assert -90 <= x["lat"] <= 90 and -180 <= x["lon"] <= 180
    lights = {lt["light"] for lt in x["lights"]}
    in_phases = [lt for p in x["phases"] for lt in p["lights"]]
    assert len(in_phases) == len(set(in_phases)) and set(in_phases) <= lights
    assert all(p["green_s"] > 0 and p["red_s"] >= 0 for p in x["phases"])
    json.dumps(city)


def test_ids_keep_the_contracts_characters_and_stay_unique():
    taken = {"a_b"}
    assert network.contract_id("a#b", taken) == "a_b_1"
    assert network.contract_id("cluster_1_2", set()) == "cluster_1_2"
    assert len(network.contract_id("x" * 100, set())) == 64


def _lane(edge: str, lane: str, from_xy: tuple[float, float]):
    """A stand-in for a sumolib lane arriving at (0, 0) from `from_xy`."""
    return SimpleNamespace(getEdge=lambda: SimpleNamespace(getID=lambda: edge),
                           getID=lambda: lane, getShape=lambda: [from_xy, (0.0, 0.0)])


def test_more_than_four_approaches_are_grouped_by_the_quadrant_they_come_from():
    arms = {"n": (0, 100), "ne": (30, 100), "e": (100, 0), "s": (0, -100), "w": (-100, 0),
            "nw": (-30, 100)}
    conns = [(_lane(e, f"{e}_0", xy), None, i) for i, (e, xy) in enumerate(arms.items())]
    lights = network._group_lights(conns)
    assert [sorted(lt.edges) for lt in lights] == [["n", "ne", "nw"], ["e"], ["s"], ["w"]]
    assert lights[0].saturation_veh_h == 3 * PER_LANE


def test_the_command_line_prints_the_city_file(crossing):
    out = subprocess.run([sys.executable, "-m", "traffic_sumo", "city", crossing],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["intersections"][0]["id"] == "C"
