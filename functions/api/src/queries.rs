//! What the operators read: results per window length, timings and their history, alarms,
//! statistics, and the engine configuration the dashboard needs.

use crate::error::{ApiError, ApiResult};
use crate::intersections::parse_id;
use crate::{Shared, now_ms};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use traffic_core::city::{Intersection, Phase};
use traffic_core::lamps::Alarm;
use traffic_core::pane::Counters;
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::webster::WebsterConfig;
use traffic_core::window::WindowLength;
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::AlarmRecord;

/// The query string as a map, or a 400 in the API's error form.
pub type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

pub(crate) fn params(q: Params) -> ApiResult<HashMap<String, String>> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad("query", e.body_text()))
}

/// An integer query parameter within `min..=max`, `default` when absent.
pub(crate) fn int_param(
    q: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> ApiResult<u64> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                name,
                format!("must be an integer {min}..={max}, got {v:?}"),
            )),
        },
    }
}

/// The engine parameters the dashboard shows and computes with.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigView {
    /// Window lengths, ascending (`15m`, `1h`, `24h`).
    pub windows: Vec<String>,
    /// Length of the speed ranking.
    pub top_k: usize,
    /// Allowed lateness of readings, ms.
    pub allowed_lateness_ms: i64,
    /// Webster's parameters (the yellow time completes a phase's cycle).
    pub webster: WebsterConfig,
    /// Whether writes need a bearer token (`false`: only an API Gateway authorizer admits them).
    pub token_required: bool,
}

/// `GET /api/config`.
pub async fn config(State(state): State<Shared>) -> Json<ConfigView> {
    Json(ConfigView {
        windows: state.cfg.windows().iter().map(|w| w.to_string()).collect(),
        top_k: state.cfg.top_k,
        allowed_lateness_ms: state.cfg.allowed_lateness_ms,
        webster: state.cfg.webster.clone(),
        token_required: state.token.as_deref().is_some_and(|t| !t.is_empty()),
    })
}

/// An intersection's timings.
#[derive(Debug, Serialize, Deserialize)]
pub struct TimingView {
    /// Cycle length, s: the longest phase's green + yellow + red.
    pub cycle_s: f64,
    /// The window the timings were computed from, when the merge retimed them.
    pub retimed_from: Option<String>,
    /// The phases with their green and red.
    pub phases: Vec<Phase>,
}

fn timing_view(phases: &[Phase], retimed_from: Option<String>, yellow_s: f64) -> TimingView {
    TimingView {
        cycle_s: traffic_core::city::cycle_s(phases, yellow_s),
        retimed_from,
        phases: phases.to_vec(),
    }
}

/// One intersection's current timings.
#[derive(Debug, Serialize, Deserialize)]
pub struct CurrentTiming {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// Its timings.
    #[serde(flatten)]
    pub timing: TimingView,
}

/// Default and largest page of the city-wide lists (about 0.5 KB per intersection: well
/// inside Lambda's 6 MB response).
const PAGE_DEFAULT: u64 = 1000;
const PAGE_MAX: u64 = 5000;

/// One page of intersections for a city-wide list at `path`, from the `limit` and `after`
/// query parameters, and the response with a `Link: <…>; rel="next"` header when more follow.
pub(crate) async fn city_page<T: Serialize>(
    state: &Shared,
    q: Params,
    path: &str,
    view: impl Fn(Intersection) -> T,
) -> ApiResult<Response> {
    let q = params(q)?;
    let limit = int_param(&q, "limit", PAGE_DEFAULT, 1, PAGE_MAX)? as usize;
    let after = q
        .get("after")
        .map(|a| IntersectionId::parse(a).map_err(|e| ApiError::bad("after", e.to_string())))
        .transpose()?;
    let (xs, next) = state
        .ports
        .registry
        .intersections_page(after.as_ref(), limit)
        .await?;
    let items: Vec<T> = xs.into_iter().map(view).collect();
    let mut resp = Json(items).into_response();
    if let Some(next) = next {
        // Ids are letters, digits and `-_.:`, all safe in a query string.
        let link = format!("<{path}?limit={limit}&after={next}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `GET /api/timings?limit=N&after=ID`: intersections' current timings, a page at a time
/// (see [`city_page`]).
pub async fn timings(State(state): State<Shared>, q: Params) -> ApiResult<Response> {
    let yellow = state.cfg.webster.yellow_s;
    city_page(&state, q, "/api/timings", |x| CurrentTiming {
        timing: timing_view(&x.phases, x.retimed_from.clone(), yellow),
        intersection_id: x.id,
    })
    .await
}

/// An intersection's timings now and how they changed.
#[derive(Debug, Serialize, Deserialize)]
pub struct TimingHistoryView {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The timings in force.
    pub current: TimingView,
    /// Each retiming, oldest first.
    pub history: Vec<TimingView>,
}

/// `GET /api/intersections/{id}/timings`: current timings and their history.
pub async fn intersection_timings(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<TimingHistoryView>> {
    let id = parse_id(&id)?;
    let x: Intersection = state
        .ports
        .registry
        .intersection(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("id", format!("no intersection {id}")))?;
    let yellow = state.cfg.webster.yellow_s;
    let history = state.ports.registry.timing_history(&id).await?;
    Ok(Json(TimingHistoryView {
        intersection_id: id,
        current: timing_view(&x.phases, x.retimed_from.clone(), yellow),
        history: history
            .into_iter()
            .map(|c| timing_view(&c.phases, Some(c.from.to_string()), yellow))
            .collect(),
    }))
}

/// The newest window of each length.
#[derive(Debug, Serialize, Deserialize)]
pub struct CurrentResults {
    /// The configured window lengths, ascending.
    pub windows: Vec<String>,
    /// Per length, its newest window (open or closed), or `null` before any result.
    pub current: BTreeMap<String, Option<WindowResult>>,
}

/// `GET /api/results`: the newest window of every length (top-10, global median and the
/// intersections above it).
pub async fn current_results(State(state): State<Shared>) -> ApiResult<Json<CurrentResults>> {
    let mut windows = Vec::new();
    let mut current = BTreeMap::new();
    for &len in state.cfg.windows() {
        let newest = state.ports.results.recent_results(len, 1).await?;
        windows.push(len.to_string());
        current.insert(len.to_string(), newest.into_iter().next());
    }
    Ok(Json(CurrentResults { windows, current }))
}

/// `GET /api/network`: every intersection's mean speed, vehicles and readings over the newest
/// window of the shortest length (the map's colours); `null` until the merge has built one.
pub async fn network(State(state): State<Shared>) -> ApiResult<Json<Option<NetworkState>>> {
    Ok(Json(state.ports.results.network().await?))
}

/// Recent windows of one length.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecentResults {
    /// The window length.
    pub length: String,
    /// Its windows, newest first (the first may still be open).
    pub windows: Vec<WindowResult>,
}

/// `GET /api/results/{length}?limit=N`: the newest `limit` windows of a length (default 12).
pub async fn results(
    State(state): State<Shared>,
    Path(length): Path<String>,
    q: Params,
) -> ApiResult<Json<RecentResults>> {
    let q = params(q)?;
    let limit = int_param(&q, "limit", 12, 1, 1000)? as usize;
    let parsed =
        WindowLength::from_str(&length).map_err(|e| ApiError::bad("length", e.to_string()))?;
    let label = parsed.to_string();
    let recent = state.ports.results.recent_results(parsed, limit).await?;
    if recent.is_empty() && !state.cfg.windows().contains(&parsed) {
        return Err(ApiError::not_found(
            "length",
            format!(
                "no window length {label}; the lengths are {:?}",
                windows(&state)
            ),
        ));
    }
    Ok(Json(RecentResults {
        length: label,
        windows: recent,
    }))
}

fn windows(state: &Shared) -> Vec<String> {
    state.cfg.windows().iter().map(|w| w.to_string()).collect()
}

/// A recorded alarm, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlarmView {
    /// Its stable id (`I-0001#2#green#1767600005000`).
    pub id: String,
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The light.
    pub light: LightIndex,
    /// The broken lamp's colour (`red`, `yellow`, `green`).
    pub lamp: String,
    /// Event time of the first reading that reported it broken (RFC 3339).
    pub ts: String,
    /// The same, epoch ms.
    pub ts_ms: i64,
    /// Where the intersection is, when the sensor sent it.
    pub position: Option<traffic_core::reading::Position>,
    /// Whether it was handed to the publisher (SNS).
    pub published: bool,
    /// When an operator marked it repaired (RFC 3339).
    pub repaired_at: Option<String>,
    /// Whether it is still open (not repaired).
    pub open: bool,
    /// A one-line summary.
    pub text: String,
}

/// The API's view of a stored alarm.
pub fn alarm_view(r: &AlarmRecord) -> AlarmView {
    let a: &Alarm = &r.alarm;
    AlarmView {
        id: a.id(),
        intersection_id: a.intersection_id.clone(),
        light: a.light,
        lamp: a.lamp.as_str().to_owned(),
        ts: format_rfc3339_ms(a.ts_ms),
        ts_ms: a.ts_ms,
        position: a.position,
        published: r.published,
        repaired_at: r.repaired_at.clone(),
        open: r.repaired_at.is_none(),
        text: a.short_text(),
    }
}

/// Alarms and how many are open.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmsView {
    /// Open alarms in the log.
    pub open: usize,
    /// Repaired alarms in the log.
    pub repaired: usize,
    /// The alarms asked for, newest first.
    pub alarms: Vec<AlarmView>,
}

/// `GET /api/alarms?state=open|repaired|all&limit=N`: alarms, newest first (default all, 100).
pub async fn alarms(State(state): State<Shared>, q: Params) -> ApiResult<Json<AlarmsView>> {
    let q = params(q)?;
    let limit = int_param(&q, "limit", 100, 1, 10_000)? as usize;
    let which = q.get("state").map(String::as_str).unwrap_or("all");
    let keep: fn(&AlarmRecord) -> bool = match which {
        "all" => |_| true,
        "open" => |r| r.repaired_at.is_none(),
        "repaired" => |r| r.repaired_at.is_some(),
        other => {
            return Err(ApiError::bad(
                "state",
                format!("must be open, repaired or all, got {other:?}"),
            ));
        }
    };
    let all = state.ports.lamps.alarms().await?;
    let open = all.iter().filter(|r| r.repaired_at.is_none()).count();
    let alarms = all
        .iter()
        .rev()
        .filter(|r| keep(r))
        .take(limit)
        .map(alarm_view)
        .collect();
    Ok(Json(AlarmsView {
        open,
        repaired: all.len() - open,
        alarms,
    }))
}

/// One function's figures over one minute.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatsPoint {
    /// Start of the minute (RFC 3339).
    pub minute: String,
    /// The same, epoch ms.
    pub minute_ms: i64,
    /// `ingest`, `fault` or `merge`.
    pub function: String,
    /// Invocations.
    pub invocations: u64,
    /// Records handled (readings processed, for ingest).
    pub records: u64,
    /// Readings accepted (ingest) or alarms raised (fault).
    pub accepted: u64,
    /// Mean time from arrival in the stream to processing, ms.
    pub mean_latency_ms: f64,
    /// Longest such time, ms.
    pub max_latency_ms: u64,
}

/// One shard's progress.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardView {
    /// The shard.
    pub shard_id: String,
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
}

impl From<&Counters> for CountersView {
    fn from(c: &Counters) -> Self {
        CountersView {
            accepted: c.accepted,
            rejected: c.rejected,
            late: c.late,
            duplicates: c.duplicates,
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
    /// Counters summed over every shard.
    pub counters: CountersView,
    /// Each shard's progress.
    pub shards: Vec<ShardView>,
}

/// `GET /api/stats?minutes=N`: the last `N` minutes of figures (default 60, at most 1440).
pub async fn stats(State(state): State<Shared>, q: Params) -> ApiResult<Json<StatsView>> {
    let q = params(q)?;
    let minutes = int_param(&q, "minutes", 60, 1, 1440)? as i64;
    let now = now_ms();
    let since = now - now.rem_euclid(60_000) - (minutes - 1) * 60_000;
    let samples = state.ports.stats.stats(since).await?;
    let metas = state.ports.state.shard_metas().await?;
    let mut total = Counters::default();
    for m in &metas {
        total.add(&m.counters);
    }
    Ok(Json(StatsView {
        now: format_rfc3339_ms(now),
        since: format_rfc3339_ms(since),
        series: samples
            .iter()
            .map(|s| StatsPoint {
                minute: format_rfc3339_ms(s.minute_ms),
                minute_ms: s.minute_ms,
                function: s.function.clone(),
                invocations: s.invocations,
                records: s.records,
                accepted: s.accepted,
                mean_latency_ms: s.mean_latency_ms(),
                max_latency_ms: s.latency_ms_max,
            })
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
