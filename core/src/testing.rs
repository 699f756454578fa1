//! What the unit tests of the folds share: readings of a small city near one instant.

use crate::reading::Lamps;
use crate::{IntersectionId, LightIndex, Reading};

/// The instant the test readings are stamped from, epoch ms.
pub(crate) const T0: i64 = 1_767_600_000_000;

/// A reading of light `light` of intersection `I-{i}`, `ts_s` seconds after [`T0`], counting
/// `vehicles` at a speed that grows with them.
pub(crate) fn reading(i: u8, light: u8, ts_s: i64, vehicles: u32) -> Reading {
    Reading {
        intersection_id: IntersectionId::parse(&format!("I-{i}")).unwrap_or_else(|e| panic!("{e}")),
        light: LightIndex::new(i64::from(light)).unwrap_or_else(|e| panic!("{e}")),
        ts_ms: T0 + ts_s * 1000,
        vehicles,
        mean_speed_kmh: 20.0 + f64::from(vehicles),
        lamps: Lamps::default(),
        position: None,
    }
}
