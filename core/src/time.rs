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
}
