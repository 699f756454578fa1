//! The paged public lists: their page sizes, the opaque `cursor` that continues a list, and
//! the page of a city-wide list (intersections, timings).
//!
//! Every paged route has a documented largest page, sized so that one request is a bounded
//! read (`docs/api.md`, "Pages and what they cost"): a larger `limit` is a 400 naming the
//! maximum. A page carries `next`, the `cursor` of the page after it, whenever more exist (also
//! as a `Link: <…>; rel="next"` header); it may hold fewer items than `limit` when the store's
//! own page filled. A cursor is base64url of the list's kind and its position: clients pass it
//! back as they got it; one the list did not give is a 400.

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, params};
use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::collections::HashMap;
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;

/// Default page of `/api/intersections` and `/api/timings`.
pub const CITY_PAGE_DEFAULT: u64 = 100;
/// Largest page of `/api/intersections` and `/api/timings`: about 0.43 KB per intersection
/// (the simulator's), 0.2 MB, 27 read units eventually consistent on DynamoDB (at most 1 MB,
/// 128 units, whatever the intersections hold).
pub const CITY_PAGE_MAX: u64 = 500;
/// Default page of `/api/results/{length}`.
pub const RESULTS_PAGE_DEFAULT: u64 = 12;
/// Largest page of `/api/results/{length}` (a day of 15-minute windows and some); the store
/// also cuts a page at 1 MB of results.
pub const RESULTS_PAGE_MAX: u64 = 100;

/// The kinds of cursor: which list, so that one list's cursor is refused by another.
const CITY: &str = "city";
const RESULTS: &str = "results";

/// The `limit` query parameter: `default` when absent, a 400 naming the route's `max` (and how
/// to read more) when above it.
pub(crate) fn page_limit(q: &HashMap<String, String>, default: u64, max: u64) -> ApiResult<usize> {
    let Some(v) = q.get("limit") else {
        return Ok(default as usize);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(ApiError::bad(
            "limit",
            format!(
                "must be an integer 1..={max} (the largest page here; read more by passing each \
                 page's `next` as `cursor`), got {v:?}"
            ),
        )),
    }
}

/// A cursor of list `kind` at position `pos`.
fn encode(kind: &str, pos: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{pos}"))
}

/// The position in a cursor of list `kind`, or a 400 naming `cursor`.
fn decode(kind: &str, cursor: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(kind)?.strip_prefix(':').map(str::to_owned))
        .ok_or_else(|| not_a_cursor(cursor))
}

fn not_a_cursor(cursor: &str) -> ApiError {
    ApiError::bad(
        "cursor",
        format!(
            "{cursor:?} is not a cursor of this list: pass the `next` of its previous page as \
             it was given"
        ),
    )
}

/// The cursor continuing a city-wide list after intersection `id`.
pub(crate) fn city_cursor(id: &IntersectionId) -> String {
    encode(CITY, id.as_str())
}

/// The intersection a city-wide list's `cursor` continues after, if one was given.
fn city_after(q: &HashMap<String, String>) -> ApiResult<Option<IntersectionId>> {
    if q.contains_key("after") {
        return Err(ApiError::bad(
            "after",
            "`after` is replaced by `cursor`: pass the `next` of the previous page",
        ));
    }
    q.get("cursor")
        .map(|c| {
            let id = decode(CITY, c)?;
            IntersectionId::parse(&id).map_err(|_| not_a_cursor(c))
        })
        .transpose()
}

/// The cursor continuing a list of windows of `length_ms` before the window at `start_ms`.
pub(crate) fn results_cursor(length_ms: i64, start_ms: i64) -> String {
    encode(RESULTS, &format!("{length_ms}:{start_ms}"))
}

/// The start a results list's `cursor` continues before, if one was given; a cursor of
/// another length is a 400.
pub(crate) fn results_before(
    q: &HashMap<String, String>,
    length_ms: i64,
) -> ApiResult<Option<i64>> {
    let Some(c) = q.get("cursor") else {
        return Ok(None);
    };
    let pos = decode(RESULTS, c)?;
    pos.split_once(':')
        .filter(|(len, _)| len.parse::<i64>().ok() == Some(length_ms))
        .and_then(|(_, start)| start.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad(
                "cursor",
                format!("{c:?} is a cursor of another window length: pass this list's `next`"),
            )
        })
}

/// A JSON page with `Link: <path?limit=N&cursor=C>; rel="next"` when it has a continuation.
pub(crate) fn with_next_link(
    body: impl Serialize,
    path: &str,
    limit: usize,
    next: Option<&str>,
) -> Response {
    let mut resp = Json(body).into_response();
    if let Some(next) = next {
        // A cursor is base64url: safe in a query string as it is.
        let link = format!("<{path}?limit={limit}&cursor={next}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// One page of a city-wide list.
#[derive(Debug, Serialize)]
pub struct CityPage<T> {
    /// The list's items, by intersection id; named after the list (`intersections`,
    /// `timings`).
    #[serde(flatten)]
    pub items: HashMap<&'static str, Vec<T>>,
    /// The `cursor` of the next page, when more follow; `null` on the last page.
    pub next: Option<String>,
}

/// One page of intersections for the city-wide list `name` at `path`, from the `limit` and
/// `cursor` query parameters: `{"<name>": [...], "next": cursor or null}`.
pub(crate) async fn city_page<T: Serialize>(
    state: &Shared,
    q: Params,
    path: &str,
    name: &'static str,
    view: impl Fn(Intersection) -> T,
) -> ApiResult<Response> {
    let q = params(q)?;
    let limit = page_limit(&q, CITY_PAGE_DEFAULT, CITY_PAGE_MAX)?;
    let after = city_after(&q)?;
    let (xs, next) = state
        .ports
        .registry
        .intersections_page(after.as_ref(), limit)
        .await?;
    let next = next.as_ref().map(city_cursor);
    let items: Vec<T> = xs.into_iter().map(view).collect();
    let body = CityPage {
        items: HashMap::from([(name, items)]),
        next: next.clone(),
    };
    Ok(with_next_link(body, path, limit, next.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_its_position_only_for_its_own_list() {
        let c = encode(CITY, "I-0007");
        assert_eq!(decode(CITY, &c).ok(), Some("I-0007".to_owned()));
        assert!(decode(RESULTS, &c).is_err());
        assert!(decode(CITY, "I-0007").is_err());
        assert!(decode(CITY, "").is_err());
        let r = results_cursor(900_000, 1_767_600_000_000);
        let q = |c: &str| HashMap::from([("cursor".to_owned(), c.to_owned())]);
        assert_eq!(
            results_before(&q(&r), 900_000).ok(),
            Some(Some(1_767_600_000_000))
        );
        assert!(results_before(&q(&r), 3_600_000).is_err());
    }
}
