//! The functions' throughput and latency figures per minute ([`StatsStore`]).

use crate::PortResult;
use async_trait::async_trait;
use std::fmt;
use std::str::FromStr;
use traffic_core::window::WindowLength;

/// What a series of figures measures: a function's invocations, or a latency the merge
/// measured. Written and read as its name (`ingest`, `result_15m`), in the stores' keys too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Series {
    /// `ingest`: its batches and the readings they accepted.
    Ingest,
    /// `fault`: its batches and the alarms they raised.
    Fault,
    /// `merge`: its runs and the windows they closed.
    Merge,
    /// `retiming`: from a reading's arrival in the stream to the retiming that used it.
    Retiming,
    /// `result_<length>`: from a reading's arrival to the first result of that length.
    Result(WindowLength),
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ingest => f.write_str("ingest"),
            Self::Fault => f.write_str("fault"),
            Self::Merge => f.write_str("merge"),
            Self::Retiming => f.write_str("retiming"),
            Self::Result(length) => write!(f, "result_{length}"),
        }
    }
}

/// A name that is not one of a [`Series`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a series of figures (ingest, fault, merge, retiming, result_<length>): {0:?}")]
pub struct SeriesError(pub String);

impl FromStr for Series {
    type Err = SeriesError;
    fn from_str(s: &str) -> Result<Self, SeriesError> {
        match s {
            "ingest" => Ok(Self::Ingest),
            "fault" => Ok(Self::Fault),
            "merge" => Ok(Self::Merge),
            "retiming" => Ok(Self::Retiming),
            _ => s
                .strip_prefix("result_")
                .and_then(|l| l.parse().ok())
                .map(Self::Result)
                .ok_or_else(|| SeriesError(s.to_owned())),
        }
    }
}

impl serde::Serialize for Series {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Series {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Throughput and latency figures of one series over one minute (wall clock).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSample {
    /// What it measures.
    pub function: Series,
    /// Start of the minute, epoch ms.
    pub minute_ms: i64,
    /// Invocations.
    pub invocations: u64,
    /// Records handled.
    pub records: u64,
    /// Readings accepted (ingest) or alarms raised (fault).
    pub accepted: u64,
    /// Sum over records of (processed − arrived in the stream), ms.
    pub latency_ms_sum: u64,
    /// Largest such latency, ms.
    pub latency_ms_max: u64,
    /// DynamoDB read capacity units consumed (0 on the embedded store).
    #[serde(default)]
    pub read_units: f64,
    /// DynamoDB write capacity units consumed (0 on the embedded store).
    #[serde(default)]
    pub write_units: f64,
}

impl StatsSample {
    /// The figures of `function` in the minute starting at `minute_ms`, all zero.
    pub fn new(function: Series, minute_ms: i64) -> Self {
        Self {
            function,
            minute_ms,
            invocations: 0,
            records: 0,
            accepted: 0,
            latency_ms_sum: 0,
            latency_ms_max: 0,
            read_units: 0.0,
            write_units: 0.0,
        }
    }

    /// Adds another sample of the same function and minute.
    pub fn add(&mut self, o: &StatsSample) {
        self.invocations += o.invocations;
        self.records += o.records;
        self.accepted += o.accepted;
        self.latency_ms_sum += o.latency_ms_sum;
        self.latency_ms_max = self.latency_ms_max.max(o.latency_ms_max);
        self.read_units += o.read_units;
        self.write_units += o.write_units;
    }

    /// Mean latency, ms.
    pub fn mean_latency_ms(&self) -> f64 {
        traffic_core::mean::mean(self.latency_ms_sum as f64, self.records)
    }
}

/// Figures the functions record as they run (throughput, latency), per function and minute.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Adds a sample to its function's minute.
    async fn add_stats(&self, sample: &StatsSample) -> PortResult<()>;

    /// Samples of minutes starting at or after `since_ms`, by minute then function.
    async fn stats(&self, since_ms: i64) -> PortResult<Vec<StatsSample>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_written_and_read_as_its_name() {
        let m15: WindowLength = "15m".parse().unwrap_or_else(|e| panic!("{e:?}"));
        for (series, name) in [
            (Series::Ingest, "ingest"),
            (Series::Fault, "fault"),
            (Series::Merge, "merge"),
            (Series::Retiming, "retiming"),
            (Series::Result(m15), "result_15m"),
        ] {
            assert_eq!(series.to_string(), name);
            assert_eq!(name.parse(), Ok(series));
            let json = serde_json::to_string(&series).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Series>(&json).ok(), Some(series));
        }
        for bad in ["", "Ingest", "result_", "result_15x", "results_15m"] {
            assert_eq!(bad.parse::<Series>(), Err(SeriesError(bad.to_owned())));
        }
        assert!(serde_json::from_str::<Series>("\"nope\"").is_err());
    }
}
