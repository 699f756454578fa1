-- Lamp failures by intersection over a range of days, and how long each lamp stayed broken.
-- A failure starts at a reading that reports the lamp broken when the light's previous reading
-- in the range did not (or there was none) and ends at the light's next reading that reports
-- it working; working_at and broken_seconds are NULL while it was still broken at the range's
-- last reading.
-- Parameters: first day ('2026-01-01'), last day ('2026-01-31').
WITH scoped AS (
  SELECT intersection_id, light, ts, lamps FROM readings WHERE dt BETWEEN ? AND ?
),
lamp_states AS (
  SELECT intersection_id, light, ts, 'red' AS lamp, lamps.red AS state FROM scoped
  UNION ALL
  SELECT intersection_id, light, ts, 'yellow' AS lamp, lamps.yellow AS state FROM scoped
  UNION ALL
  SELECT intersection_id, light, ts, 'green' AS lamp, lamps.green AS state FROM scoped
),
changes AS (
  SELECT
    intersection_id, light, lamp, ts, state,
    lag(state) OVER (PARTITION BY intersection_id, light, lamp ORDER BY ts) AS previous
  FROM lamp_states
),
failures AS (
  SELECT intersection_id, light, lamp, ts AS broken_at
  FROM changes
  WHERE state = 'broken' AND (previous IS NULL OR previous <> 'broken')
),
repairs AS (
  SELECT intersection_id, light, lamp, ts AS working_at
  FROM changes
  WHERE state = 'ok' AND previous = 'broken'
)
SELECT
  f.intersection_id,
  f.light,
  f.lamp,
  f.broken_at,
  min(r.working_at) AS working_at,
  date_diff('second', f.broken_at, min(r.working_at)) AS broken_seconds
FROM failures f
LEFT JOIN repairs r
  ON r.intersection_id = f.intersection_id AND r.light = f.light AND r.lamp = f.lamp
  AND r.working_at > f.broken_at
GROUP BY f.intersection_id, f.light, f.lamp, f.broken_at
ORDER BY f.intersection_id, f.light, f.lamp, f.broken_at
