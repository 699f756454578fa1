"""The pure parts of tests/deployed/e2e.py: the city it deploys, the windows it waits for, and
the comparison with `traffic replay` (which must find a difference where there is one).

    python tests/deployed/test_e2e.py          (plain unittest; scripts/test.d/deployed.sh runs it)
"""

from __future__ import annotations

import sys
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e  # noqa: E402


def reading(x: str, ts: str) -> dict:
    return {"intersection_id": x, "light": 0, "ts": ts, "vehicles": 3, "mean_speed_kmh": 40.0}


def window(length="15m", start="2026-01-05T07:00:00Z", **kw) -> dict:
    w = {
        "length": length,
        "start": start,
        "end": "2026-01-05T07:15:00Z",
        "closed": True,
        "readings": 48,
        "top10": [{"intersection_id": "I-0001", "mean_speed_kmh": 41.25}],
        "global_median_vehicles": 5.0,
        "above_median": [],
    }
    w.update(kw)
    return w


class TheAboveMedianList(unittest.TestCase):
    def test_is_read_from_its_postcard_bytes_as_the_adapter_stores_it(self):
        import struct

        def entry(ident: str, median: float) -> bytes:
            return bytes([len(ident)]) + ident.encode() + struct.pack("<d", median)

        b = bytes([2]) + entry("I-0001", 5.5) + entry("I-0002", 7.0)
        self.assertEqual(
            e2e.decode_above(b),
            [
                {"intersection_id": "I-0001", "median_vehicles": 5.5},
                {"intersection_id": "I-0002", "median_vehicles": 7.0},
            ],
        )

    def test_counts_past_127_take_two_varint_bytes(self):
        import struct

        one = bytes([1]) + b"I" + struct.pack("<d", 1.0)  # an id of one character
        b = bytes([0xC8, 0x01]) + one * 200
        self.assertEqual(len(e2e.decode_above(b)), 200)


class TheDeployedCity(unittest.TestCase):
    def test_the_city_has_distinct_ids_four_lights_and_two_phases_each(self):
        c = e2e.city(12)["intersections"]
        self.assertEqual(len({x["id"] for x in c}), 12)
        self.assertEqual(c[1]["id"], "I-0002")
        for x in c:
            self.assertEqual([l["light"] for l in x["lights"]], [0, 1, 2, 3])
            self.assertEqual(sorted(k for p in x["phases"] for k in p["lights"]), [0, 1, 2, 3])

    def test_one_more_intersection_keeps_the_others_as_they_were(self):
        self.assertEqual(e2e.city(13)["intersections"][:12], e2e.city(12)["intersections"])


class WindowsThatMustClose(unittest.TestCase):
    def test_a_window_closes_once_every_intersection_is_past_its_end_plus_the_lateness(self):
        rs = [reading(x, f"2026-01-05T07:{m:02}:00Z") for m in range(0, 18) for x in ("A", "B")]
        # The newest reading is 07:17, the watermark 07:15: [07:00, 07:15) is closed.
        self.assertEqual(e2e.surely_closed(rs, "15m,1h", "2m"), {("15m", "2026-01-05T07:00:00Z")})
        self.assertEqual(e2e.surely_closed(rs[:-2], "15m,1h", "2m"), set())

    def test_the_intersection_furthest_behind_holds_the_windows_back(self):
        rs = [reading("A", f"2026-01-05T07:{m:02}:00Z") for m in range(0, 40)]
        rs.append(reading("B", "2026-01-05T07:10:00Z"))
        self.assertEqual(e2e.surely_closed(rs, "15m", "2m"), set())

    def test_durations_read_like_the_engines(self):
        self.assertEqual(
            [e2e.duration_ms(d) for d in ("15m", "1h", "24h", "90s", "250ms", "1d")],
            [900_000, 3_600_000, 86_400_000, 90_000, 250, 86_400_000],
        )
        self.assertEqual(e2e.event_ms("2026-01-05T07:00:00Z"), e2e.START_MS)
        self.assertEqual(e2e.rfc3339(e2e.START_MS), e2e.START)


class TheComparisonWithTheReplay(unittest.TestCase):
    def test_equal_windows_compare_equal_whatever_the_key_order_and_number_types(self):
        stack = e2e.plain({k: (Decimal(str(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in window().items()})
        self.assertEqual(e2e.compare_windows([stack], [dict(reversed(list(window().items())))]), [])

    def test_floats_one_ulp_apart_are_equal(self):
        a = window(global_median_vehicles=0.1 + 0.2)
        b = window(global_median_vehicles=0.3)
        self.assertEqual(e2e.compare_windows([a], [b]), [])

    def test_a_different_count_speed_entry_or_field_is_reported(self):
        self.assertTrue(e2e.compare_windows([window(readings=47)], [window()]))
        self.assertTrue(e2e.compare_windows([window(global_median_vehicles=5.000001)], [window()]))
        self.assertTrue(e2e.compare_windows([window(top10=[])], [window()]))
        extra = window()
        extra["key"] = None
        self.assertTrue(e2e.compare_windows([extra], [window()]))
        self.assertTrue(e2e.compare_windows([window(closed=False)], [window()]))

    def test_a_window_closed_in_the_stack_but_absent_from_the_replay_is_reported(self):
        diffs = e2e.compare_windows([window(start="2026-01-05T08:00:00Z")], [window()])
        self.assertEqual(len(diffs), 1)
        self.assertIn("absent from the replay", diffs[0])

    def test_true_and_one_are_not_the_same(self):
        self.assertTrue(e2e.differences(True, 1))
        self.assertEqual(e2e.plain(Decimal("3")), 3)
        self.assertEqual(e2e.plain(Decimal("2.5")), 2.5)


class TheReport(unittest.TestCase):
    def test_the_report_starts_with_the_issues_keys_in_order_and_keeps_the_rest(self):
        out = e2e.report({"sns_messages": 1, "extra": "x", "stack": "s"})
        self.assertEqual(list(out)[: len(e2e.REPORT_KEYS)], list(e2e.REPORT_KEYS))
        self.assertEqual((out["stack"], out["sns_messages"], out["readings"], out["extra"]), ("s", 1, None, "x"))


class TheOperationsReadBack(unittest.TestCase):
    def test_the_freshness_span_is_twice_the_shortest_window_plus_the_merge_period(self):
        self.assertEqual(e2e.freshness_minutes("15m,1h,24h", "rate(5 minutes)"), 35)
        self.assertEqual(e2e.freshness_minutes("1h,15m", "rate(1 minute)"), 31)
        self.assertEqual(e2e.freshness_minutes("90s", "rate(1 minute)"), 4)
        with self.assertRaises(ValueError):
            e2e.freshness_minutes("15m", "cron(0/5 * * * ? *)")

    def test_the_dashboards_alarm_widget_is_read_by_name(self):
        body = '{"widgets": [{"type": "metric", "properties": {}}, {"type": "alarm", "properties": {"alarms": ["arn:aws:cloudwatch:r:1:alarm:s-a", "arn:aws:cloudwatch:r:1:alarm:s-b"]}}]}'
        self.assertEqual(e2e.alarm_widget_names(body), ["s-a", "s-b"])


if __name__ == "__main__":
    unittest.main()
