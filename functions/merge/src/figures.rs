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
//!
//! The same run gives one CloudWatch metric line ([`metric_line`]; `docs/aws.md`, "Metrics").

use crate::MergeReport;
use traffic_core::latency::Latency;
use traffic_functions::metrics::MergeMetrics;
use traffic_ports::{Series, StatsSample, Usage};

fn latency_sample(function: Series, minute_ms: i64, l: &Latency, accepted: u64) -> StatsSample {
    StatsSample {
        invocations: 1,
        records: l.readings,
        accepted,
        latency_ms_sum: l.sum_ms,
        latency_ms_max: l.max_ms,
        ..StatsSample::new(function, minute_ms)
    }
}

/// The samples of one run, in the minute starting at `minute_ms`, with the capacity it used.
pub fn samples(report: &MergeReport, minute_ms: i64, used: &Usage) -> Vec<StatsSample> {
    if report.skipped.is_some() {
        return Vec::new();
    }
    let mut out = vec![StatsSample {
        invocations: 1,
        records: 1,
        accepted: report.closed.len() as u64,
        latency_ms_sum: report.run_ms,
        latency_ms_max: report.run_ms,
        read_units: used.read_units,
        write_units: used.write_units,
        ..StatsSample::new(Series::Merge, minute_ms)
    }];
    for (len, l) in &report.latencies.to_result {
        out.push(latency_sample(Series::Result(*len), minute_ms, l, 0));
    }
    let retiming = &report.latencies.to_retiming;
    if retiming.readings > 0 || report.retimed > 0 {
        out.push(latency_sample(
            Series::Retiming,
            minute_ms,
            retiming,
            report.retimed as u64,
        ));
    }
    out
}

/// The metric line of a run at `now_ms` that used `used`: its counts, its run time, the closed
/// mark's lag behind now, and the end-to-end latency to the first result of the shortest window
/// length measured. A run that stood down says only that.
pub fn metric_line(report: &MergeReport, now_ms: i64, used: &Usage) -> MergeMetrics {
    if report.skipped.is_some() {
        return MergeMetrics {
            function: "merge",
            runs_skipped: 1,
            ..MergeMetrics::default()
        };
    }
    let first_result = report.latencies.to_result.values().find(|l| l.readings > 0);
    let retiming = &report.latencies.to_retiming;
    let count = |n: usize| Some(n as u64);
    MergeMetrics {
        function: "merge",
        runs_skipped: 0,
        run_time: Some(report.run_ms),
        windows_closed: count(report.closed.len()),
        provisional_results: count(report.provisional),
        retimings: count(report.retimed),
        closed_mark_lag: report
            .closed_ms
            .map(|c| u64::try_from(now_ms.saturating_sub(c)).unwrap_or(0)),
        catching_up: Some(u64::from(report.catching_up)),
        shards_idle: count(report.shards_idle),
        result_latency_max: first_result.map(|l| l.max_ms),
        result_latency_mean: first_result.map(Latency::mean_ms),
        retiming_latency_max: (retiming.readings > 0).then_some(retiming.max_ms),
        silence_alarms_raised: count(report.silence.raised.len()),
        silence_alarms_resolved: count(report.silence.resolved.len()),
        alarms_published: count(report.due_published.len()),
        write_units: Some(used.write_units),
        read_units: Some(used.read_units),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use traffic_core::latency::RunLatencies;
    use traffic_core::window::WindowLength;

    /// `readings` whose latencies summed to `sum_ms`, the largest `max_ms`.
    fn latency(readings: u64, sum_ms: u64, max_ms: u64) -> Latency {
        Latency {
            readings,
            sum_ms,
            max_ms,
        }
    }

    /// A run of 12 ms that retimed 3 intersections: `to_result` the latency of its 15-minute
    /// results, `to_retiming` that of its retiming.
    fn run(to_result: Latency, to_retiming: Latency) -> MergeReport {
        let m15 = WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m"));
        MergeReport {
            run_ms: 12,
            retimed: 3,
            latencies: RunLatencies {
                to_result: BTreeMap::from([(m15, to_result)]),
                to_retiming,
            },
            ..MergeReport::default()
        }
    }

    #[test]
    fn a_run_gives_its_own_sample_and_one_per_latency_it_measured() {
        let l = latency(4, 400, 150);
        let report = run(l, l);
        let s = samples(&report, 60_000, &Usage::default());
        let names: Vec<_> = s.iter().map(|s| s.function.to_string()).collect();
        assert_eq!(names, ["merge", "result_15m", "retiming"]);
        assert_eq!((s[0].records, s[0].latency_ms_sum), (1, 12));
        assert_eq!((s[1].records, s[1].mean_latency_ms()), (4, 100.0));
        assert_eq!((s[2].accepted, s[2].latency_ms_max), (3, 150));
    }

    #[test]
    fn a_run_gives_one_metric_line_with_the_closed_mark_behind_now() {
        let report = MergeReport {
            closed_ms: Some(1_000),
            ..run(latency(2, 300, 200), Latency::default())
        };
        let m = metric_line(&report, 61_000, &Usage::default());
        assert_eq!(m.closed_mark_lag, Some(60_000));
        assert_eq!((m.run_time, m.retimings), (Some(12), Some(3)));
        assert_eq!(m.result_latency_max, Some(200));
        assert_eq!(m.result_latency_mean, Some(150.0));
        assert_eq!(m.retiming_latency_max, None);
        let skipped = MergeReport {
            skipped: Some("lease".into()),
            ..MergeReport::default()
        };
        let m = metric_line(&skipped, 0, &Usage::default());
        assert_eq!((m.runs_skipped, m.run_time), (1, None));
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
