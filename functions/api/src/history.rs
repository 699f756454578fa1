//! `/api/intersections/{id}/history`: an intersection's volume and speed over its recent closed
//! windows, read back from the archive of the merge's outputs (`window_intersections`), one
//! object a window: what the dashboard's chart draws.

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, int_param, params, parse_id};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use traffic_core::IntersectionId;
use traffic_core::outputs::Figures;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::window::WindowKey;

/// Windows a history holds unless `limit` says otherwise: a day of quarter-hours.
pub const HISTORY_DEFAULT: u64 = 96;
/// The most windows one history reads (one archive object each).
pub const HISTORY_MAX: u64 = 200;

/// One closed window of an intersection's history: the window and the intersection's
/// figures over it, as its row of `window_intersections` holds them.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryPoint {
    /// The window's start, RFC 3339 UTC.
    pub start: String,
    /// Its end (exclusive).
    pub end: String,
    /// Readings, vehicles (all lights, per light), mean speed, median.
    #[serde(flatten)]
    pub figures: Figures,
}

/// An intersection's history.
#[derive(Debug, Serialize, Deserialize)]
pub struct History {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The windows' length.
    pub length: String,
    /// The closed windows it had readings in, among the newest `limit` (open ones included in
    /// the count), oldest first.
    pub windows: Vec<HistoryPoint>,
}

/// `GET /api/intersections/{id}/history?length=L&limit=N`: the intersection's readings,
/// vehicles (per light too), mean speed and median in each of the newest `limit` windows of
/// length `L` (default the shortest; `limit` default 96, at most 200) that the archive holds
/// (closed ones: a window still open has no row yet), oldest first. 404 for an intersection
/// not registered or a well-formed length that is not configured, 400 for a malformed one.
pub async fn history(
    State(state): State<Shared>,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<History>> {
    let q = params(q)?;
    let id = parse_id(&id)?;
    let limit = int_param(&q, "limit", HISTORY_DEFAULT, 1, HISTORY_MAX)?;
    let length = match q.get("length") {
        None => state.cfg.pane(),
        Some(l) => crate::results::configured_length(&state, l)?,
    };
    if state.ports.registry.intersection(&id).await?.is_none() {
        return Err(ApiError::not_found("id", format!("no intersection {id}")));
    }
    // Back from the newest window of the length: the open ones (one or more, as lateness
    // keeps them open) have no row in the archive, which holds closed windows only.
    let recent = state.ports.results.recent_results(length, 1).await?;
    let newest = recent.first().map(|r| r.window);
    let windows: Vec<WindowKey> = match newest {
        None => Vec::new(),
        Some(w) => (0..limit as i64)
            .rev()
            .map(|back| WindowKey {
                length,
                start_ms: w.start_ms - back * length.ms(),
            })
            .collect(),
    };
    let rows = state
        .ports
        .archive
        .intersection_windows(&id, &windows)
        .await?;
    Ok(Json(History {
        intersection_id: id,
        length: length.to_string(),
        windows: rows
            .into_iter()
            .map(|(w, r)| HistoryPoint {
                start: format_rfc3339_ms(w.start_ms),
                end: format_rfc3339_ms(w.end_ms()),
                figures: r.figures,
            })
            .collect(),
    }))
}
