//! Request helpers every resource uses: query parameters, ids from the path, bodies,
//! `If-Match` and `ETag`, `201 Created` (the paged lists: [`crate::paging`]).

use crate::body::json_value;
use crate::error::ApiError;
use crate::error::ApiResult;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use traffic_core::IntersectionId;
use traffic_core::LightIndex;
use traffic_ports::Version;

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

/// Parses the `{id}` path parameter; an id that cannot exist is a 404.
pub fn parse_id(s: &str) -> ApiResult<IntersectionId> {
    IntersectionId::parse(s)
        .map_err(|e| ApiError::not_found("id", format!("no intersection {s:?} ({e})")))
}

/// The intersection the `{id}` path parameter names, parsed as [`parse_id`] does: an id that
/// cannot exist is a 404.
pub struct IdPath(pub IntersectionId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_id(&id).map(Self).map_err(IntoResponse::into_response)
    }
}

/// Parses the `{light}` path parameter; a light outside 0..=3 is a 404.
pub fn parse_light(s: &str) -> ApiResult<LightIndex> {
    s.parse::<i64>()
        .ok()
        .and_then(|i| LightIndex::new(i).ok())
        .ok_or_else(|| ApiError::not_found("light", format!("no light {s:?}: lights are 0..=3")))
}

/// The body's bytes, or a 400/413 in the API's error form.
pub(crate) fn bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::bad("body", e.body_text())
        }
    })
}

/// The body as a JSON value ([`json_value`]): 413 when it is too large, 400 when it cannot be
/// read, is empty or is not JSON.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await;
        Ok(Self(json_value(&bytes(body)?)?))
    }
}

/// The versions a request's `If-Match` header names: `None` without the header or for `*`
/// (any version), else those of its entity tags (`"v"` or `W/"v"`, comma-separated, as HTTP
/// writes them: RFC 9110, section 13.1.1). A value of another form names no version: the
/// condition fails (412), so that nothing the client did not mean as the version it read is
/// taken for it.
pub(crate) fn if_match(headers: &HeaderMap) -> Option<Vec<Version>> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for v in values {
        let v = v.to_str().ok().map(str::trim).unwrap_or_default();
        if v == "*" {
            return None;
        }
        tags.extend(entity_tags(v).into_iter().flatten().map(Version::new));
    }
    Some(tags)
}

/// The contents of a comma-separated list of entity tags (`"v"`, `W/"v"`; `v` visible ASCII
/// but `"`), or `None` if `s` is not one.
fn entity_tags(s: &str) -> Option<Vec<String>> {
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = rest.find('"')?;
        let tag = &rest[..end];
        if !tag.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b)) {
            return None;
        }
        tags.push(tag.to_owned());
        rest = rest[end + 1..].trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix(',')?.trim_start_matches([' ', '\t']);
    }
}

/// A JSON answer with the intersection's version as its `ETag`.
pub(crate) fn with_etag<T: Serialize>(body: T, version: &Version) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

pub(crate) fn created(location: String, body: impl Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// Sets the path's key member (`id`, `light`) in a body that left it out, and refuses a body
/// whose key differs from the path's: a replace never renames.
pub(crate) fn key_from_path(v: &mut Value, key: &str, path_value: Value) -> ApiResult<()> {
    let Value::Object(m) = v else {
        return Err(ApiError::bad("body", "must be a JSON object"));
    };
    match m.get(key) {
        None => {
            m.insert(key.to_owned(), path_value);
            Ok(())
        }
        Some(given) if *given == path_value => Ok(()),
        Some(given) => Err(ApiError::bad(
            key,
            format!("is {given} but the path names {path_value}; it cannot be changed"),
        )),
    }
}
