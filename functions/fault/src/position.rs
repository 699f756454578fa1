//! Where an alarm sends the crew: the registry's position of the intersection, whatever the
//! reading says. A sensor's own lat/lon (optional in a reading) may be stale, mistyped or
//! spoofed; the registry is what operators maintain. A reading more than
//! [`POSITION_MISMATCH_M`] from the registry's position is logged, once per intersection per
//! batch, so that either can be corrected; a reading's position is used only for an
//! intersection the registry gives none.

use std::collections::{BTreeMap, HashMap};
use traffic_core::IntersectionId;
use traffic_core::reading::{Position, Reading};
use traffic_functions::directory::Known;

/// How far a reading's own position may be from the registry's before it is logged, m (a
/// large junction's approaches span about 100 m; a sensor further away is somewhere else).
pub const POSITION_MISMATCH_M: f64 = 200.0;

/// The position an alarm of `id` carries: the registry's, or, only when the registry has none,
/// the reading's.
pub fn alarm_position(
    known: &HashMap<IntersectionId, Known>,
    id: &IntersectionId,
    reading: Option<Position>,
) -> Option<Position> {
    known.get(id).map(|k| k.position).or(reading)
}

/// Logs, once per intersection, the readings of `readings` stamped with a position more than
/// [`POSITION_MISMATCH_M`] from the registry's; returns the intersections logged with the
/// distance of the first such reading, m.
pub fn log_mismatches<'r>(
    known: &HashMap<IntersectionId, Known>,
    readings: impl IntoIterator<Item = &'r Reading>,
) -> BTreeMap<IntersectionId, f64> {
    let mut far = BTreeMap::new();
    for r in readings {
        let (Some(at), Some(k)) = (r.position, known.get(&r.intersection_id)) else {
            continue;
        };
        if far.contains_key(&r.intersection_id) {
            continue;
        }
        let d = at.distance_m(&k.position);
        if d > POSITION_MISMATCH_M {
            tracing::warn!(
                intersection = %r.intersection_id,
                light = %r.light,
                distance_m = d.round(),
                reading_lat = at.lat,
                reading_lon = at.lon,
                registry_lat = k.position.lat,
                registry_lon = k.position.lon,
                "a reading's position is far from the registry's; alarms use the registry's"
            );
            far.insert(r.intersection_id.clone(), d);
        }
    }
    far
}
