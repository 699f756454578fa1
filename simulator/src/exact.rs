//! Exact serialisation of `f64` state.
//!
//! serde_json's default float parser is fast but not always correctly rounded: a 17-digit
//! number can come back one unit in the last place off. A saved simulator must resume bit
//! for bit, so its floats are written as strings in Rust's shortest round-trip form
//! (`"41.8902"`) and read back with the standard library's correctly rounded parser. On input
//! plain JSON numbers are accepted as well, so hand-written configurations stay natural.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// Writes `v` as a string that parses back to the same bits.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Reads a float written by [`serialize`], or a plain number.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, or a string holding one")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.parse::<f64>()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct W(#[serde(with = "super")] f64);

    #[test]
    fn awkward_floats_survive_a_json_round_trip_bit_for_bit() {
        let mut x = 0.1f64;
        for i in 0..10_000 {
            x = (x * 1.618_033_988_749_895 + f64::from(i) * 1e-7).fract() * 97.3;
            let s = serde_json::to_string(&W(x)).unwrap_or_default();
            let back: W = serde_json::from_str(&s).unwrap_or(W(f64::NAN));
            assert_eq!(back.0.to_bits(), x.to_bits(), "{s}");
        }
    }

    #[test]
    fn plain_numbers_are_accepted() {
        let w: W = serde_json::from_str("60").unwrap_or(W(f64::NAN));
        assert_eq!(w, W(60.0));
        let w: W = serde_json::from_str("0.25").unwrap_or(W(f64::NAN));
        assert_eq!(w, W(0.25));
        assert!(serde_json::from_str::<W>("\"fast\"").is_err());
    }
}
