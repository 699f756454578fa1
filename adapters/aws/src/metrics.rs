//! DynamoDB requests and capacity units, counted by the adapter as its calls succeed (or fail
//! on a condition, which DynamoDB bills too), so that a test, `traffic aws-measure` or a
//! function's statistics can tell what a run cost. The units are computed from the items by
//! DynamoDB's sizing rules ([`crate::capacity`]), not taken from `ConsumedCapacity`, which an
//! emulator reports as a constant.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use traffic_ports::Usage;

/// Counters of one store (shared by its clones).
#[derive(Debug, Default)]
pub struct Metrics {
    read_requests: AtomicU64,
    write_requests: AtomicU64,
    /// Read units × 2 (eventually consistent reads bill halves).
    read_half_units: AtomicU64,
    write_units: AtomicU64,
    by_operation: Mutex<BTreeMap<String, OperationUsage>>,
}

/// What one kind of call (`<table>:<operation>`) consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct OperationUsage {
    /// Requests.
    pub requests: u64,
    /// Capacity units (read or write, as the operation is).
    pub units: f64,
}

/// What the counters held at one moment.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Read requests (`GetItem`, `BatchGetItem`, `Query`, `Scan`).
    pub read_requests: u64,
    /// Write requests (`PutItem`, `UpdateItem`, `DeleteItem`, `BatchWriteItem`,
    /// `TransactWriteItems`).
    pub write_requests: u64,
    /// Read capacity units DynamoDB would bill.
    pub read_capacity_units: f64,
    /// Write capacity units DynamoDB would bill.
    pub write_capacity_units: f64,
    /// Requests by `<table>:<operation>`.
    pub by_operation: BTreeMap<String, u64>,
    /// Requests and units by `<table>:<operation>`.
    pub units_by_operation: BTreeMap<String, OperationUsage>,
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
        let mut units_by_operation = self.units_by_operation.clone();
        for (k, v) in &earlier.units_by_operation {
            if let Some(n) = units_by_operation.get_mut(k) {
                n.requests = n.requests.saturating_sub(v.requests);
                n.units -= v.units;
            }
        }
        units_by_operation.retain(|_, v| v.requests > 0);
        MetricsSnapshot {
            read_requests: self.read_requests.saturating_sub(earlier.read_requests),
            write_requests: self.write_requests.saturating_sub(earlier.write_requests),
            read_capacity_units: self.read_capacity_units - earlier.read_capacity_units,
            write_capacity_units: self.write_capacity_units - earlier.write_capacity_units,
            by_operation,
            units_by_operation,
        }
    }

    /// The totals as the ports' [`Usage`].
    pub fn usage(&self) -> Usage {
        Usage {
            read_units: self.read_capacity_units,
            write_units: self.write_capacity_units,
            read_requests: self.read_requests,
            write_requests: self.write_requests,
        }
    }
}

impl Metrics {
    /// Counts a read request `op` that billed `units` read units.
    pub(crate) fn read(&self, op: &str, units: f64) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
        self.read_half_units
            .fetch_add((units * 2.0).round() as u64, Ordering::Relaxed);
        self.count(op, units);
    }

    /// Counts a write request `op` that billed `units` write units.
    pub(crate) fn write(&self, op: &str, units: f64) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.write_units
            .fetch_add(units.round() as u64, Ordering::Relaxed);
        self.count(op, units);
    }

    /// Adds `units` write units to requests of `op` already counted: what a batch bills that
    /// its request could not say (a replaced item larger than its replacement).
    pub(crate) fn more_write_units(&self, op: &str, units: f64) {
        self.write_units
            .fetch_add(units.round() as u64, Ordering::Relaxed);
        if let Ok(mut m) = self.by_operation.lock() {
            m.entry(op.to_owned()).or_default().units += units;
        }
    }

    fn count(&self, op: &str, units: f64) {
        if let Ok(mut m) = self.by_operation.lock() {
            let e = m.entry(op.to_owned()).or_default();
            e.requests += 1;
            e.units += units;
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let ops = self
            .by_operation
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        MetricsSnapshot {
            read_requests: self.read_requests.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            read_capacity_units: self.read_half_units.load(Ordering::Relaxed) as f64 / 2.0,
            write_capacity_units: self.write_units.load(Ordering::Relaxed) as f64,
            by_operation: ops.iter().map(|(k, v)| (k.clone(), v.requests)).collect(),
            units_by_operation: ops,
        }
    }
}

impl traffic_ports::UsageMeter for Metrics {
    fn usage(&self) -> Usage {
        self.snapshot().usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_requests_add_up_and_subtract_by_operation() {
        let m = Metrics::default();
        m.read("state:Query", 0.5);
        let before = m.snapshot();
        m.read("state:Query", 1.5);
        m.write("state:TransactWriteItems", 4.0);
        let d = m.snapshot().since(&before);
        assert_eq!((d.read_requests, d.write_requests), (1, 1));
        assert_eq!((d.read_capacity_units, d.write_capacity_units), (1.5, 4.0));
        assert_eq!(d.units_by_operation["state:Query"].units, 1.5);
        assert_eq!(d.by_operation["state:TransactWriteItems"], 1);
        assert_eq!(m.snapshot().usage().read_units, 2.0);
    }
}
