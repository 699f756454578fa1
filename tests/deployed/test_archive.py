"""The pure parts of tests/deployed/archive.py, and the named queries of queries/ run on DuckDB
over readings whose answers are known: a broken comparison or a wrong query would pass
anything on the emulator.

    python tests/deployed/test_archive.py        (needs duckdb: scripts/requirements-test.txt)
"""

from __future__ import annotations

import random
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive as ar  # noqa: E402

START_MS = 1_767_596_400_000  # 2026-01-05T07:00:00Z


def ts(ms: int) -> str:
    return ar.time.strftime("%Y-%m-%dT%H:%M:%SZ", ar.time.gmtime(ms // 1000))


def readings() -> list[dict]:
    """Five intersections, four lights, one reading a light a minute for 150 minutes (over two
    hours of the day and ten 15-minute windows), random counts and speeds (some with no
    vehicles); I-0002's light 1 green lamp breaks at minute 5, is repaired at minute 30 and
    breaks again at minute 90 for good."""
    rng = random.Random(7)
    out = []
    for minute in range(150):
        for x in range(1, 6):
            for light in range(4):
                green = "ok"
                if x == 2 and light == 1 and (5 <= minute < 30 or minute >= 90):
                    green = "broken"
                vehicles = rng.choice([0, rng.randint(1, 40)])
                out.append(
                    {
                        "intersection_id": f"I-{x:04d}",
                        "light": light,
                        "ts": ts(START_MS + minute * 60_000),
                        "vehicles": vehicles,
                        "mean_speed_kmh": round(rng.uniform(5, 70), 1) if vehicles else 0,
                        "lamps": {"red": "ok", "yellow": "ok", "green": green},
                    }
                )
    return out


def duckdb_readings(rs: list[dict]):
    """A DuckDB connection whose `readings` table has the Glue table's columns."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE readings (intersection_id VARCHAR, light INTEGER, ts TIMESTAMP, vehicles INTEGER, "
        "mean_speed_kmh DOUBLE, lamps STRUCT(red VARCHAR, yellow VARCHAR, green VARCHAR), lat DOUBLE, lon DOUBLE, dt VARCHAR)"
    )
    con.executemany(
        "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[r["intersection_id"], r["light"], r["ts"], r["vehicles"], r["mean_speed_kmh"], r["lamps"], None, None, r["ts"][:10]] for r in rs],
    )
    return con


def rows(con, name: str, params: list) -> list[dict]:
    """The named query with its parameters bound as archive.bind binds them, every value as
    Athena's results give it: text, or None."""
    cur = con.execute(ar.bind(ar.named_query_text(name), params))
    columns = [d[0] for d in cur.description]
    return [{c: None if v is None else str(v) for c, v in zip(columns, row)} for row in cur.fetchall()]


class Bind(unittest.TestCase):
    def test_each_placeholder_takes_its_parameter_as_a_literal_in_order(self):
        self.assertEqual(ar.bind("a = ? AND b BETWEEN ? AND ?", ["I-0001", "2026-01-05", 3]), "a = 'I-0001' AND b BETWEEN '2026-01-05' AND 3")

    def test_quotes_are_doubled_and_question_marks_in_comments_and_strings_stay(self):
        sql = "-- why? because\nSELECT '?', 'it''s ?' WHERE x = ?"
        self.assertEqual(ar.bind(sql, ["o'clock"]), "-- why? because\nSELECT '?', 'it''s ?' WHERE x = 'o''clock'")

    def test_too_few_or_too_many_parameters_are_refused(self):
        with self.assertRaises(ValueError):
            ar.bind("? ?", ["a"])
        with self.assertRaises(ValueError):
            ar.bind("?", ["a", "b"])
        with self.assertRaises(TypeError):
            ar.bind("?", [1.5])

    def test_athenas_and_duckdbs_timestamps_read_the_same(self):
        self.assertEqual(ar.timestamp_ms("2026-01-05 07:15:00.000"), START_MS + 15 * 60_000)
        self.assertEqual(ar.timestamp_ms("2026-01-05 07:15:00"), START_MS + 15 * 60_000)


class Expected(unittest.TestCase):
    def test_a_lamp_broken_twice_is_two_failures_the_last_still_open(self):
        got = ar.expected_failures(readings())
        self.assertEqual(got, [("I-0002", 1, "green", START_MS + 5 * 60_000, START_MS + 30 * 60_000), ("I-0002", 1, "green", START_MS + 90 * 60_000, None)])

    def test_the_top10_is_fastest_first_ties_by_id_and_skips_intersections_without_vehicles(self):
        rs = [
            {"intersection_id": x, "light": 0, "ts": ts(START_MS), "vehicles": v, "mean_speed_kmh": s, "lamps": {}}
            for x, v, s in [("I-0003", 1, 50.0), ("I-0001", 2, 50.0), ("I-0002", 0, 0.0), ("I-0004", 5, 60.0)]
        ]
        self.assertEqual([(p, x) for _, p, x, _, _ in ar.expected_top10_by_hour(rs)], [(1, "I-0004"), (2, "I-0001"), (3, "I-0003")])


class NamedQueriesOnDuckDB(unittest.TestCase):
    """Each named query of queries/ answers what archive.py's expected_* compute."""

    @classmethod
    def setUpClass(cls):
        cls.readings = readings()
        cls.con = duckdb_readings(cls.readings)

    def test_volumes_by_15_minutes(self):
        got = {
            ar.timestamp_ms(r["window_start"]): (int(r["readings"]), int(r["vehicles"]), ar.number(r["mean_speed_kmh"]))
            for r in rows(self.con, "volumes-by-15-minutes", ["I-0003", "2026-01-05", "2026-01-05"])
        }
        want = ar.expected_volumes(self.readings, "I-0003")
        self.assertEqual(len(want), 10)
        self.assertEqual(got.keys(), want.keys())
        for w in want:
            self.assertEqual(got[w][:2], want[w][:2])
            self.assertTrue(ar.close(got[w][2], want[w][2]), (got[w], want[w]))

    def test_a_range_of_days_without_readings_is_empty(self):
        self.assertEqual(rows(self.con, "volumes-by-15-minutes", ["I-0003", "2026-01-06", "2026-01-31"]), [])

    def test_top10_by_hour_of_day(self):
        got = [
            (int(r["hour_of_day"]), int(r["place"]), r["intersection_id"], ar.number(r["mean_speed_kmh"]), int(r["vehicles"]))
            for r in rows(self.con, "top10-by-hour-of-day", ["2026-01-01", "2026-01-31"])
        ]
        want = ar.expected_top10_by_hour(self.readings)
        self.assertEqual([g[:3] + g[4:] for g in got], [w[:3] + w[4:] for w in want])
        self.assertTrue(all(ar.close(g[3], w[3]) for g, w in zip(got, want)))

    def test_before_and_after(self):
        changed = START_MS + 47 * 60_000
        got = {
            (int(r["light"]), r["side"]): (int(r["readings"]), int(r["vehicles"]), ar.number(r["mean_speed_kmh"]), ar.timestamp_ms(r["first_reading"]), ar.timestamp_ms(r["last_reading"]))
            for r in rows(self.con, "before-and-after", [ar.athena_literal_time(changed), "I-0004", "2026-01-05", "2026-01-05"])
        }
        want = ar.expected_before_after(self.readings, changed, "I-0004")
        self.assertEqual(len(want), 8)
        self.assertEqual(got.keys(), want.keys())
        for k in want:
            self.assertEqual((got[k][:2], got[k][3:]), (want[k][:2], want[k][3:]))
            self.assertTrue(ar.close(got[k][2], want[k][2]))

    def test_lamp_failures_and_how_long_each_lasted(self):
        out = rows(self.con, "lamp-failures", ["2026-01-05", "2026-01-05"])
        got = [(r["intersection_id"], int(r["light"]), r["lamp"], ar.timestamp_ms(r["broken_at"]), None if r["working_at"] is None else ar.timestamp_ms(r["working_at"])) for r in out]
        self.assertEqual(got, ar.expected_failures(self.readings))
        self.assertEqual([r["broken_seconds"] for r in out], ["1500", None])


if __name__ == "__main__":
    unittest.main()
