//! The measurement a run returns: per function its invocations, durations and capacity
//! units, per table and operation, and the bill they make.

use super::{StreamKind, TemplateDefaults};
use serde::Serialize;
use std::collections::BTreeMap;
use traffic_aws::MetricsSnapshot;

/// What one function did and cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FunctionUsage {
    /// Invocations (batches, or merge runs).
    pub invocations: u64,
    /// Seconds spent in them here, against the emulator (not priced: see `billed_seconds`).
    pub seconds: f64,
    /// Seconds Lambda would bill for them, estimated by [`LambdaDuration`] (priced).
    pub billed_seconds: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Read capacity units.
    pub read_units: f64,
    /// Write requests.
    pub write_requests: u64,
    /// Read requests.
    pub read_requests: u64,
    /// Units and requests by `<table>:<operation>`.
    pub by_operation: BTreeMap<String, traffic_aws::metrics::OperationUsage>,
}

impl FunctionUsage {
    pub(super) fn of(m: &MetricsSnapshot, invocations: u64, seconds: f64) -> Self {
        Self {
            invocations,
            seconds,
            billed_seconds: 0.0,
            write_units: m.write_capacity_units,
            read_units: m.read_capacity_units,
            write_requests: m.write_requests,
            read_requests: m.read_requests,
            by_operation: m.units_by_operation.clone(),
        }
    }
}

/// The measurement: its last line of output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// Intersections of the city.
    pub intersections: usize,
    /// Readings put.
    pub readings: u64,
    /// Write capacity units, all functions.
    pub write_units: f64,
    /// Read capacity units, all functions.
    pub read_units: f64,
    /// Write requests.
    pub write_requests: u64,
    /// Read requests.
    pub read_requests: u64,
    /// Per 1,000 readings.
    pub write_units_per_1000_readings: f64,
    /// Per 1,000 readings.
    pub read_units_per_1000_readings: f64,
    /// Everything per million readings: DynamoDB as measured, Kinesis (shard-hours at the
    /// city's rate, a PUT unit a reading), Lambda (requests as counted; GB-seconds from each
    /// function's `billed_seconds` at the template's memory). The same arithmetic as
    /// `infra/cost.py`, which prints the README's table from these runs.
    pub usd_per_million_readings: f64,
    /// Its parts.
    pub usd_by_item: BTreeMap<String, f64>,
    /// Simulated minutes.
    pub minutes: u64,
    /// Shards of the stream.
    pub shards: i32,
    /// Where the readings went.
    pub stream: StreamKind,
    /// The settings used.
    pub settings: TemplateDefaults,
    /// Windows the merge closed.
    pub windows_closed: usize,
    /// Per function.
    pub by_function: BTreeMap<String, FunctionUsage>,
    /// Per `<function>:<table>`, per 1,000 readings: what each part of the system costs
    /// (`ingest:state` and `merge:state` are the delta state and its merge).
    pub per_1000_readings_by_table: BTreeMap<String, TableUsage>,
    /// Wall time of the run, s.
    pub wall_seconds: f64,
    /// What the prices are.
    pub prices: String,
}

/// Capacity units per 1,000 readings of one function on one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TableUsage {
    /// Write capacity units.
    pub write_units: f64,
    /// Read capacity units.
    pub read_units: f64,
}

/// Whether a DynamoDB operation reads (its units are read units).
pub fn is_read_operation(operation: &str) -> bool {
    matches!(
        operation,
        "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems"
    )
}

impl Measurement {
    /// Write and read units per 1,000 readings of the given `<function>:<table>` parts.
    pub fn units_per_1000_readings_of(&self, parts: &[&str]) -> TableUsage {
        let mut sum = TableUsage::default();
        for p in parts {
            if let Some(u) = self.per_1000_readings_by_table.get(*p) {
                sum.write_units += u.write_units;
                sum.read_units += u.read_units;
            }
        }
        sum
    }
}

pub(super) fn by_table(
    by_function: &BTreeMap<String, FunctionUsage>,
    readings: u64,
) -> BTreeMap<String, TableUsage> {
    let mut out: BTreeMap<String, TableUsage> = BTreeMap::new();
    for (function, usage) in by_function {
        for (op, u) in &usage.by_operation {
            let (table, operation) = op.split_once(':').unwrap_or(("?", op.as_str()));
            let e = out.entry(format!("{function}:{table}")).or_default();
            if is_read_operation(operation) {
                e.read_units += per_thousand(u.units, readings);
            } else {
                e.write_units += per_thousand(u.units, readings);
            }
        }
    }
    out
}

pub(super) fn per_thousand(n: f64, readings: u64) -> f64 {
    traffic_core::mean::mean(n * 1000.0, readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_summed_per_function_and_table_and_told_read_from_write() {
        let mut ingest = FunctionUsage::default();
        for (op, units) in [
            ("state:BatchWriteItem", 8.0),
            ("state:TransactWriteItems", 4.0),
            ("state:BatchGetItem", 2.0),
            ("results:UpdateItem", 1.0),
        ] {
            ingest.by_operation.insert(
                op.to_owned(),
                traffic_aws::metrics::OperationUsage { requests: 1, units },
            );
        }
        let t = by_table(&BTreeMap::from([("ingest".to_owned(), ingest)]), 2_000);
        assert_eq!(
            t["ingest:state"],
            TableUsage {
                write_units: 6.0,
                read_units: 1.0
            }
        );
        assert_eq!(
            t["ingest:results"],
            TableUsage {
                write_units: 0.5,
                read_units: 0.0
            }
        );
    }
}
