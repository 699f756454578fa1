//! The merge's figures in the statistics (`/api/stats`), one sample per series a run feeds:
//!
//! | function | invocations | records | accepted | latency |
//! |---|---|---|---|---|
//! | `merge` | runs | runs | windows closed | the run's wall time |
//! | `result_<length>` (`result_15m`, ...) | runs that measured it | readings first included in a result of that length | — | from a reading's arrival in the stream to that result |
//! | `retiming` | retiming rounds | readings of the window retimed from | intersections retimed | from a reading's arrival to the retiming it caused |
//!
//! A run another one stood down for (the lease) records nothing. Latencies are in the clock
//! the system runs on (simulated time in `traffic local` and `traffic sumo`), run times in
//! wall time.

use crate::MergeReport;
use traffic_core::latency::Latency;
use traffic_ports::{StatsSample, Usage};

/// The statistics series of a window length's arrival-to-result latency.
pub fn result_series(length: traffic_core::window::WindowLength) -> String {
    format!("result_{length}")
}

fn latency_sample(function: String, minute_ms: i64, l: &Latency, accepted: u64) -> StatsSample {
    StatsSample {
        function,
        minute_ms,
        invocations: 1,
        records: l.readings,
        accepted,
        latency_ms_sum: l.sum_ms,
        latency_ms_max: l.max_ms,
        ..StatsSample::default()
    }
}

/// The samples of one run, in the minute starting at `minute_ms`, with the capacity it used.
pub fn samples(report: &MergeReport, minute_ms: i64, used: &Usage) -> Vec<StatsSample> {
    if report.skipped.is_some() {
        return Vec::new();
    }
    let mut out = vec![StatsSample {
        function: "merge".into(),
        minute_ms,
        invocations: 1,
        records: 1,
        accepted: report.closed.len() as u64,
        latency_ms_sum: report.run_ms,
        latency_ms_max: report.run_ms,
        read_units: used.read_units,
        write_units: used.write_units,
    }];
    for (len, l) in &report.latencies.to_result {
        out.push(latency_sample(result_series(*len), minute_ms, l, 0));
    }
    let retiming = &report.latencies.to_retiming;
    if retiming.readings > 0 || report.retimed > 0 {
        out.push(latency_sample(
            "retiming".into(),
            minute_ms,
            retiming,
            report.retimed as u64,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use traffic_core::latency::RunLatencies;
    use traffic_core::window::WindowLength;

    #[test]
    fn a_run_gives_its_own_sample_and_one_per_latency_it_measured() {
        let m15 = WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m"));
        let l = Latency {
            readings: 4,
            sum_ms: 400,
            max_ms: 150,
        };
        let report = MergeReport {
            run_ms: 12,
            retimed: 3,
            latencies: RunLatencies {
                to_result: BTreeMap::from([(m15, l)]),
                to_retiming: l,
            },
            ..MergeReport::default()
        };
        let s = samples(&report, 60_000, &Usage::default());
        let names: Vec<_> = s.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["merge", "result_15m", "retiming"]);
        assert_eq!((s[0].records, s[0].latency_ms_sum), (1, 12));
        assert_eq!((s[1].records, s[1].mean_latency_ms()), (4, 100.0));
        assert_eq!((s[2].accepted, s[2].latency_ms_max), (3, 150));
    }

    #[test]
    fn a_run_that_stood_down_records_nothing() {
        let report = MergeReport {
            skipped: Some("lease".into()),
            ..MergeReport::default()
        };
        assert!(samples(&report, 0, &Usage::default()).is_empty());
    }
}
