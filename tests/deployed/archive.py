"""The archive of a deployed stack, read back through Athena: what tests/deployed/e2e.py checks
after its run, and the expected answers computed from the readings it recorded.

Firehose writes every record of the readings stream to the archive bucket as Parquet, and the
merge each closed window's outputs (`windows`, `window_intersections`, `window_rankings`); the
named queries (queries/*.sql, the template's AWS::Athena::NamedQuery resources) run in the
stack's workgroup. Each expected answer here is computed from the recorded readings in Python,
apart from the SQL, and the 15-minute volumes are compared with the results the stack closed
as well. The pure parts are tested by tests/deployed/test_archive.py.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "queries"
#: The merge's output tables (adapters/tables/src/lib.rs), each under its folder of the bucket.
OUTPUT_TABLES = ("windows", "window_intersections", "window_rankings")
FIFTEEN_MIN_MS = 15 * 60_000


def named_query_text(name: str) -> str:
    return (QUERIES / f"{name}.sql").read_text()


def sql_literal(value: Any) -> str:
    """A parameter as the SQL literal Athena's ExecutionParameters take."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a parameter is a string or an integer, not {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def bind(sql: str, params: list[Any]) -> str:
    """`sql` with each `?` placeholder (outside comments and string literals) replaced, in order,
    by its parameter's literal: what Athena does with ExecutionParameters, for emulators that
    take none."""
    out, i, used = [], 0, 0
    while i < len(sql):
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif c == "'":
            end = i + 1
            while end < len(sql):
                if sql[end] == "'" and sql[end + 1 : end + 2] == "'":
                    end += 2
                elif sql[end] == "'":
                    break
                else:
                    end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif c == "?":
            if used == len(params):
                raise ValueError(f"more placeholders than the {len(params)} parameters given")
            out.append(sql_literal(params[used]))
            used += 1
            i += 1
        else:
            out.append(c)
            i += 1
    if used != len(params):
        raise ValueError(f"{len(params)} parameters for {used} placeholders")
    return "".join(out)


def event_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def timestamp_ms(text: str) -> int:
    """A timestamp as Athena (2026-01-05 07:00:00.000) or DuckDB (2026-01-05 07:00:00) prints
    it, UTC, in epoch milliseconds."""
    return int(datetime.fromisoformat(text.strip()[:19]).replace(tzinfo=timezone.utc).timestamp() * 1000)


def athena_literal_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000))


def weighted_speed(rs: list[dict]) -> float | None:
    vehicles = sum(r["vehicles"] for r in rs)
    return sum(r["vehicles"] * r["mean_speed_kmh"] for r in rs) / vehicles if vehicles else None


# --- What each named query must answer, from the recorded readings ---------------------------------


def expected_volumes(readings: list[dict], intersection: str) -> dict[int, tuple[int, int, float | None]]:
    """volumes-by-15-minutes: window start (ms) -> (readings, vehicles, mean speed)."""
    by: dict[int, list[dict]] = {}
    for r in readings:
        if r["intersection_id"] == intersection:
            t = event_ms(r["ts"])
            by.setdefault(t - t % FIFTEEN_MIN_MS, []).append(r)
    return {w: (len(rs), sum(r["vehicles"] for r in rs), weighted_speed(rs)) for w, rs in by.items()}


def expected_top10_by_hour(readings: list[dict]) -> list[tuple[int, int, str, float, int]]:
    """top10-by-hour-of-day: (hour, place, intersection, mean speed, vehicles)."""
    by: dict[tuple[int, str], list[dict]] = {}
    for r in readings:
        hour = time.gmtime(event_ms(r["ts"]) // 1000).tm_hour
        by.setdefault((hour, r["intersection_id"]), []).append(r)
    out = []
    for hour in sorted({h for h, _ in by}):
        rows = [
            (x, weighted_speed(rs), sum(r["vehicles"] for r in rs))
            for (h, x), rs in by.items()
            if h == hour and sum(r["vehicles"] for r in rs) > 0
        ]
        rows.sort(key=lambda row: (-row[1], row[0]))
        out += [(hour, i + 1, x, speed, v) for i, (x, speed, v) in enumerate(rows[:10])]
    return out


def expected_before_after(readings: list[dict], changed_ms: int, intersection: str) -> dict[tuple[int, str], tuple]:
    """before-and-after: (light, side) -> (readings, vehicles, mean speed, first ms, last ms)."""
    by: dict[tuple[int, str], list[dict]] = {}
    for r in readings:
        if r["intersection_id"] == intersection:
            side = "before" if event_ms(r["ts"]) < changed_ms else "after"
            by.setdefault((r["light"], side), []).append(r)
    return {
        k: (len(rs), sum(r["vehicles"] for r in rs), weighted_speed(rs), min(event_ms(r["ts"]) for r in rs), max(event_ms(r["ts"]) for r in rs))
        for k, rs in by.items()
    }


def expected_failures(readings: list[dict]) -> list[tuple[str, int, str, int, int | None]]:
    """lamp-failures: (intersection, light, lamp, broken at ms, working again at ms or None)."""
    series: dict[tuple[str, int, str], list[tuple[int, str]]] = {}
    for r in readings:
        for lamp in ("red", "yellow", "green"):
            series.setdefault((r["intersection_id"], r["light"], lamp), []).append((event_ms(r["ts"]), r["lamps"][lamp]))
    out = []
    for key in sorted(series):
        previous, open_at = None, None
        for t, state in sorted(series[key]):
            if state == "broken" and previous != "broken":
                if open_at is not None:
                    out.append((*key, open_at, None))
                open_at = t
            elif state == "ok" and previous == "broken" and open_at is not None:
                out.append((*key, open_at, t))
                open_at = None
            previous = state
        if open_at is not None:
            out.append((*key, open_at, None))
    return out


# --- Athena -----------------------------------------------------------------------------------------


def run_query(athena: Any, workgroup: str, database: str, sql: str, timeout_s: float = 120) -> list[dict[str, str | None]]:
    """Runs `sql` in the workgroup and returns its rows as {column: text or None}."""
    qid = athena.start_query_execution(
        QueryString=sql, WorkGroup=workgroup, QueryExecutionContext={"Database": database}
    )["QueryExecutionId"]
    deadline = time.time() + timeout_s
    while True:
        status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        if time.time() > deadline:
            raise RuntimeError(f"Athena query {qid} still {status['State']} after {timeout_s} s")
        time.sleep(0.5)
    if status["State"] != "SUCCEEDED":
        raise RuntimeError(f"Athena query {qid} {status['State']}: {status.get('StateChangeReason')}")
    rows, columns, token, first = [], None, None, True
    while True:
        kw = {"QueryExecutionId": qid, "MaxResults": 1000}
        if token:
            kw["NextToken"] = token
        page = athena.get_query_results(**kw)
        if columns is None:
            columns = [c["Name"] for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
        for row in page["ResultSet"]["Rows"]:
            values = [d.get("VarCharValue") for d in row["Data"]]
            if first and values == columns:  # Athena's header row
                first = False
                continue
            first = False
            rows.append(dict(zip(columns, values)))
        token = page.get("NextToken")
        if not token:
            return rows


def named_queries(athena: Any, workgroup: str) -> dict[str, str]:
    """The workgroup's named queries: name -> SQL."""
    ids, token = [], None
    while True:
        page = athena.list_named_queries(WorkGroup=workgroup, **({"NextToken": token} if token else {}))
        ids += page["NamedQueryIds"]
        token = page.get("NextToken")
        if not token:
            break
    out = {}
    for qid in ids:
        q = athena.get_named_query(NamedQueryId=qid)["NamedQuery"]
        out[q["Name"]] = q["QueryString"]
    return out


def log_side_by_side(name: str, values: list, athena: list[dict], local: list[dict]) -> None:
    """The first rows of both answers on stderr, for the record."""
    import sys

    print(f"deployed-e2e: {name} {values}: {len(athena)} rows from Athena, {len(local)} from traffic query", file=sys.stderr)
    for a, b in list(zip(athena, local))[:4]:
        print(f"    athena         {a}\n    traffic query  {b}", file=sys.stderr)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def number(text: str | None) -> float | None:
    return None if text is None or text == "" else float(text)


def same_rows(athena: list[dict[str, str | None]], local: list[dict[str, Any]]) -> bool:
    """Athena's rows (text) and `traffic query --format json`'s (typed) hold the same values:
    timestamps to the millisecond, numbers to 1e-9 relative, NULL as NULL."""
    if len(athena) != len(local):
        return False
    for a, b in zip(athena, local):
        if set(a) != set(b):
            return False
        for k, text in a.items():
            value = b[k]
            if text is None or value is None:
                if not (text is None and value is None):
                    return False
            elif isinstance(value, bool) or isinstance(value, str):
                if str(value) != text and not (len(text) >= 19 and timestamp_ms(text) == timestamp_ms(str(value))):
                    return False
            elif not close(float(text), float(value)):
                return False
    return True


class ArchiveCheck:
    """The checks, given the stack's Athena client and names, the recorded readings, the
    closed windows the stack served, and the lamp broken on purpose."""

    def __init__(self, athena: Any, workgroup: str, database: str, readings: list[dict], check: Callable[[bool, str], None]):
        self.athena, self.workgroup, self.database = athena, workgroup, database
        self.readings = readings
        self.check = check
        days = sorted({r["ts"][:10] for r in readings})
        self.first_day, self.last_day = days[0], days[-1]
        self.out: dict[str, Any] = {}

    def query(self, sql: str) -> list[dict[str, str | None]]:
        return run_query(self.athena, self.workgroup, self.database, sql)

    def wait_for_every_reading(self, wait_s: float) -> None:
        """Polls (bounded) until the archive holds as many readings as were recorded, then
        compares them one by one: (intersection, light, event time, vehicles)."""
        sql = bind(
            "SELECT intersection_id, light, ts, vehicles FROM readings WHERE dt BETWEEN ? AND ?",
            [self.first_day, self.last_day],
        )
        deadline = time.time() + wait_s
        while True:
            rows = self.query(sql)
            if len(rows) >= len(self.readings) or time.time() > deadline:
                break
            time.sleep(5)
        got = sorted((r["intersection_id"], int(r["light"]), timestamp_ms(r["ts"]), int(r["vehicles"])) for r in rows)
        want = sorted((r["intersection_id"], r["light"], event_ms(r["ts"]), r["vehicles"]) for r in self.readings)
        self.out["archived_readings"] = len(rows)
        self.check(got == want, f"the archive holds {len(rows)} readings, {len(want)} recorded; equal: {got == want}")

    def named_queries_exist(self) -> dict[str, str]:
        stored = named_queries(self.athena, self.workgroup)
        files = {p.stem: p.read_text() for p in QUERIES.glob("*.sql")}
        self.check(set(stored) == set(files), f"named queries {sorted(stored)}, files {sorted(files)}")
        for name in set(stored) & set(files):
            self.check(stored[name] == files[name], f"named query {name} differs from queries/{name}.sql")
        return stored

    def volumes(self, stored: dict[str, str], closed_15m: list[dict]) -> None:
        """Per intersection, against the readings; summed per window, against the readings the
        stack's closed 15m windows count; each ranked intersection's speed against the query's."""
        per_window: dict[int, int] = {}
        speeds: dict[tuple[int, str], float | None] = {}
        for x in sorted({r["intersection_id"] for r in self.readings}):
            rows = self.query(bind(stored["volumes-by-15-minutes"], [x, self.first_day, self.last_day]))
            got = {timestamp_ms(r["window_start"]): (int(r["readings"]), int(r["vehicles"]), number(r["mean_speed_kmh"])) for r in rows}
            want = expected_volumes(self.readings, x)
            same = got.keys() == want.keys() and all(
                got[w][:2] == want[w][:2] and close(got[w][2], want[w][2]) for w in want
            )
            self.check(same, f"volumes-by-15-minutes for {x}: {sorted(got.items())[:3]}... against {sorted(want.items())[:3]}...")
            for w, (n, _, speed) in got.items():
                per_window[w] = per_window.get(w, 0) + n
                speeds[(w, x)] = speed
        compared = 0
        for window in closed_15m:
            w = event_ms(window["start"])
            self.check(per_window.get(w) == window["readings"], f"15m window {window['start']}: the archive counts {per_window.get(w)} readings, the results {window['readings']}")
            for entry in window["top10"]:
                got = speeds.get((w, entry["intersection_id"]))
                self.check(close(got, entry["mean_speed_kmh"]), f"15m window {window['start']}, {entry['intersection_id']}: speed {got} in the archive, {entry['mean_speed_kmh']} in the results")
            compared += 1
        self.out["windows_compared_with_results"] = compared
        self.check(compared > 0, "no closed 15m window to compare the archive with")

    def top10_by_hour(self, stored: dict[str, str]) -> None:
        rows = self.query(bind(stored["top10-by-hour-of-day"], [self.first_day, self.last_day]))
        got = [(int(r["hour_of_day"]), int(r["place"]), r["intersection_id"], number(r["mean_speed_kmh"]), int(r["vehicles"])) for r in rows]
        want = expected_top10_by_hour(self.readings)
        same = len(got) == len(want) and all(g[:3] == w[:3] and close(g[3], w[3]) and g[4] == w[4] for g, w in zip(got, want))
        self.check(same, f"top10-by-hour-of-day: {got[:3]}... against {want[:3]}...")

    def before_after(self, stored: dict[str, str], changed_ms: int, intersection: str) -> None:
        rows = self.query(bind(stored["before-and-after"], [athena_literal_time(changed_ms), intersection, self.first_day, self.last_day]))
        got = {
            (int(r["light"]), r["side"]): (int(r["readings"]), int(r["vehicles"]), number(r["mean_speed_kmh"]), timestamp_ms(r["first_reading"]), timestamp_ms(r["last_reading"]))
            for r in rows
        }
        want = expected_before_after(self.readings, changed_ms, intersection)
        same = got.keys() == want.keys() and all(got[k][:2] == want[k][:2] and close(got[k][2], want[k][2]) and got[k][3:] == want[k][3:] for k in want)
        self.check(same, f"before-and-after: {got} against {want}")

    def same_locally(self, s3: Any, bucket: str, traffic: str, work: Path, params: dict[str, list]) -> None:
        """The Parquet objects Firehose wrote, copied to a local archive's layout, give
        `traffic query --named` (DuckDB, on this machine) the answers Athena gave, query by
        query: the same SQL text on the same files."""
        import json
        import subprocess

        local = work / "archive-copy"
        for prefix in ("readings/", *(f"{t}/" for t in OUTPUT_TABLES)):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    path = local / "archive" / o["Key"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        self.local = local
        files = sorted(str(p.relative_to(local)) for p in (local / "archive" / "readings").rglob("*.parquet"))
        counted = subprocess.run(
            [traffic, "query", "--data-dir", str(local), "--format", "json", "SELECT count(*) AS n FROM readings"],
            capture_output=True, text=True, timeout=300,
        )
        n = json.loads(counted.stdout)[0]["n"] if counted.returncode == 0 else counted.stderr.strip()
        self.check(n == len(self.readings), f"traffic query counts {n} readings in the {len(files)} copied objects ({files[:1]}...), {len(self.readings)} recorded")
        stored = named_queries(self.athena, self.workgroup)
        same = {}
        for name, values in params.items():
            athena_rows = self.query(bind(stored[name], values))
            done = subprocess.run(
                [traffic, "query", "--data-dir", str(local), "--format", "json", "--named", name, *map(str, values)],
                capture_output=True, text=True, timeout=300,
            )
            if done.returncode != 0:
                self.check(False, f"traffic query --named {name}: {done.stderr.strip()}")
                continue
            local_rows = json.loads(done.stdout)
            same[name] = same_rows(athena_rows, local_rows)
            self.check(same[name], f"{name}: Athena {athena_rows[:2]}... traffic query {local_rows[:2]}...")
            log_side_by_side(name, values, athena_rows, local_rows)
        self.out["traffic_query_equals_athena"] = same

    def merge_outputs(self, closed: list[dict], traffic: str) -> None:
        """The merge's own tables through Athena: a row of `windows` for every closed window the
        stack served, with its readings and global median, and its `top` ranking in
        `window_rankings` equal to the window's top-10; then the same SQL through `traffic query`
        over the objects `same_locally` copied, row for row."""
        import json
        import subprocess

        days = [self.first_day, self.last_day]
        windows_sql = bind(
            "SELECT length, window_start, readings, global_median_vehicles FROM windows "
            "WHERE dt BETWEEN ? AND ? ORDER BY length, window_start",
            days,
        )
        rows = self.query(windows_sql)
        got = {(r["length"], timestamp_ms(r["window_start"])): (int(r["readings"]), number(r["global_median_vehicles"])) for r in rows}
        ranks = self.query(bind(
            "SELECT length, window_start, place, intersection_id, value FROM window_rankings "
            "WHERE ranking = 'top' AND dt BETWEEN ? AND ? ORDER BY length, window_start, place",
            days,
        ))
        ranked: dict[tuple[str, int], list[tuple[str, float | None]]] = {}
        for r in ranks:
            ranked.setdefault((r["length"], timestamp_ms(r["window_start"])), []).append((r["intersection_id"], number(r["value"])))
        compared = 0
        for w in closed:
            key = (w["length"], event_ms(w["start"]))
            row = got.get(key)
            self.check(
                row is not None and row[0] == w["readings"] and close(row[1], w["global_median_vehicles"]),
                f"windows {key}: {row} in the archive, {w['readings']} readings and median {w['global_median_vehicles']} in the results",
            )
            top = [(e["intersection_id"], e["mean_speed_kmh"]) for e in w["top10"]]
            mine = ranked.get(key, [])
            self.check(
                [i for i, _ in mine] == [i for i, _ in top] and all(close(a, b) for (_, a), (_, b) in zip(mine, top)),
                f"window_rankings {key}: {mine[:3]}... in the archive, {top[:3]}... in the results",
            )
            compared += 1
        self.out["output_windows_compared_with_results"] = compared
        self.check(compared > 0, "no closed window to compare the merge's tables with")
        local = getattr(self, "local", None)
        if local is None:
            return
        done = subprocess.run(
            [traffic, "query", "--data-dir", str(local), "--format", "json", windows_sql],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            self.check(False, f"traffic query over the merge's tables: {done.stderr.strip()}")
            return
        local_rows = json.loads(done.stdout)
        same = same_rows(rows, local_rows)
        self.check(same, f"windows: Athena {rows[:2]}... traffic query {local_rows[:2]}...")
        log_side_by_side("windows", days, rows, local_rows)
        self.out["traffic_query_equals_athena"]["windows"] = same

    def plans(self, timings: list[dict]) -> None:
        """`window_plans` of the newest retiming round holds, phase by phase, the plan each
        intersection runs as the API serves it (`GET /api/timings`, `plan`)."""
        rows = self.query(bind(
            "SELECT window_start, intersection_id, phase, green_s FROM window_plans WHERE dt BETWEEN ? AND ?",
            [self.first_day, self.last_day],
        ))
        newest = max((timestamp_ms(r["window_start"]) for r in rows), default=None)
        got = {(r["intersection_id"], int(r["phase"])): number(r["green_s"]) for r in rows if timestamp_ms(r["window_start"]) == newest}
        want = {
            (t["intersection_id"], i): p["green_s"]
            for t in timings
            for i, p in enumerate((t.get("plan") or {}).get("phases", []))
        }
        same = bool(want) and got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
        self.check(same, f"window_plans {sorted(got.items())[:3]}... against the API's plans {sorted(want.items())[:3]}...")
        self.out["plan_rows_compared_with_api"] = len(want)

    def history(self, answer: dict, closed_15m: list[dict], intersection: str) -> None:
        """The API's history of an intersection (read from `window_intersections` on S3 by
        the api function's role) holds its readings and vehicles in each closed quarter-hour,
        as the recorded readings count them."""
        want = expected_volumes(self.readings, intersection)
        starts = {event_ms(w["start"]) for w in closed_15m}
        want = {w: v[:2] for w, v in want.items() if w in starts}
        got = {event_ms(w["start"]): (w["readings"], w["vehicles"]) for w in answer.get("windows", [])}
        self.check(bool(want) and got == want, f"the API's history of {intersection}: {got} against {want}")
        self.out["history_windows"] = len(got)

    def changes(self, failures: list[tuple], timings: list[dict], closed_15m: list[dict]) -> None:
        """Who changed what, through Athena: `alarm_events` holds a `raised` row for each lamp
        failure that began in a closed quarter-hour, at the time the readings say, and
        `plan_changes` a `retiming` row for each intersection the API says was retimed
        (`retimed_from`), at the end of the window it was retimed from. (Operators' edits and
        acknowledgements carry the API's clock, not the recorded readings' 2026-01-05: this
        run's windows cannot hold them; tests/system covers them.)"""
        days = [self.first_day, self.last_day]
        quarters = [(event_ms(w["start"]), event_ms(w["start"]) + 15 * 60_000) for w in closed_15m]
        raised = {
            (r["intersection_id"], int(r["light"]), r["lamp"], timestamp_ms(r["raised_at"]))
            for r in self.query(bind(
                "SELECT intersection_id, light, lamp, raised_at FROM alarm_events "
                "WHERE event = 'raised' AND dt BETWEEN ? AND ?",
                days,
            ))
        }
        want = {f[:4] for f in failures if any(a <= f[3] < b for a, b in quarters)}
        self.check(bool(want) and raised == want, f"alarm_events raised {sorted(raised)} against the failures {sorted(want)}")
        self.out["alarm_events_raised"] = len(raised)
        retimed = {
            (r["intersection_id"], timestamp_ms(r["changed_at"]))
            for r in self.query(bind(
                "SELECT DISTINCT intersection_id, changed_at FROM plan_changes "
                "WHERE changed_by = 'retiming' AND dt BETWEEN ? AND ?",
                days,
            ))
        }
        latest = set()
        for t in timings:
            length, _, start = (t.get("retimed_from") or "").partition("@")
            if length == "15m":
                latest.add((t["intersection_id"], event_ms(start) + 15 * 60_000))
        self.check(bool(latest) and latest <= retimed, f"plan_changes lacks retimings the API serves: {sorted(latest - retimed)[:5]}")
        self.out["plan_changes_retimings"] = len(retimed)

    def failures(self, stored: dict[str, str]) -> list[tuple]:
        rows = self.query(bind(stored["lamp-failures"], [self.first_day, self.last_day]))
        got = [
            (r["intersection_id"], int(r["light"]), r["lamp"], timestamp_ms(r["broken_at"]), None if r["working_at"] is None else timestamp_ms(r["working_at"]))
            for r in rows
        ]
        want = expected_failures(self.readings)
        self.check(got == want, f"lamp-failures: {got} against {want}")
        self.out["lamp_failures"] = len(got)
        return got
