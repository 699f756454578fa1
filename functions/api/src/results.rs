//! `/api/results`, `/api/results/{length}`, `/api/network` and `/api/network/{length}/{start}`:
//! the merge's results.

use crate::Shared;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::export;
use crate::export::Format;
use crate::paging::{
    RESULTS_PAGE_DEFAULT, RESULTS_PAGE_MAX, page_limit, results_before, results_cursor,
    with_next_link,
};
use crate::request::Params;
use crate::request::params;
use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Deserialize;
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;
use traffic_core::query::{IntersectionState, NetworkState, WindowResult};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::window::WindowLength;

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

/// `GET /api/network[?format=json|csv|geojson]`: every intersection's mean speed, vehicles and
/// readings over the newest window of the shortest length (the map's colours); `null` until
/// the merge has built one. As CSV or GeoJSON (by `format`, else `Accept`: [`export`]) it is a
/// download with each intersection's position from the registry, read a page at a time.
pub async fn network(
    State(state): State<Shared>,
    headers: HeaderMap,
    q: Params,
) -> ApiResult<Response> {
    let q = params(q)?;
    let format = export::negotiate(&q, &headers)?;
    let network = state.ports.results.network().await?;
    network_answer(&state, format, network).await
}

/// `GET /api/network/{length}/{start}[?format=json|csv|geojson]`: every intersection's mean
/// speed, vehicles and readings over a closed window, read back from the archive
/// (`window_intersections`), in the formats of `/api/network`. 404 for a length not configured,
/// a start that begins no window of the length, or a window the archive does not hold (still
/// open, or before the archive); 400 for a malformed length or start.
pub async fn archived_network(
    State(state): State<Shared>,
    Path((length, start)): Path<(String, String)>,
    headers: HeaderMap,
    q: Params,
) -> ApiResult<Response> {
    let q = params(q)?;
    let format = export::negotiate(&q, &headers)?;
    let length = configured_length(&state, &length)?;
    let start_ms = traffic_core::time::parse_rfc3339_ms(&start).ok_or_else(|| {
        ApiError::bad(
            "start",
            format!("a window's start is an RFC 3339 time (2026-01-05T08:00:00Z), not {start:?}"),
        )
    })?;
    let window = length.window_of(start_ms);
    if window.start_ms != start_ms {
        // A time, but one that names no window: there is no such resource.
        return Err(ApiError::not_found(
            "start",
            format!(
                "no {length} window begins at {start}; the one holding it begins at {}",
                format_rfc3339_ms(window.start_ms)
            ),
        ));
    }
    let Some(rows) = state.ports.archive.window_rows(&window).await? else {
        return Err(ApiError::not_found(
            "start",
            format!("the archive holds no {window} (closed windows only)"),
        ));
    };
    let network = NetworkState {
        length: length.to_string(),
        start: format_rfc3339_ms(window.start_ms),
        end: format_rfc3339_ms(window.end_ms()),
        closed: true,
        intersections: rows
            .into_iter()
            .map(|r| IntersectionState {
                intersection_id: r.intersection_id,
                mean_speed_kmh: r.figures.mean_speed_kmh,
                vehicles: r.figures.vehicles,
                readings: r.figures.readings,
            })
            .collect(),
    };
    network_answer(&state, format, Some(network)).await
}

/// A network state in `format`: JSON as it is, CSV and GeoJSON as downloads with each
/// intersection's position.
async fn network_answer(
    state: &Shared,
    format: Format,
    network: Option<NetworkState>,
) -> ApiResult<Response> {
    if format == Format::Json {
        return Ok(Json(network).into_response());
    }
    let positions = positions(state).await?;
    Ok(match format {
        Format::Csv => export::download(
            export::CSV,
            &export::file_name(network.as_ref(), "csv"),
            export::network_csv(network.as_ref(), &positions),
        ),
        _ => export::download(
            export::GEOJSON,
            &export::file_name(network.as_ref(), "geojson"),
            export::network_geojson(network.as_ref(), &positions).to_string(),
        ),
    })
}

/// Every registered intersection's position, the registry read a page at a time.
async fn positions(state: &Shared) -> ApiResult<export::Positions> {
    let mut out = export::Positions::new();
    let mut after = None;
    // Each page moves past the last id it returned: a city of 500 × 65,536 intersections at most.
    for _ in 0..=u16::MAX {
        let (page, next) = state
            .ports
            .registry
            .intersections_page(after.as_ref(), POSITIONS_PAGE)
            .await?;
        out.extend(page.into_iter().map(|x| (x.id, (x.lat, x.lon))));
        match next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
    Err(traffic_ports::PortError::Corrupt(
        "the registry's pages of intersections did not end".into(),
    )
    .into())
}

/// Intersections a page of the registry holds when the export reads their positions.
const POSITIONS_PAGE: usize = 500;

/// A page of one length's windows.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecentResults {
    /// The window length.
    pub length: String,
    /// Its windows, newest first (the first may still be open).
    pub windows: Vec<WindowResult>,
    /// Whether older windows exist (then `next` continues the list).
    pub more: bool,
    /// The `cursor` of the page of older windows, when `more`; also a `Link: <…>;
    /// rel="next"` header.
    pub next: Option<String>,
}

/// `GET /api/results/{length}?limit=N&cursor=C`: the windows of a length, newest first, a page
/// at a time (default 12, at most 100; fewer when a page reaches 1 MB of results), saying
/// whether more exist and the `cursor` of the next page.
pub async fn results(
    State(state): State<Shared>,
    Path(length): Path<String>,
    q: Params,
) -> ApiResult<Response> {
    let q = params(q)?;
    let limit = page_limit(&q, RESULTS_PAGE_DEFAULT, RESULTS_PAGE_MAX)?;
    let parsed = window_length(&length)?;
    let before = results_before(&q, parsed.ms())?;
    let label = parsed.to_string();
    let page = state
        .ports
        .results
        .results_page(parsed, before, limit)
        .await?;
    if page.windows.is_empty() && before.is_none() && !state.cfg.windows().contains(&parsed) {
        return Err(ApiError::not_found(
            "length",
            format!(
                "no window length {label}; the lengths are {:?}",
                windows(&state)
            ),
        ));
    }
    let next = page.next.map(|start| results_cursor(parsed.ms(), start));
    let path = format!("/api/results/{length}");
    let body = RecentResults {
        length: label,
        windows: page.windows,
        more: next.is_some(),
        next: next.clone(),
    };
    Ok(with_next_link(body, &path, limit, next.as_deref()))
}

/// A window length a request names that must be configured: 400 when malformed
/// ([`window_length`]), 404 when well formed but not one of the configured lengths.
pub(crate) fn configured_length(state: &Shared, text: &str) -> ApiResult<WindowLength> {
    let parsed = window_length(text)?;
    if !state.cfg.windows().contains(&parsed) {
        return Err(ApiError::not_found(
            "length",
            format!(
                "no window length {parsed}; the lengths are {:?}",
                windows(state)
            ),
        ));
    }
    Ok(parsed)
}

/// A window length as a request writes it: exactly the document's pattern, digits and a unit
/// with no surrounding spaces; a 400 naming `length` otherwise.
pub(crate) fn window_length(text: &str) -> ApiResult<WindowLength> {
    if text.trim() != text {
        return Err(ApiError::bad(
            "length",
            format!("a window length has no spaces: {text:?}"),
        ));
    }
    WindowLength::from_str(text).map_err(|e| ApiError::bad("length", e.to_string()))
}

pub(crate) fn windows(state: &Shared) -> Vec<String> {
    state.cfg.windows().iter().map(|w| w.to_string()).collect()
}
