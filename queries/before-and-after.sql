-- Before and after a change at one intersection (a new plan, say): per light, the readings,
-- vehicles and vehicle-weighted mean speed (km/h) of the days given, split at the change's
-- instant (UTC), with the first and last reading of each side to scale the counts by.
-- Parameters: the change's instant ('2026-01-05 08:20:00'), intersection id ('I-0001'),
-- first day ('2026-01-01'), last day ('2026-01-31').
WITH change AS (SELECT CAST(? AS TIMESTAMP) AS changed_at)
SELECT
  r.light,
  CASE WHEN r.ts < change.changed_at THEN 'before' ELSE 'after' END AS side,
  count(*) AS readings,
  sum(r.vehicles) AS vehicles,
  sum(r.vehicles * r.mean_speed_kmh) / nullif(sum(r.vehicles), 0) AS mean_speed_kmh,
  min(r.ts) AS first_reading,
  max(r.ts) AS last_reading
FROM readings r
CROSS JOIN change
WHERE r.intersection_id = ? AND r.dt BETWEEN ? AND ?
GROUP BY 1, 2
ORDER BY 1, 2 DESC
