//! Event-time tumbling windows, aligned to UTC multiples of their length, and the watermark.
//!
//! All arithmetic is on integer epoch milliseconds: a timestamp `ts` falls in the window that
//! starts at `ts - ts mod len` (Euclidean, so times before 1970 work too).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The length of a tumbling window, in milliseconds (always positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowLength(i64);

/// A duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a positive duration such as 90s, 15m, 1h or 24h: {0:?}")]
pub struct DurationError(pub String);

/// Parses a duration written as a number and a unit (`ms`, `s`, `m`, `h`, `d`) into ms.
pub fn parse_duration_ms(s: &str) -> Result<i64, DurationError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| DurationError(s.to_owned()))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError(s.to_owned())),
    };
    n.checked_mul(scale)
        .ok_or_else(|| DurationError(s.to_owned()))
}

/// Formats milliseconds in the largest unit that divides them exactly (`15m`, `1h`, `24h`).
pub fn format_duration_ms(ms: i64) -> String {
    if ms != 0 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl WindowLength {
    /// A window length of `ms` milliseconds; `None` unless positive.
    pub fn from_ms(ms: i64) -> Option<Self> {
        (ms > 0).then_some(Self(ms))
    }

    /// The length in milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }

    /// The length in seconds.
    pub fn seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The window of this length that contains `ts_ms`.
    pub fn window_of(self, ts_ms: i64) -> WindowKey {
        WindowKey {
            length: self,
            start_ms: ts_ms - ts_ms.rem_euclid(self.0),
        }
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration_ms(self.0))
    }
}

impl FromStr for WindowLength {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, DurationError> {
        parse_duration_ms(s).and_then(|ms| Self::from_ms(ms).ok_or_else(|| DurationError(s.into())))
    }
}

/// One window: its length and its start (epoch ms, a multiple of the length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Its length.
    pub length: WindowLength,
    /// Its start, epoch ms UTC (inclusive).
    pub start_ms: i64,
}

impl WindowKey {
    /// Its end, epoch ms UTC (exclusive).
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.length.ms()
    }

    /// Whether `ts_ms` falls in this window.
    pub fn contains(&self, ts_ms: i64) -> bool {
        (self.start_ms..self.end_ms()).contains(&ts_ms)
    }

    /// Whether a watermark at `watermark_ms` has closed the window: no event at or before the
    /// watermark can arrive any more, so a window ending at or before it is complete.
    pub fn closed_by(&self, watermark_ms: i64) -> bool {
        self.end_ms() <= watermark_ms
    }
}

impl fmt::Display for WindowKey {
    /// `15m@2026-01-05T08:15:00Z`: how a retiming names the window it came from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            self.length,
            crate::time::format_rfc3339_ms(self.start_ms)
        )
    }
}

/// A window key that could not be parsed from `<length>@<start>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a window such as 15m@2026-01-05T08:15:00Z: {0:?}")]
pub struct WindowKeyError(pub String);

impl FromStr for WindowKey {
    type Err = WindowKeyError;
    fn from_str(s: &str) -> Result<Self, WindowKeyError> {
        let bad = || WindowKeyError(s.to_owned());
        let (len, start) = s.split_once('@').ok_or_else(bad)?;
        let length: WindowLength = len.parse().map_err(|_| bad())?;
        let start_ms = crate::time::parse_rfc3339_ms(start).ok_or_else(bad)?;
        Ok(WindowKey { length, start_ms })
    }
}

/// Serde of a [`WindowKey`] as its text (`15m@2026-01-05T08:15:00Z`), for
/// `#[serde(with = "traffic_core::window::key_as_text")]`.
pub mod key_as_text {
    use super::WindowKey;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the key as text.
    pub fn serialize<S: Serializer>(k: &WindowKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(k)
    }

    /// Reads the key from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WindowKey, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The watermark of a stream: the greatest event time seen, minus the allowed lateness.
pub fn watermark(max_event_ms: Option<i64>, allowed_lateness_ms: i64) -> Option<i64> {
    max_event_ms.map(|m| m.saturating_sub(allowed_lateness_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_and_print_in_their_largest_unit() {
        assert_eq!(parse_duration_ms("15m"), Ok(900_000));
        assert_eq!(parse_duration_ms("24h"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert!(parse_duration_ms("15").is_err());
        assert!(parse_duration_ms("m").is_err());
        assert_eq!(format_duration_ms(86_400_000), "24h");
        assert_eq!(format_duration_ms(900_000), "15m");
        assert_eq!(format_duration_ms(90_000), "90s");
    }

    #[test]
    fn windows_align_to_utc_multiples_of_their_length() {
        let w = WindowLength::from_ms(900_000).map(|l| l.window_of(1_767_600_005_000));
        assert_eq!(w.map(|w| w.start_ms), Some(1_767_600_000_000));
        assert_eq!(w.map(|w| w.end_ms()), Some(1_767_600_900_000));
    }

    proptest! {
        #[test]
        fn every_timestamp_falls_in_exactly_its_window(ts in -10_000_000_000_000i64..10_000_000_000_000, len in 1i64..100_000_000) {
            let l = WindowLength::from_ms(len).ok_or_else(|| TestCaseError::fail("len"))?;
            let w = l.window_of(ts);
            prop_assert!(w.contains(ts));
            prop_assert_eq!(w.start_ms.rem_euclid(len), 0);
        }
    }

    #[test]
    fn a_window_key_reads_back_from_its_text() {
        let k = WindowLength::from_ms(900_000)
            .unwrap_or_else(|| panic!("15m"))
            .window_of(1_767_600_900_000);
        assert_eq!(k.to_string(), "15m@2026-01-05T08:15:00Z");
        assert_eq!("15m@2026-01-05T08:15:00Z".parse::<WindowKey>(), Ok(k));
        assert!("15m".parse::<WindowKey>().is_err());
        assert!("15x@2026-01-05T08:15:00Z".parse::<WindowKey>().is_err());
    }
}
