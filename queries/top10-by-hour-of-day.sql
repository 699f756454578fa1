-- The ten fastest intersections for each hour of the day over a range of days (a month, say):
-- vehicle-weighted mean speed (km/h) of every reading in that hour on any of the days, fastest
-- first, ties by id, as the results rank a window's intersections.
-- Parameters: first day ('2026-01-01'), last day ('2026-01-31').
WITH speeds AS (
  SELECT
    hour(ts) AS hour_of_day,
    intersection_id,
    sum(vehicles * mean_speed_kmh) / sum(vehicles) AS mean_speed_kmh,
    sum(vehicles) AS vehicles
  FROM readings
  WHERE dt BETWEEN ? AND ?
  GROUP BY hour(ts), intersection_id
  HAVING sum(vehicles) > 0
),
ranked AS (
  SELECT
    hour_of_day,
    row_number() OVER (PARTITION BY hour_of_day ORDER BY mean_speed_kmh DESC, intersection_id) AS place,
    intersection_id,
    mean_speed_kmh,
    vehicles
  FROM speeds
)
SELECT hour_of_day, place, intersection_id, mean_speed_kmh, vehicles
FROM ranked
WHERE place <= 10
ORDER BY hour_of_day, place
