//! `/api/intersections` and `/api/intersections/{id}`: list, get, create, replace,
//! merge-patch, delete.

use crate::Shared;
use crate::alarms::close_open_alarms;
use crate::body::decode;
use crate::body::merge_patch;
use crate::control::{operator_edit, operator_of};
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::paging::city_page;
use crate::request::IdPath;
use crate::request::JsonBody;
use crate::request::Params;
use crate::request::created;
use crate::request::key_from_path;
use crate::request::with_etag;
use crate::stored::Editing;
use crate::stored::ReadAt;
use crate::stored::load_versioned;
use crate::stored::shown;
use crate::stored::stale;
use crate::stored::store_recording;
use crate::stored::validate;
use crate::stored::without_plan;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde_json::Value;
use traffic_core::IntersectionId;
use traffic_core::city::{Intersection, Phase};
use traffic_ports::PortError;

/// `GET /api/intersections?limit=N&cursor=C`: intersections by id, a page at a time (default
/// 100, at most 500): `{"intersections": [...], "next": cursor or null}` (see [`city_page`]).
pub async fn list(State(state): State<Shared>, q: Params) -> ApiResult<Response> {
    city_page(&state, q, "/api/intersections", "intersections", |x| {
        shown(&state, x)
    })
    .await
}

/// `POST /api/intersections`: creates an intersection (201); 409 if the id is taken.
pub async fn create(State(state): State<Shared>, JsonBody(mut v): JsonBody) -> ApiResult<Response> {
    without_plan(&mut v);
    let x: Intersection = decode(v, "")?;
    validate(&x)?;
    match state.ports.registry.create_intersection(&x).await {
        Ok(()) => {}
        Err(traffic_ports::PortError::AlreadyExists(_)) => {
            return Err(ApiError::conflict(
                "id",
                format!("intersection {} exists already", x.id),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(intersection = %x.id, "intersection created");
    Ok(created(
        format!("/api/intersections/{}", x.id),
        shown(&state, x),
    ))
}

/// `GET /api/intersections/{id}`, with its version as the `ETag`: a write that sends it back
/// in `If-Match` applies only if nobody (an operator, a retiming) changed it meanwhile.
pub async fn get(State(state): State<Shared>, IdPath(id): IdPath) -> ApiResult<Response> {
    let (x, version) = load_versioned(&state, &id).await?;
    Ok(with_etag(shown(&state, x), &version))
}

/// `PUT /api/intersections/{id}`: replaces an existing intersection whole.
pub async fn replace(
    Editing(state, id, current, from): Editing,
    context: Option<Extension<RequestContext>>,
    JsonBody(v): JsonBody,
) -> ApiResult<Response> {
    let edit = Edit {
        from,
        phases: current.phases,
        operator: operator_of(context),
    };
    store_whole(&state, &id, v, edit, "replaced").await
}

/// What a whole-intersection write starts from: the version read, and the phases then (a
/// change of the timings enters the timing history as the operator's).
pub(crate) struct Edit {
    from: ReadAt,
    phases: Vec<Phase>,
    operator: Option<String>,
}

/// Stores the JSON `v` as intersection `id` (its `id` taken from the path), validated whole,
/// over the version `edit` read; answers with it and its new `ETag`.
pub(crate) async fn store_whole(
    state: &Shared,
    id: &IntersectionId,
    mut v: Value,
    edit: Edit,
    done: &str,
) -> ApiResult<Response> {
    key_from_path(&mut v, "id", Value::String(id.to_string()))?;
    without_plan(&mut v);
    let mut x: Intersection = decode(v, "")?;
    validate(&x)?;
    let change = operator_edit(state, &edit.phases, &x.phases, edit.operator);
    let version = store_recording(state, &mut x, &edit.from, change.as_ref()).await?;
    tracing::info!(intersection = %id, "intersection {done}");
    Ok(with_etag(shown(state, x), &version))
}

/// `PATCH /api/intersections/{id}`: applies a JSON Merge Patch (RFC 7396) to the intersection.
pub async fn patch(
    Editing(state, id, current, from): Editing,
    context: Option<Extension<RequestContext>>,
    JsonBody(patch): JsonBody,
) -> ApiResult<Response> {
    if !patch.is_object() {
        return Err(ApiError::bad("body", "a merge patch must be a JSON object"));
    }
    let mut v = serde_json::to_value(&current)
        .map_err(|e| ApiError::bad("body", format!("cannot patch: {e}")))?;
    merge_patch(&mut v, &patch);
    let edit = Edit {
        from,
        phases: current.phases,
        operator: operator_of(context),
    };
    store_whole(&state, &id, v, edit, "patched").await
}

/// `DELETE /api/intersections/{id}` (204).
pub async fn delete(Editing(state, id, _, from): Editing) -> ApiResult<StatusCode> {
    from.check(&id)?;
    // Alarms first: if the delete then fails, the lamps are merely repaired and the request
    // can be retried; the other order could leave alarms no one can close.
    let closed = close_open_alarms(&state, &id, None).await?;
    let deleted = if from.precondition() {
        match state
            .ports
            .registry
            .delete_intersection_if(&id, &from.current)
            .await
        {
            Ok(()) => true,
            Err(PortError::Conflict(_)) => return Err(stale(&id)),
            Err(PortError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        }
    } else {
        state.ports.registry.delete_intersection(&id).await?
    };
    if deleted {
        tracing::info!(intersection = %id, closed_alarms = closed, "intersection deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("id", format!("no intersection {id}")))
    }
}
