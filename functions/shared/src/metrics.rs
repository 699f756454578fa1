//! CloudWatch metrics in the embedded metric format (EMF), written with AWS's `metrique`.
//!
//! Every function writes one EMF line per unit of work to standard output, which Lambda sends
//! to CloudWatch Logs, where the metrics are extracted (no API call, no extra permission):
//! `ingest` and `fault` one per batch, `merge` one per run, `api` one per request. The
//! figures are the ones the functions already count for their logs and `/api/stats`.
//!
//! Namespace [`NAMESPACE`] (`TRAFFIC_METRICS_NAMESPACE` overrides it: one per stack when two
//! stacks share an account); dimensions `Function` (`ingest`, `fault`, `merge`, `api`) and, for
//! `api`, `Route` and `Status` (the status class, `2xx` ... `5xx`), each in its own set with
//! `Function` so that the metric count stays at routes + classes, not their product (the pair
//! is in every line, for Logs Insights). Every metric, its unit and emitter: `docs/aws.md`,
//! "Metrics".
//!
//! A [`Metrics`] is the emitter the handlers are given: [`Metrics::off`] by default (the
//! in-process modes and tests do not write metric lines to the terminal),
//! [`Metrics::from_config`] in the Lambda mains (on inside Lambda or with
//! `TRAFFIC_METRICS=emf`), [`Metrics::capture`] in tests.

use metrique::emf::Emf;
use metrique::emf::flags::NoMetric;
use metrique::unit::{Count, Millisecond};
use metrique::unit_of_work::metrics;
use metrique::writer::sink::FlushImmediatelyBuilder;
use metrique::writer::{AnyEntrySink, BoxEntrySink, FormatExt};
use metrique::{CloseValue, InflectableEntry, RootMetric};
use std::sync::{Arc, Mutex};

/// The CloudWatch namespace of the metrics, unless `TRAFFIC_METRICS_NAMESPACE` says otherwise.
pub const NAMESPACE: &str = "Traffic";

/// Where a function's metric lines go: nowhere, standard output, or a capture.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    sink: Option<BoxEntrySink>,
}

impl Metrics {
    /// No metrics (the default).
    pub fn off() -> Self {
        Self::default()
    }

    /// EMF lines under `namespace` on standard output (Lambda's log stream).
    pub fn stdout(namespace: &str) -> Self {
        Self::to_writer(namespace, std::io::stdout())
    }

    /// EMF lines under `namespace` written to `out`, one entry a line, as each is emitted.
    pub fn to_writer(namespace: &str, out: impl std::io::Write + Send + Sync + 'static) -> Self {
        let stream = Emf::builder(namespace.to_owned(), vec![vec![]])
            .build()
            .output_to(out);
        Self {
            sink: Some(FlushImmediatelyBuilder::new().build_boxed(stream)),
        }
    }

    /// EMF lines under `namespace` kept in memory, for tests to read back.
    pub fn capture(namespace: &str) -> (Self, Captured) {
        let captured = Captured::default();
        (Self::to_writer(namespace, captured.clone()), captured)
    }

    /// As the configuration says: on standard output when `metrics` is set (inside Lambda
    /// unless `TRAFFIC_METRICS=off`, or with `TRAFFIC_METRICS=emf`), off otherwise.
    pub fn from_config(config: &crate::Config) -> Self {
        if config.metrics {
            Self::stdout(&config.metrics_namespace)
        } else {
            Self::off()
        }
    }

    /// Whether lines are written at all (callers skip measuring when not).
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes `m`'s line, if lines are written.
    fn append<E: CloseValue<Closed: InflectableEntry + Send + 'static>>(&self, m: E) {
        if let Some(sink) = &self.sink {
            sink.append_any(RootMetric::<E>::new(m.close()));
        }
    }

    /// Writes one `ingest` batch's line.
    pub fn ingest(&self, m: IngestMetrics) {
        self.append(m);
    }

    /// Writes one `fault` batch's line.
    pub fn fault(&self, m: FaultMetrics) {
        self.append(m);
    }

    /// Writes one `merge` run's line.
    pub fn merge(&self, m: MergeMetrics) {
        self.append(m);
    }

    /// Writes one `api` request's line.
    pub fn request(&self, m: RequestMetrics) {
        self.append(m);
    }
}

/// Metric lines written to memory ([`Metrics::capture`]).
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("capture poisoned"))?;
        b.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Latency from a record's arrival in the stream to its handling: largest and mean, ms
/// (absent for an empty batch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArrivalLatency {
    /// The largest, ms.
    pub max_ms: Option<u64>,
    /// The mean, ms.
    pub mean_ms: Option<f64>,
}

impl ArrivalLatency {
    /// From a [`traffic_ports::StatsSample`]'s sum and maximum over its records.
    pub fn of(sample: &traffic_ports::StatsSample) -> Self {
        if sample.records == 0 {
            return Self::default();
        }
        Self {
            max_ms: Some(sample.latency_ms_max),
            mean_ms: Some(sample.mean_latency_ms()),
        }
    }
}

/// What the line of every `ingest` and `fault` batch ends with.
#[metrics(subfield)]
#[derive(Debug, Default)]
pub struct BatchFigures {
    /// Shards that failed: their first record is reported for retry by the event source
    /// mapping.
    #[metrics(unit = Count)]
    pub failed_shards: u64,
    /// Largest time from a record's arrival in the stream to the batch's end.
    #[metrics(unit = Millisecond)]
    pub latency_max: Option<u64>,
    /// Mean of those times.
    #[metrics(unit = Millisecond)]
    pub latency_mean: Option<f64>,
    /// DynamoDB write capacity units the batch consumed.
    pub write_units: f64,
    /// DynamoDB read capacity units the batch consumed.
    pub read_units: f64,
}

impl BatchFigures {
    /// The figures of a batch whose statistics sample is `sample` and of which
    /// `failed_shards` shards failed.
    pub fn of(sample: &traffic_ports::StatsSample, failed_shards: u64) -> Self {
        let latency = ArrivalLatency::of(sample);
        Self {
            failed_shards,
            latency_max: latency.max_ms,
            latency_mean: latency.mean_ms,
            write_units: sample.write_units,
            read_units: sample.read_units,
        }
    }
}

/// One `ingest` batch.
#[metrics(rename_all = "PascalCase", emf::dimension_sets = [["Function"]])]
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Always `ingest`.
    pub function: &'static str,
    /// Records in the batch.
    #[metrics(unit = Count)]
    pub records: u64,
    /// Readings folded into the windows.
    #[metrics(unit = Count)]
    pub accepted: u64,
    /// Records that are not a usable reading (invalid, unknown intersection or light, another
    /// partition key or shard).
    #[metrics(unit = Count)]
    pub rejected: u64,
    /// Of those, records an explicit hash key put on the wrong shard.
    #[metrics(unit = Count)]
    pub misrouted: u64,
    /// Readings whose pane had closed.
    #[metrics(unit = Count)]
    pub late: u64,
    /// Readings stamped after their arrival plus the allowed clock skew.
    #[metrics(unit = Count)]
    pub future: u64,
    /// Readings already counted (the same light and time).
    #[metrics(unit = Count)]
    pub duplicates: u64,
    /// Records already applied by an earlier delivery of the batch.
    #[metrics(unit = Count)]
    pub redelivered: u64,
    /// Commits refused because the stored state moved (the batch folded again).
    #[metrics(unit = Count)]
    pub conflicts: u64,
    /// What every batch's line ends with.
    #[metrics(flatten)]
    pub batch: BatchFigures,
}

/// One `fault` batch.
#[metrics(rename_all = "PascalCase", emf::dimension_sets = [["Function"]])]
#[derive(Debug, Default)]
pub struct FaultMetrics {
    /// Always `fault`.
    pub function: &'static str,
    /// Records in the batch.
    #[metrics(unit = Count)]
    pub records: u64,
    /// Lamp alarms raised (recorded and published now).
    #[metrics(unit = Count)]
    pub alarms_raised: u64,
    /// Lamp alarms recorded but held down (a flapping lamp).
    #[metrics(unit = Count)]
    pub alarms_held: u64,
    /// Open alarms resolved by their lamp reporting ok.
    #[metrics(unit = Count)]
    pub alarms_resolved: u64,
    /// Alarms published to SNS: the raised ones, and held-down ones whose hold-down ended.
    #[metrics(unit = Count)]
    pub alarms_published: u64,
    /// Lamp failures after the first of a lamp in one batch (counted, not alarmed).
    #[metrics(unit = Count)]
    pub flaps: u64,
    /// Readings skipped (another partition key or shard, stamped in the future).
    #[metrics(unit = Count)]
    pub skipped: u64,
    /// Readings dropped as too frequent.
    #[metrics(unit = Count)]
    pub too_frequent: u64,
    /// What every batch's line ends with.
    #[metrics(flatten)]
    pub batch: BatchFigures,
}

/// One `merge` run (a run that stood down for another's lease has only `RunsSkipped`).
#[metrics(rename_all = "PascalCase", emf::dimension_sets = [["Function"]])]
#[derive(Debug, Default)]
pub struct MergeMetrics {
    /// Always `merge`.
    pub function: &'static str,
    /// 1 when another run held the lease and this one did nothing.
    #[metrics(unit = Count)]
    pub runs_skipped: u64,
    /// Wall time of the run.
    #[metrics(unit = Millisecond)]
    pub run_time: Option<u64>,
    /// Windows given their final result.
    #[metrics(unit = Count)]
    pub windows_closed: Option<u64>,
    /// Open windows given a provisional result.
    #[metrics(unit = Count)]
    pub provisional_results: Option<u64>,
    /// Intersections retimed.
    #[metrics(unit = Count)]
    pub retimings: Option<u64>,
    /// How far the closed mark (the end of the last closed pane) is behind now.
    #[metrics(unit = Millisecond)]
    pub closed_mark_lag: Option<u64>,
    /// 1 when the run stopped short of the watermark (catching up after a stall).
    #[metrics(unit = Count)]
    pub catching_up: Option<u64>,
    /// Shards left out of the watermark as idle.
    #[metrics(unit = Count)]
    pub shards_idle: Option<u64>,
    /// End to end: largest time from a reading's arrival in the stream to the first result
    /// (of the shortest window length measured) that includes it.
    #[metrics(unit = Millisecond)]
    pub result_latency_max: Option<u64>,
    /// Mean of those times.
    #[metrics(unit = Millisecond)]
    pub result_latency_mean: Option<f64>,
    /// Largest time from a reading's arrival to the retiming it caused.
    #[metrics(unit = Millisecond)]
    pub retiming_latency_max: Option<u64>,
    /// Sensor-silent alarms raised.
    #[metrics(unit = Count)]
    pub silence_alarms_raised: Option<u64>,
    /// Sensor-silent alarms resolved.
    #[metrics(unit = Count)]
    pub silence_alarms_resolved: Option<u64>,
    /// Held-down lamp alarms published by the sweep.
    #[metrics(unit = Count)]
    pub alarms_published: Option<u64>,
    /// DynamoDB write capacity units the run consumed.
    pub write_units: Option<f64>,
    /// DynamoDB read capacity units the run consumed.
    pub read_units: Option<f64>,
}

/// One `api` request.
#[metrics(
    rename_all = "PascalCase",
    emf::dimension_sets = [["Function", "Route"], ["Function", "Status"]]
)]
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Always `api`.
    pub function: &'static str,
    /// The method and the route's template (`GET /api/intersections/{id}`); `unmatched` for
    /// a path that is no route.
    pub route: String,
    /// The status class: `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: &'static str,
    /// The status code itself (a property, not a metric).
    #[metrics(flags(NoMetric))]
    pub status_code: u64,
    /// Always 1: sums to the request count.
    #[metrics(unit = Count)]
    pub requests: u64,
    /// 1 for a 5xx answer.
    #[metrics(unit = Count)]
    pub server_errors: u64,
    /// Time from the request to its response.
    #[metrics(unit = Millisecond)]
    pub latency: f64,
}

/// The status class of a status code (`2xx` ...), as the `Status` dimension has it.
pub fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_line_is_emf_with_the_namespace_and_the_function_dimension() {
        let (metrics, captured) = Metrics::capture("Test");
        metrics.ingest(IngestMetrics {
            function: "ingest",
            records: 4,
            rejected: 3,
            ..IngestMetrics::default()
        });
        let lines = captured.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        for part in [
            r#""Namespace":"Test""#,
            r#""Dimensions":[["Function"]]"#,
            r#""Rejected":3"#,
            r#""Function":"ingest""#,
            r#"{"Name":"Rejected","Unit":"Count"}"#,
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
        assert!(!line.contains("LatencyMax"), "absent values are left out");
    }

    #[test]
    fn off_writes_nothing_and_says_so() {
        let m = Metrics::off();
        assert!(!m.is_on());
        m.merge(MergeMetrics::default());
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
