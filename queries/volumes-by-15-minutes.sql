-- An intersection's volumes by 15 minutes over a range of days: readings, vehicles and their
-- vehicle-weighted mean speed (km/h), per 15-minute window of event time (UTC), as the 15m
-- windows of the results count them.
-- Parameters: intersection id ('I-0001'), first day ('2026-01-05'), last day ('2026-01-31').
SELECT
  date_trunc('hour', ts) + CAST(floor(minute(ts) / 15e0) AS INTEGER) * INTERVAL '15' MINUTE AS window_start,
  count(*) AS readings,
  sum(vehicles) AS vehicles,
  sum(vehicles * mean_speed_kmh) / nullif(sum(vehicles), 0) AS mean_speed_kmh
FROM readings
WHERE intersection_id = ? AND dt BETWEEN ? AND ?
GROUP BY 1
ORDER BY 1
