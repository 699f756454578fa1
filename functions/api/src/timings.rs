//! `/api/timings` and `/api/intersections/{id}/timings`: the timings in force and their
//! history; a cycle is `traffic_core::city::cycle_s`.

use crate::Shared;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::paging::city_page;
use crate::request::IdPath;
use crate::request::Params;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde::Serialize;
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::city::Phase;
use traffic_core::plan::{Plan, plan_of};
use traffic_ports::{ChangedBy, TimingChange};

/// An intersection's timings.
#[derive(Debug, Serialize, Deserialize)]
pub struct TimingView {
    /// Cycle length, s: the first phase's green + yellow + red (`traffic_core::city::cycle_s`).
    pub cycle_s: f64,
    /// The window the timings were computed from, when the merge retimed them.
    pub retimed_from: Option<String>,
    /// The phases with their green and red.
    pub phases: Vec<Phase>,
    /// The timings in force (not the history's): the plan for actuated controllers the
    /// intersection runs (`traffic_core::plan::plan_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// In the history: who or what made the change (`retiming`, `operator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// In the history, for an operator's change: when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// In the history, for an operator's change: who, when the request said (a JWT's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

pub(crate) fn timing_view(
    phases: &[Phase],
    retimed_from: Option<String>,
    yellow_s: f64,
) -> TimingView {
    TimingView {
        cycle_s: traffic_core::city::cycle_s(phases, yellow_s),
        retimed_from,
        phases: phases.to_vec(),
        plan: None,
        by: None,
        at: None,
        operator: None,
    }
}

/// The timings in force of `x`, with its plan.
fn current_view(state: &Shared, x: &Intersection) -> TimingView {
    let yellow = state.cfg.webster.yellow_s;
    TimingView {
        plan: Some(plan_of(x, yellow, &state.cfg.plan)),
        ..timing_view(&x.phases, x.retimed_from.clone(), yellow)
    }
}

/// A history entry as the API shows it.
fn change_view(c: TimingChange, yellow_s: f64) -> TimingView {
    let retiming = c.by == ChangedBy::Retiming;
    TimingView {
        by: Some(c.by.as_str().to_owned()),
        at: c.at_ms.map(traffic_core::time::format_rfc3339_ms),
        operator: c.operator,
        ..timing_view(&c.phases, retiming.then(|| c.from.to_string()), yellow_s)
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

/// `GET /api/timings?limit=N&cursor=C`: intersections' current timings, a page at a time as
/// the list of intersections: `{"timings": [...], "next": cursor or null}` (see [`city_page`]).
pub async fn timings(State(state): State<Shared>, q: Params) -> ApiResult<Response> {
    city_page(&state, q, "/api/timings", "timings", |x| CurrentTiming {
        timing: current_view(&state, &x),
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
    /// Each change (retimings, operators' edits), oldest first.
    pub history: Vec<TimingView>,
}

/// `GET /api/intersections/{id}/timings`: current timings and their history.
pub async fn intersection_timings(
    State(state): State<Shared>,
    IdPath(id): IdPath,
) -> ApiResult<Json<TimingHistoryView>> {
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
        current: current_view(&state, &x),
        history: history
            .into_iter()
            .map(|c| change_view(c, yellow))
            .collect(),
    }))
}
