"""Simulated time as the system sees it: SUMO time 0 is :data:`START`, so a run is
deterministic for a seed; readings come once every :data:`READING_PERIOD_S`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import demand

#: SUMO time 0, as the readings' event time.
START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=timezone.utc)

#: The period of the readings (the reading contract's "one reading per light per minute").
READING_PERIOD_S = 60


def iso(seconds: float) -> str:
    """The event time of SUMO time `seconds` (whole seconds, UTC)."""
    return (START + timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%SZ")


def sumo_time(event_time: str) -> float:
    """The SUMO time of an event time (the inverse of :func:`iso`)."""
    at = datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (at - START).total_seconds()


def window_seconds(window: str) -> tuple[float, float]:
    """A control window's key (``15m@2026-01-05T06:00:00Z``) as SUMO seconds ``[start, end)``."""
    return demand.window_bounds(window, 0.0, sumo_time)
