//! DynamoDB requests and capacity, counted by the adapter as they succeed, so that a test or
//! an operator can tell what a run cost (requests per 1,000 readings).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one store (shared by its clones).
#[derive(Debug, Default)]
pub struct Metrics {
    read_requests: AtomicU64,
    write_requests: AtomicU64,
    /// Capacity units × 1000, as the responses report them.
    read_units_milli: AtomicU64,
    write_units_milli: AtomicU64,
    by_operation: Mutex<BTreeMap<&'static str, u64>>,
}

/// What the counters held at one moment.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Read requests (`GetItem`, `BatchGetItem`, `Query`, `Scan`).
    pub read_requests: u64,
    /// Write requests (`PutItem`, `UpdateItem`, `DeleteItem`, `BatchWriteItem`,
    /// `TransactWriteItems`).
    pub write_requests: u64,
    /// Read capacity units consumed, where the responses report it.
    pub read_capacity_units: f64,
    /// Write capacity units consumed, where the responses report it.
    pub write_capacity_units: f64,
    /// Requests by operation.
    pub by_operation: BTreeMap<String, u64>,
}

impl MetricsSnapshot {
    /// The counts accrued between `earlier` and this snapshot.
    pub fn since(&self, earlier: &MetricsSnapshot) -> MetricsSnapshot {
        let mut by_operation = self.by_operation.clone();
        for (k, v) in &earlier.by_operation {
            if let Some(n) = by_operation.get_mut(k) {
                *n = n.saturating_sub(*v);
            }
        }
        by_operation.retain(|_, v| *v > 0);
        MetricsSnapshot {
            read_requests: self.read_requests.saturating_sub(earlier.read_requests),
            write_requests: self.write_requests.saturating_sub(earlier.write_requests),
            read_capacity_units: self.read_capacity_units - earlier.read_capacity_units,
            write_capacity_units: self.write_capacity_units - earlier.write_capacity_units,
            by_operation,
        }
    }
}

impl Metrics {
    /// Counts a successful read request of `op` that consumed `units` (if reported).
    pub(crate) fn read(&self, op: &'static str, units: Option<f64>) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
        if let Some(u) = units {
            self.read_units_milli
                .fetch_add((u * 1000.0).round() as u64, Ordering::Relaxed);
        }
        self.count(op);
    }

    /// Counts a successful write request of `op` that consumed `units` (if reported).
    pub(crate) fn write(&self, op: &'static str, units: Option<f64>) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        if let Some(u) = units {
            self.write_units_milli
                .fetch_add((u * 1000.0).round() as u64, Ordering::Relaxed);
        }
        self.count(op);
    }

    fn count(&self, op: &'static str) {
        if let Ok(mut m) = self.by_operation.lock() {
            *m.entry(op).or_default() += 1;
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            read_requests: self.read_requests.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            read_capacity_units: self.read_units_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            write_capacity_units: self.write_units_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            by_operation: self
                .by_operation
                .lock()
                .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
        }
    }
}

/// Sums the capacity units of a list of consumed-capacity entries.
pub(crate) fn units(c: &[aws_sdk_dynamodb::types::ConsumedCapacity]) -> Option<f64> {
    if c.is_empty() {
        None
    } else {
        Some(c.iter().filter_map(|c| c.capacity_units()).sum())
    }
}

/// The capacity units of one consumed-capacity entry.
pub(crate) fn unit(c: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>) -> Option<f64> {
    c.and_then(|c| c.capacity_units())
}
