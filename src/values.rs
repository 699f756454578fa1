//! The typed values of the command line. Each is parsed by clap itself (`value_parser`), so a
//! bad value is refused before anything runs, by an error that names the flag (or, when the
//! value came from the environment, the variable: `main.rs`), and `--help` shows the format.
//!
//! One flag has one type in every subcommand: `--merge-every` and every other length of time
//! is a [`Span`] (a whole number and a unit: `90s`, `15m`, `1h`), `--speedup` a
//! [`traffic_app::local::Speedup`] (a positive factor or `max`), `--shards` a count
//! ([`shards_in_process`], [`shards_kinesis`]), `--start` an RFC 3339 instant ([`Instant`]).

use std::fmt;
use std::str::FromStr;
use traffic_core::window::{WindowLength, format_duration_ms, parse_duration_ms};

/// The formats a duration is written in, for the help texts and the errors.
pub const DURATION_FORMAT: &str =
    "a whole number and a unit (ms, s, m, h, d), such as 90s, 15m, 1h";

/// A length of time on the command line, in milliseconds (never negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(i64);

impl Span {
    /// A span of `ms` milliseconds (negative counts as zero).
    pub fn from_ms(ms: i64) -> Span {
        Span(ms.max(0))
    }

    /// Its length, ms.
    pub fn ms(self) -> i64 {
        self.0
    }

    /// Its length as a [`std::time::Duration`].
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0).unsigned_abs())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration_ms(self.0))
    }
}

impl FromStr for Span {
    type Err = String;
    /// A duration, `0` included (`0`, or `0s`).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "0" {
            return Ok(Span(0));
        }
        parse_duration_ms(s)
            .map(Span)
            .map_err(|_| format!("not a duration: {DURATION_FORMAT}"))
    }
}

/// A duration that must be more than zero (`--duration`, `--merge-every`).
pub fn positive_span(s: &str) -> Result<Span, String> {
    let span: Span = s.parse()?;
    if span.0 > 0 {
        Ok(span)
    } else {
        Err(format!("must be more than zero: {DURATION_FORMAT}"))
    }
}

/// The engine's window lengths: a comma-separated list of durations, each a multiple of the
/// shortest (every window is a union of panes of the shortest length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Windows(pub Vec<WindowLength>);

impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for Windows {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut lengths = s
            .split(',')
            .map(|p| {
                WindowLength::from_str(p.trim()).map_err(|_| {
                    format!("{:?} is not a window length: {DURATION_FORMAT}", p.trim())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        lengths.sort();
        lengths.dedup();
        let first = *lengths.first().ok_or("needs at least one window length")?;
        if let Some(odd) = lengths.iter().find(|l| l.ms() % first.ms() != 0) {
            return Err(format!(
                "{odd} is not a multiple of the shortest window {first}"
            ));
        }
        Ok(Windows(lengths))
    }
}

/// An instant, RFC 3339 (`2026-01-05T06:00:00Z`), as epoch ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant(pub i64);

impl FromStr for Instant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        traffic_core::time::parse_rfc3339_ms(s)
            .map(Instant)
            .ok_or_else(|| "not an RFC 3339 instant such as 2026-01-05T06:00:00Z".to_owned())
    }
}

/// A probability, 0 to 1.
pub fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("not a probability from 0 to 1".to_owned()),
    }
}

/// Most shards of the in-process stream (`local`, `replay`, `sumo`): one in-order worker each.
pub const MAX_SHARDS_IN_PROCESS: u32 = 64;

/// Most shards of a Kinesis stream (the template's `StreamShardCount` limit).
pub const MAX_SHARDS_KINESIS: u32 = 500;

/// `--shards` of the in-process stream: 1 to [`MAX_SHARDS_IN_PROCESS`].
pub fn shards_in_process() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::<u32>::new().range(1..=u64::from(MAX_SHARDS_IN_PROCESS))
}

/// `--shards` of a Kinesis stream: 1 to [`MAX_SHARDS_KINESIS`].
pub fn shards_kinesis() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::<u32>::new().range(1..=u64::from(MAX_SHARDS_KINESIS))
}

/// A count of at least one (`--batch-size`, `--intersections`, `--steps`, ...).
pub fn at_least_one<T>() -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::<T>::new().range(1..)
}

/// Which open windows get provisional results (the merge's `TRAFFIC_PROVISIONAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProvisionalArg {
    /// Every open window.
    All,
    /// Only the open windows of the shortest length.
    Shortest,
    /// None: results appear when windows close.
    None,
}

impl From<ProvisionalArg> for traffic_functions::Provisional {
    fn from(p: ProvisionalArg) -> Self {
        match p {
            ProvisionalArg::All => Self::All,
            ProvisionalArg::Shortest => Self::Shortest,
            ProvisionalArg::None => Self::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_windows_and_instants_parse_or_say_the_format() {
        assert_eq!("90s".parse::<Span>().map(Span::ms), Ok(90_000));
        assert_eq!("0".parse::<Span>().map(Span::ms), Ok(0));
        assert!(positive_span("0s").is_err());
        assert!(positive_span("1m").is_ok());
        assert!("5x".parse::<Span>().is_err_and(|e| e.contains("15m")));
        assert_eq!(
            "1h, 15m,24h".parse::<Windows>().map(|w| w.to_string()),
            Ok("15m,1h,24h".to_owned())
        );
        assert!(
            "7m,15m"
                .parse::<Windows>()
                .is_err_and(|e| e.contains("15m is not a multiple of the shortest window 7m"))
        );
        assert!("".parse::<Windows>().is_err());
        assert!("2026-01-05T06:00:00Z".parse::<Instant>().is_ok());
        assert!("yesterday".parse::<Instant>().is_err());
        assert_eq!(probability("0.5"), Ok(0.5));
        assert!(probability("1.5").is_err());
    }
}
