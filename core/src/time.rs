//! Event time: RFC 3339 timestamps to and from integer epoch milliseconds (UTC).

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp into epoch milliseconds (UTC). Offsets are converted to UTC.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Formats epoch milliseconds as RFC 3339 in UTC with a `Z`, with milliseconds only when
/// they are not zero (`2026-01-05T08:00:00Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Epoch milliseconds of `text`, or a serde error naming it.
fn ms_of<E: serde::de::Error>(text: &str) -> Result<i64, E> {
    parse_rfc3339_ms(text).ok_or_else(|| E::custom(format!("not an RFC 3339 time: {text:?}")))
}

/// Serde of epoch milliseconds as RFC 3339 text ([`format_rfc3339_ms`]), for a time kept as
/// a number and written as a timestamp: `#[serde(with = "traffic_core::time::rfc3339")]`.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `ms` as its timestamp.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339_ms(*ms))
    }

    /// Reads a timestamp as epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        super::ms_of(&String::deserialize(d)?)
    }
}

/// [`rfc3339`] for an optional time (`null` or absent: `None`).
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `ms` as its timestamp, or `null`.
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_some(&super::format_rfc3339_ms(*ms)),
            None => s.serialize_none(),
        }
    }

    /// Reads a timestamp, or `null`, as epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::ms_of(&text))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let ms = parse_rfc3339_ms("2026-01-05T08:00:05Z");
        assert_eq!(ms, Some(1_767_600_005_000));
        assert_eq!(format_rfc3339_ms(1_767_600_005_000), "2026-01-05T08:00:05Z");
        assert_eq!(
            format_rfc3339_ms(1_767_600_005_250),
            "2026-01-05T08:00:05.250Z"
        );
        assert_eq!(
            parse_rfc3339_ms("2026-01-05T09:00:05+01:00"),
            Some(1_767_600_005_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Stamped {
        #[serde(with = "rfc3339")]
        at: i64,
        #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
        closed: Option<i64>,
    }

    #[test]
    fn times_kept_as_milliseconds_are_written_as_timestamps() {
        let open = Stamped {
            at: 1_767_600_005_250,
            closed: None,
        };
        let json = serde_json::to_string(&open).unwrap_or_default();
        assert_eq!(json, r#"{"at":"2026-01-05T08:00:05.250Z"}"#);
        assert_eq!(serde_json::from_str::<Stamped>(&json).ok(), Some(open));
        let closed = r#"{"at":"2026-01-05T08:00:05Z","closed":"2026-01-05T09:00:00+01:00"}"#;
        assert_eq!(
            serde_json::from_str::<Stamped>(closed).ok(),
            Some(Stamped {
                at: 1_767_600_005_000,
                closed: Some(1_767_600_000_000),
            })
        );
        let null = r#"{"at":"2026-01-05T08:00:05Z","closed":null}"#;
        assert_eq!(
            serde_json::from_str::<Stamped>(null)
                .ok()
                .and_then(|s| s.closed),
            None
        );
        for bad in [r#"{"at":"yesterday"}"#, r#"{"at":5}"#] {
            assert!(serde_json::from_str::<Stamped>(bad).is_err(), "{bad}");
        }
    }
}
