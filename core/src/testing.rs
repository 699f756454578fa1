//! What the unit tests share: readings of a small city near one instant, phases of given
//! greens.

use crate::reading::Lamps;
use crate::{IntersectionId, LightIndex, Phase, Reading};

/// The instant the test readings are stamped from, epoch ms.
pub(crate) const T0: i64 = 1_767_600_000_000;

/// The intersection `s` (a valid id).
pub(crate) fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Light `i` (0..=3).
pub(crate) fn light(i: i64) -> LightIndex {
    LightIndex::new(i).unwrap_or_else(|e| panic!("{e}"))
}

/// A reading of light `light` of intersection `I-{i}`, `ts_s` seconds after [`T0`], counting
/// `vehicles` at a speed that grows with them.
pub(crate) fn reading(i: u8, light: u8, ts_s: i64, vehicles: u32) -> Reading {
    Reading {
        intersection_id: id(&format!("I-{i}")),
        light: self::light(i64::from(light)),
        ts_ms: T0 + ts_s * 1000,
        vehicles,
        mean_speed_kmh: 20.0 + f64::from(vehicles),
        lamps: Lamps::default(),
        position: None,
    }
}

/// Phases of `greens`, each followed by a `yellow`, red for the rest of their cycle; phase `i`
/// holds light `i % 4`.
pub(crate) fn phases(greens: &[f64], yellow: f64) -> Vec<Phase> {
    let cycle: f64 = greens.iter().map(|g| g + yellow).sum();
    greens
        .iter()
        .enumerate()
        .map(|(i, g)| Phase {
            lights: vec![LightIndex::new((i % 4) as i64).unwrap_or_else(|e| panic!("{e}"))],
            green_s: *g,
            red_s: cycle - g - yellow,
            extra: Default::default(),
        })
        .collect()
}
