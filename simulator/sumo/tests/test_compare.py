"""The paired comparison's arithmetic, and the actuated control's bounds."""

from __future__ import annotations

import math

import pytest

from traffic_sumo import bridge, compare


def test_the_interval_is_students_t_on_the_paired_differences():
    mean, lo, hi = compare.t_interval([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2 df) × sd / √n
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert compare.t_interval([5.0]) == (5.0, None, None)


def test_each_control_is_compared_with_actuated_seed_by_seed():
    def r(seed, d):
        return {"seed": seed, "mean_delay_s": d, "p95_delay_s": 2 * d, "vehicles_arrived": 10,
                "unfinished": 0}
    runs = {"actuated": [r(1, 40.0), r(2, 50.0)], "max-pressure": [r(1, 30.0), r(2, 41.0)]}
    s = compare.summarise("net", ["actuated", "max-pressure"], runs)
    assert s["seeds"] == [1, 2]
    assert s["controls"]["actuated"]["mean_delay_s"] == 45.0
    assert "vs_reference_s" not in s["controls"]["actuated"]
    d = s["controls"]["max-pressure"]["vs_reference_s"]
    assert d["mean"] == -9.5 and d["low"] < -9.5 < d["high"]
    assert "| max-pressure | 35.5 s |" in compare.paired_table(s)


def test_actuated_keeps_the_networks_bounds_and_fills_missing_ones_around_the_fixed_green():
    assert bridge.actuated_bounds(33, 5, 50) == (5, 50)
    assert bridge.actuated_bounds(42, -1, -1) == (5, 50)
    assert bridge.actuated_bounds(60, None, None) == (5, 60)
    assert bridge.actuated_bounds(3, None, None) == (3, 50)


def test_a_paired_comparison_passes_the_callers_engine_variables_and_the_rows_do_not(
        monkeypatch):
    from traffic_sumo import compare

    monkeypatch.setenv("WEBSTER_MIN_CYCLE_S", "20")
    monkeypatch.setenv("PLAN_COORDINATION", "off")
    paired = compare.child_env({}, keep_caller=True)
    assert paired["WEBSTER_MIN_CYCLE_S"] == "20" and paired["PLAN_COORDINATION"] == "off"
    row = compare.child_env({"TRAFFIC_WINDOWS": "5m"}, keep_caller=False)
    assert "WEBSTER_MIN_CYCLE_S" not in row and row["TRAFFIC_WINDOWS"] == "5m"
    assert row["PLAN_COORDINATION"] == "off"
