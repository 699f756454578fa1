//! The price table the bill is computed from (`infra/prices.json`, which `infra/cost.py` reads
//! too), with the duration model of the functions.

use super::report::FunctionUsage;

/// The price table shared with `infra/cost.py`.
pub const PRICES_JSON: &str = include_str!("../../../../infra/prices.json");

/// Prices, $ per unit.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Prices {
    /// What the prices are (region, date).
    pub date: String,
    /// A provisioned shard-hour.
    pub kinesis_shard_hour: f64,
    /// A 25 KB PUT payload unit (one per reading).
    pub kinesis_put_unit: f64,
    /// A GB-second of an arm64 function.
    pub lambda_gb_s_arm: f64,
    /// A function invocation.
    pub lambda_request: f64,
    /// An on-demand write request unit.
    pub ddb_wru: f64,
    /// An on-demand read request unit.
    pub ddb_rru: f64,
    /// How Lambda's billed seconds are estimated.
    pub lambda_duration: LambdaDuration,
}

impl Prices {
    /// The shared table.
    pub fn shared() -> anyhow::Result<Self> {
        Ok(serde_json::from_str(PRICES_JSON)?)
    }
}

/// How Lambda's billed seconds are estimated (the price table's `lambda_duration`, which
/// `infra/cost.py` reads too): a handler's run time against an emulator is mostly the
/// emulator's round trips, which AWS answers in milliseconds, so it is not what is priced.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct LambdaDuration {
    /// An `ingest` or `fault` invocation's time besides folding its readings, s.
    pub batch_s: f64,
    /// Readings folded per second on a whole vCPU.
    pub fold_readings_per_vcpu_s: f64,
    /// A function's memory, MB, per vCPU it gets.
    pub mb_per_vcpu: f64,
    /// A merge run's time besides moving its items, s.
    pub merge_run_s: f64,
    /// Bytes of items a merge run reads and writes per second.
    pub merge_bytes_per_s: f64,
}

impl LambdaDuration {
    /// The seconds Lambda would bill for what function `name` (at `mb` MB) did in a run of
    /// `readings` readings.
    pub fn billed_seconds(&self, name: &str, u: &FunctionUsage, readings: u64, mb: u64) -> f64 {
        let calls = u.invocations as f64;
        if u.invocations == 0 {
            0.0
        } else if name == "merge" {
            let bytes = u.read_units * 4096.0 + u.write_units * 1024.0;
            calls * self.merge_run_s + bytes / self.merge_bytes_per_s
        } else {
            let vcpu = (mb as f64 / self.mb_per_vcpu).min(1.0);
            calls * self.batch_s + readings as f64 / self.fold_readings_per_vcpu_s / vcpu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_priced_by_the_shared_duration_model() {
        let d = Prices::shared()
            .unwrap_or_else(|e| panic!("{e}"))
            .lambda_duration;
        let u = |invocations, read_units, write_units| FunctionUsage {
            invocations,
            read_units,
            write_units,
            ..FunctionUsage::default()
        };
        // 30 batches of 120,000 readings at 512 MB (0.29 of a vCPU): 4.5 s + 0.41 s.
        let ingest = d.billed_seconds("ingest", &u(30, 0.0, 0.0), 120_000, 512);
        assert!(
            (ingest - (4.5 + 0.12 * 1769.0 / 512.0)).abs() < 1e-9,
            "{ingest}"
        );
        // A merge: 1 s a run, and its items at 50 MB/s (4 KB a read unit, 1 KB a write unit).
        let merge = d.billed_seconds("merge", &u(6, 1000.0, 2000.0), 120_000, 2048);
        assert!(
            (merge - (6.0 + (4_096_000.0 + 2_048_000.0) / 5e7)).abs() < 1e-9,
            "{merge}"
        );
        assert_eq!(
            d.billed_seconds("fault", &u(0, 0.0, 0.0), 120_000, 256),
            0.0
        );
    }

    #[test]
    fn the_shared_price_table_parses() {
        let p = Prices::shared().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.ddb_wru, 0.625e-6);
        assert_eq!(p.ddb_rru, 0.125e-6);
    }
}
