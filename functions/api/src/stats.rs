//! `/api/stats`: throughput and latency per minute and over the period, per function and per
//! measured series (the merge's runs, the latency from a reading's arrival to the first result
//! of each window length that includes it and to the retiming it caused: see
//! `merge::figures`), and the ingest counters per shard.

use crate::Shared;
use crate::error::ApiResult;
use crate::request::Params;
use crate::request::int_param;
use crate::request::params;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde::Serialize;
use traffic_core::pane::Counters;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::StatsSample;

/// One function's figures over one minute.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatsPoint {
    /// Start of the minute (RFC 3339).
    pub minute: String,
    /// The same, epoch ms.
    pub minute_ms: i64,
    /// The function's figures summed over the minute.
    #[serde(flatten)]
    pub totals: FunctionTotals,
}

/// One function's (or series') figures summed over a minute or over the period asked for.
#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionTotals {
    /// `ingest`, `fault`, `merge`, `retiming` or `result_<length>` (`result_15m`, ...).
    pub function: String,
    /// Invocations (runs, for `merge`).
    pub invocations: u64,
    /// Records: readings for `ingest`, `fault`, `result_*` and `retiming`, runs for `merge`.
    pub records: u64,
    /// Readings accepted (ingest), alarms raised (fault), windows closed (merge),
    /// intersections retimed (retiming).
    pub accepted: u64,
    /// Mean latency per record, ms: arrival to processing (ingest, fault), a run's wall time
    /// (merge), arrival to the first result of that length (result_*), arrival to the
    /// retiming (retiming).
    pub mean_latency_ms: f64,
    /// The largest, ms.
    pub max_latency_ms: u64,
}

impl FunctionTotals {
    /// The figures of `function` that `s` sums.
    fn of(function: String, s: &StatsSample) -> Self {
        Self {
            function,
            invocations: s.invocations,
            records: s.records,
            accepted: s.accepted,
            mean_latency_ms: s.mean_latency_ms(),
            max_latency_ms: s.latency_ms_max,
        }
    }
}

/// One shard's progress.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardView {
    /// The shard.
    pub shard_id: traffic_core::ShardId,
    /// Greatest event time it accepted (RFC 3339).
    pub max_event: Option<String>,
    /// What happened to its records.
    pub counters: CountersView,
}

/// Record counters (the same fields as the engine's).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CountersView {
    /// Readings folded into the state.
    pub accepted: u64,
    /// Malformed, invalid or unknown readings.
    pub rejected: u64,
    /// Readings whose window had closed.
    pub late: u64,
    /// Readings seen before.
    pub duplicates: u64,
    /// Readings stamped more than the allowed clock skew after their arrival.
    pub future: u64,
    /// Records delivered: the sum of the above.
    pub records: u64,
}

impl From<&Counters> for CountersView {
    fn from(c: &Counters) -> Self {
        CountersView {
            accepted: c.accepted,
            rejected: c.rejected,
            late: c.late,
            duplicates: c.duplicates,
            future: c.future,
            records: c.records(),
        }
    }
}

/// Throughput and latency over time, and the ingest counters.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatsView {
    /// When this was read (RFC 3339).
    pub now: String,
    /// Start of the first minute covered (RFC 3339).
    pub since: String,
    /// Per minute and function, oldest first.
    pub series: Vec<StatsPoint>,
    /// Per function over the whole period, by name.
    pub functions: Vec<FunctionTotals>,
    /// Counters summed over every shard, with what compaction found (duplicates, too frequent
    /// readings) taken out of `accepted`: `records` = accepted + rejected + late + duplicates +
    /// future.
    pub counters: CountersView,
    /// Each shard's progress.
    pub shards: Vec<ShardView>,
}

/// `GET /api/stats?minutes=N`: the last `N` minutes of figures (default 60, at most 1440).
pub async fn stats(State(state): State<Shared>, q: Params) -> ApiResult<Json<StatsView>> {
    let q = params(q)?;
    let minutes = int_param(&q, "minutes", 60, 1, 1440)? as i64;
    let now = state.ports.clock.now_ms();
    let since = now - now.rem_euclid(60_000) - (minutes - 1) * 60_000;
    let samples = state.ports.stats.stats(since).await?;
    let metas = state.ports.state.shard_metas().await?;
    let mut total = Counters::default();
    for m in &metas {
        total.add(&m.counters);
    }
    // Duplicates and too frequent readings found when the merge compacted panes.
    let total = total.settle(&state.ports.state.merge_state().await?.compaction);
    let mut by_function = std::collections::BTreeMap::<String, StatsSample>::new();
    for s in &samples {
        by_function
            .entry(s.function.to_string())
            .or_insert_with(|| StatsSample::new(s.function, s.minute_ms))
            .add(s);
    }
    Ok(Json(StatsView {
        now: format_rfc3339_ms(now),
        since: format_rfc3339_ms(since),
        series: samples
            .iter()
            .map(|s| StatsPoint {
                minute: format_rfc3339_ms(s.minute_ms),
                minute_ms: s.minute_ms,
                totals: FunctionTotals::of(s.function.to_string(), s),
            })
            .collect(),
        functions: by_function
            .into_iter()
            .map(|(f, s)| FunctionTotals::of(f, &s))
            .collect(),
        counters: CountersView::from(&total),
        shards: metas
            .iter()
            .map(|m| ShardView {
                shard_id: m.shard_id.clone(),
                max_event: m.max_event_ms.map(format_rfc3339_ms),
                counters: CountersView::from(&m.counters),
            })
            .collect(),
    }))
}
