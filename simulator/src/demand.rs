//! Each intersection's traffic: how much arrives, along which axis, and how fast it drives.
//!
//! The generator writes these into the intersection's `extra` map of the city file
//! (`"demand_level"`, `"major_axis"`, `"minor_ratio"`, `"free_flow_kmh"`), so a generated city
//! carries its own traffic and an edited city file changes it. For a city without them (a
//! hand-written one) the simulator draws the missing values from its seed.

use crate::error::SimError;
use crate::exact;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use traffic_core::LightIndex;

/// Key of the demand level in an intersection's `extra` map.
pub const KEY_DEMAND_LEVEL: &str = "demand_level";
/// Key of the major axis (`"NS"` or `"EW"`).
pub const KEY_MAJOR_AXIS: &str = "major_axis";
/// Key of the minor-to-major demand ratio.
pub const KEY_MINOR_RATIO: &str = "minor_ratio";
/// Key of the free-flow speed.
pub const KEY_FREE_FLOW: &str = "free_flow_kmh";

/// Highest accepted free-flow speed, km/h (the reading contract's speed limit).
const MAX_FREE_FLOW_KMH: f64 = traffic_core::reading::MAX_SPEED_KMH;

/// The axis of an intersection's heavier traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Axis {
    /// North–south: lights 0 (north approach) and 2 (south approach).
    #[serde(rename = "NS")]
    NorthSouth,
    /// East–west: lights 1 (east approach) and 3 (west approach).
    #[serde(rename = "EW")]
    EastWest,
}

impl Axis {
    /// The axis's code in a city file.
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::NorthSouth => "NS",
            Axis::EastWest => "EW",
        }
    }

    /// Whether light `l` is on this axis (0 and 2 are north–south, 1 and 3 east–west).
    pub fn contains(self, l: LightIndex) -> bool {
        l.get().is_multiple_of(2) == (self == Axis::NorthSouth)
    }

    fn parse(s: &str) -> Option<Axis> {
        match s {
            "NS" => Some(Axis::NorthSouth),
            "EW" => Some(Axis::EastWest),
            _ => None,
        }
    }
}

/// The compass approach of light `l`: 0 north, 1 east, 2 south, 3 west.
pub fn approach(l: LightIndex) -> &'static str {
    ["N", "E", "S", "W"][l.get() % 4]
}

/// The traffic of one intersection.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Arrival rate of each major-axis approach when the time-of-day profile is 1, veh/h.
    #[serde(with = "exact")]
    pub level_veh_h: f64,
    /// The heavier axis.
    pub major_axis: Axis,
    /// Demand of a minor-axis approach as a fraction of a major one.
    #[serde(with = "exact")]
    pub minor_ratio: f64,
    /// Speed with no traffic, km/h.
    #[serde(with = "exact")]
    pub free_flow_kmh: f64,
}

impl Demand {
    /// The light factor: 1 on the major axis, `minor_ratio` on the other.
    pub fn light_factor(&self, l: LightIndex) -> f64 {
        if self.major_axis.contains(l) {
            1.0
        } else {
            self.minor_ratio
        }
    }

    /// Arrival rate of light `l` when the profile is 1, veh/h.
    pub fn light_rate_veh_h(&self, l: LightIndex) -> f64 {
        self.level_veh_h * self.light_factor(l)
    }

    /// Writes the demand into an intersection's `extra` map.
    pub fn write_extra(&self, extra: &mut Map<String, Value>) {
        extra.insert(KEY_DEMAND_LEVEL.into(), Value::from(self.level_veh_h));
        extra.insert(KEY_MAJOR_AXIS.into(), Value::from(self.major_axis.as_str()));
        extra.insert(KEY_MINOR_RATIO.into(), Value::from(self.minor_ratio));
        extra.insert(KEY_FREE_FLOW.into(), Value::from(self.free_flow_kmh));
    }

    /// A demand drawn for a city that does not give one: level 150–700 veh/h, either axis,
    /// minor ratio 0.4–0.9, free flow 40–65 km/h. Always takes four draws from `rng`.
    pub(crate) fn draw(rng: &mut Rng) -> Demand {
        let level_veh_h = round_to(rng.range(150.0, 700.0), 1.0);
        let major_axis = if rng.below(2) == 0 {
            Axis::NorthSouth
        } else {
            Axis::EastWest
        };
        let minor_ratio = round_to(rng.range(0.4, 0.9), 100.0);
        let free_flow_kmh = round_to(rng.range(40.0, 65.0), 10.0);
        Demand {
            level_veh_h,
            major_axis,
            minor_ratio,
            free_flow_kmh,
        }
    }

    /// The demand an intersection's `extra` gives, each missing field taken from `fallback`.
    /// `at` prefixes field names in errors. Fields that are present must be valid.
    pub(crate) fn from_extra(
        extra: &Map<String, Value>,
        fallback: Demand,
        at: &str,
        min_speed_kmh: f64,
    ) -> Result<Demand, SimError> {
        let number = |key: &str, ok: &dyn Fn(f64) -> bool, what: &str| match extra.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && ok(x) => Ok(Some(x)),
                _ => Err(bad(at, key, format!("must be {what}, got {v}"))),
            },
        };
        let level = number(KEY_DEMAND_LEVEL, &|x| x >= 0.0, "a number of veh/h >= 0")?;
        let ratio = number(KEY_MINOR_RATIO, &|x| x >= 0.0, "a ratio >= 0")?;
        let speed = number(
            KEY_FREE_FLOW,
            &|x| x >= min_speed_kmh && x <= MAX_FREE_FLOW_KMH,
            &format!("a speed in {min_speed_kmh}..={MAX_FREE_FLOW_KMH} km/h"),
        )?;
        let axis = match extra.get(KEY_MAJOR_AXIS) {
            None => None,
            Some(v) => Some(v.as_str().and_then(Axis::parse).ok_or_else(|| {
                bad(
                    at,
                    KEY_MAJOR_AXIS,
                    format!("must be \"NS\" or \"EW\", got {v}"),
                )
            })?),
        };
        Ok(Demand {
            level_veh_h: level.unwrap_or(fallback.level_veh_h),
            major_axis: axis.unwrap_or(fallback.major_axis),
            minor_ratio: ratio.unwrap_or(fallback.minor_ratio),
            free_flow_kmh: speed.unwrap_or(fallback.free_flow_kmh),
        })
    }
}

fn bad(at: &str, key: &str, message: String) -> SimError {
    SimError::City(traffic_core::city::CityError {
        field: format!("{at}{key}"),
        message,
    })
}

/// `x` rounded to a multiple of `1/per` (`per` a power of ten), so that it prints short and
/// parses back exactly.
pub(crate) fn round_to(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light(i: i64) -> LightIndex {
        LightIndex::new(i).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_major_axis_carries_the_full_level_and_the_minor_axis_its_ratio() {
        let d = Demand {
            level_veh_h: 600.0,
            major_axis: Axis::EastWest,
            minor_ratio: 0.5,
            free_flow_kmh: 50.0,
        };
        assert_eq!(d.light_rate_veh_h(light(1)), 600.0);
        assert_eq!(d.light_rate_veh_h(light(3)), 600.0);
        assert_eq!(d.light_rate_veh_h(light(0)), 300.0);
        assert_eq!(approach(light(3)), "W");
    }

    #[test]
    fn demand_round_trips_through_extra_and_bad_values_are_named() {
        let d = Demand {
            level_veh_h: 720.0,
            major_axis: Axis::NorthSouth,
            minor_ratio: 0.65,
            free_flow_kmh: 57.5,
        };
        let mut extra = Map::new();
        d.write_extra(&mut extra);
        let other = Demand {
            level_veh_h: 1.0,
            major_axis: Axis::EastWest,
            minor_ratio: 1.0,
            free_flow_kmh: 40.0,
        };
        assert_eq!(Demand::from_extra(&extra, other, "", 5.0), Ok(d));
        extra.insert(KEY_MAJOR_AXIS.into(), Value::from("diagonal"));
        let e = Demand::from_extra(&extra, other, "intersections[2].", 5.0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("intersections[2].major_axis"), "{e}");
        assert_eq!(Demand::from_extra(&Map::new(), other, "", 5.0), Ok(other));
    }
}
