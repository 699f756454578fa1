//! The functions' throughput and latency figures per minute ([`StatsStore`]).

use crate::PortResult;
use async_trait::async_trait;

/// Throughput and latency figures of one function over one minute (wall clock).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSample {
    /// `ingest`, `fault` or `merge`.
    pub function: String,
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
