//! The sensor reading contract: one JSON object per Kinesis record (one per line in a file).
//!
//! ```json
//! {"intersection_id":"I-0001","light":2,"ts":"2026-01-05T08:00:05Z","vehicles":12,
//!  "mean_speed_kmh":43.5,"lamps":{"red":"ok","yellow":"ok","green":"broken"},
//!  "lat":41.8531,"lon":12.6042}
//! ```
//!
//! [`Reading::parse`] decodes and validates in one pass; every rejection says which field is
//! wrong. Unknown fields are ignored so that producers can add some. Records in the usual form
//! are decoded by a small scanner of their own (`scan`), which gives exactly what serde_json
//! gives or gives up; serde_json decodes the rest.

use crate::ids::{IdError, IntersectionId, LightError, LightIndex};
use crate::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

mod scan;

/// Largest accepted `vehicles` of one reading (a light's count since its previous reading).
pub const MAX_VEHICLES: u32 = 10_000;
/// Largest accepted `mean_speed_kmh`.
pub const MAX_SPEED_KMH: f64 = 300.0;

/// The state of one lamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LampState {
    /// Working.
    #[default]
    Ok,
    /// Broken: raises an alarm when it starts.
    Broken,
}

/// The colour of one of a light's three lamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LampColour {
    /// The red lamp.
    Red,
    /// The yellow lamp.
    Yellow,
    /// The green lamp.
    Green,
}

impl LampColour {
    /// The three colours in order.
    pub const ALL: [LampColour; 3] = [LampColour::Red, LampColour::Yellow, LampColour::Green];

    /// The colour's name as in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            LampColour::Red => "red",
            LampColour::Yellow => "yellow",
            LampColour::Green => "green",
        }
    }
}

/// The states of a light's three lamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Lamps {
    /// Red lamp.
    pub red: LampState,
    /// Yellow lamp.
    pub yellow: LampState,
    /// Green lamp.
    pub green: LampState,
}

impl Lamps {
    /// The state of the lamp of `colour`.
    pub fn get(&self, colour: LampColour) -> LampState {
        match colour {
            LampColour::Red => self.red,
            LampColour::Yellow => self.yellow,
            LampColour::Green => self.green,
        }
    }

    /// Whether all three lamps work.
    pub fn all_ok(&self) -> bool {
        LampColour::ALL
            .iter()
            .all(|c| self.get(*c) == LampState::Ok)
    }

    /// Sets the state of the lamp of `colour`.
    pub fn set(&mut self, colour: LampColour, state: LampState) {
        match colour {
            LampColour::Red => self.red = state,
            LampColour::Yellow => self.yellow = state,
            LampColour::Green => self.green = state,
        }
    }
}

/// A geographic position in degrees (WGS 84).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

impl Position {
    /// Mean Earth radius, m (IUGG), for [`Position::distance_m`].
    const EARTH_RADIUS_M: f64 = 6_371_008.8;

    /// The great-circle distance to `other`, m (the haversine formula, Sinnott 1984: exact
    /// on a sphere, within 0.5 % of the ellipsoid's distance).
    pub fn distance_m(&self, other: &Position) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * Self::EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }
}

/// A validated reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The intersection (the Kinesis partition key).
    pub intersection_id: IntersectionId,
    /// Which of its four lights.
    pub light: LightIndex,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Vehicles that crossed since this light's previous reading.
    pub vehicles: u32,
    /// Their mean speed, km/h.
    pub mean_speed_kmh: f64,
    /// Lamp states.
    pub lamps: Lamps,
    /// Position, when the sensor sends it.
    pub position: Option<Position>,
}

/// Why a record is not a valid reading. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingError {
    /// Not JSON, or a field of the wrong type or missing.
    #[error("malformed reading: {0}")]
    Malformed(String),
    /// `intersection_id` is not a valid id.
    #[error("field intersection_id: {0}")]
    IntersectionId(#[from] IdError),
    /// `light` is out of range.
    #[error("field light: {0}")]
    Light(#[from] LightError),
    /// `ts` is not an RFC 3339 timestamp.
    #[error("field ts: not an RFC 3339 timestamp: {0:?}")]
    Timestamp(String),
    /// `vehicles` is out of range.
    #[error("field vehicles: must be 0..={MAX_VEHICLES}, got {0}")]
    Vehicles(i64),
    /// `mean_speed_kmh` is out of range or not finite.
    #[error("field mean_speed_kmh: must be 0..={MAX_SPEED_KMH}, got {0}")]
    Speed(f64),
    /// `lat` or `lon` out of range, or only one of them given.
    #[error("fields lat/lon: {0}")]
    Position(String),
}

/// A record's fields as decoded, before validation.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug))]
struct Wire<'a> {
    #[serde(borrow)]
    intersection_id: Cow<'a, str>,
    light: i64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    vehicles: i64,
    mean_speed_kmh: f64,
    lamps: Lamps,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    intersection_id: &'a str,
    light: u8,
    ts: String,
    vehicles: u32,
    mean_speed_kmh: f64,
    lamps: Lamps,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
}

/// Decodes a record's fields with serde_json.
fn decode_with_serde(bytes: &[u8]) -> Result<Wire<'_>, ReadingError> {
    serde_json::from_slice(bytes).map_err(|e| ReadingError::Malformed(e.to_string()))
}

impl Reading {
    /// Decodes and validates one record.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReadingError> {
        match scan::decode(bytes) {
            Some(w) => Self::validate(w),
            None => Self::validate(decode_with_serde(bytes)?),
        }
    }

    fn validate(w: Wire<'_>) -> Result<Self, ReadingError> {
        let intersection_id = match w.intersection_id {
            Cow::Borrowed(s) => IntersectionId::parse(s)?,
            Cow::Owned(s) => IntersectionId::parse_owned(s)?,
        };
        let light = LightIndex::new(w.light)?;
        let ts_ms =
            parse_rfc3339_ms(&w.ts).ok_or_else(|| ReadingError::Timestamp(w.ts.to_string()))?;
        if !(0..=i64::from(MAX_VEHICLES)).contains(&w.vehicles) {
            return Err(ReadingError::Vehicles(w.vehicles));
        }
        if !(w.mean_speed_kmh.is_finite() && (0.0..=MAX_SPEED_KMH).contains(&w.mean_speed_kmh)) {
            return Err(ReadingError::Speed(w.mean_speed_kmh));
        }
        let position = match (w.lat, w.lon) {
            (None, None) => None,
            (Some(lat), Some(lon)) => {
                if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
                    return Err(ReadingError::Position(format!(
                        "lat must be -90..=90 and lon -180..=180, got {lat}, {lon}"
                    )));
                }
                Some(Position { lat, lon })
            }
            _ => {
                return Err(ReadingError::Position(
                    "give both lat and lon, or neither".into(),
                ));
            }
        };
        Ok(Reading {
            intersection_id,
            light,
            ts_ms,
            vehicles: w.vehicles as u32,
            mean_speed_kmh: w.mean_speed_kmh,
            lamps: w.lamps,
            position,
        })
    }

    /// Encodes the reading in the contract's JSON form.
    pub fn to_json(&self) -> String {
        let out = WireOut {
            intersection_id: self.intersection_id.as_str(),
            light: self.light.get() as u8,
            ts: format_rfc3339_ms(self.ts_ms),
            vehicles: self.vehicles,
            mean_speed_kmh: self.mean_speed_kmh,
            lamps: self.lamps,
            lat: self.position.map(|p| p.lat),
            lon: self.position.map(|p| p.lon),
        };
        // Serialising plain fields to a string cannot fail.
        serde_json::to_string(&out).unwrap_or_default()
    }

    /// The mean speed in thousandths of a km/h, the fixed point the rankings sum exactly.
    pub fn speed_milli(&self) -> u64 {
        (self.mean_speed_kmh * 1000.0).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"intersection_id":"I-0001","light":2,"ts":"2026-01-05T08:00:05Z","vehicles":12,"mean_speed_kmh":43.5,"lamps":{"red":"ok","yellow":"ok","green":"broken"},"lat":41.8531,"lon":12.6042}"#;

    fn parse(s: &str) -> Result<Reading, ReadingError> {
        Reading::parse(s.as_bytes())
    }

    #[test]
    fn the_contract_example_parses() {
        let r = parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.intersection_id.as_str(), "I-0001");
        assert_eq!(r.light.get(), 2);
        assert_eq!(r.vehicles, 12);
        assert_eq!(r.lamps.green, LampState::Broken);
        assert_eq!(r.speed_milli(), 43_500);
        assert_eq!(parse(&r.to_json()), Ok(r));
    }

    #[test]
    fn unknown_fields_are_ignored_and_position_is_optional() {
        let s = r#"{"intersection_id":"I-1","light":0,"ts":"2026-01-05T08:00:05Z","vehicles":0,"mean_speed_kmh":0,"lamps":{"red":"ok","yellow":"ok","green":"ok"},"note":"x"}"#;
        assert_eq!(parse(s).map(|r| r.position), Ok(None));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("\"light\":2", "\"light\":4", "field light"),
            ("\"vehicles\":12", "\"vehicles\":-1", "field vehicles"),
            ("43.5", "-3", "field mean_speed_kmh"),
            ("2026-01-05T08:00:05Z", "08:00", "field ts"),
            ("\"lat\":41.8531,", "", "lat/lon"),
            ("\"broken\"", "\"melted\"", "malformed"),
            ("I-0001", "I 1", "field intersection_id"),
        ];
        for (from, to, expect) in cases {
            let err = parse(&EXAMPLE.replace(from, to))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(expect)),
                "{from} -> {to}: {err:?}"
            );
        }
        assert!(matches!(parse("not json"), Err(ReadingError::Malformed(_))));
    }
}
