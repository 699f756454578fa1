//! `/api/intersections/{id}/lights` and `/phases`: an intersection's lights and its phases.

use crate::Shared;
use crate::alarms::close_open_alarms;
use crate::body::decode;
use crate::body::json_value;
use crate::control::{operator_edit, operator_of};
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::request::IdPath;
use crate::request::JsonBody;
use crate::request::bytes;
use crate::request::created;
use crate::request::key_from_path;
use crate::request::parse_id;
use crate::request::parse_light;
use crate::stored::Editing;
use crate::stored::load;
use crate::stored::load_for_write;
use crate::stored::load_light;
use crate::stored::position_of;
use crate::stored::store;
use crate::stored::store_recording;
use crate::stored::validate_new_phases;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use traffic_core::city::Intersection;
use traffic_core::city::Light;
use traffic_core::city::Phase;

/// `GET /api/intersections/{id}/lights`.
pub async fn lights(
    State(state): State<Shared>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<Light>>> {
    Ok(Json(load(&state, &id).await?.lights))
}

/// Validates `x` after a change to the light at `pos`, naming fields of that light relative to
/// the request body (`saturation_veh_h` rather than `lights[2].saturation_veh_h`).
pub(crate) fn validate_light(x: &Intersection, pos: usize) -> ApiResult<()> {
    x.validate("").map_err(|e| {
        let prefix = format!("lights[{pos}].");
        let field = match e.field.strip_prefix(&prefix) {
            Some(rest) => rest.to_owned(),
            None => e.field,
        };
        ApiError::bad(field, e.message)
    })
}

/// `POST /api/intersections/{id}/lights`: adds a light (201); 409 if it exists.
pub async fn add_light(
    Editing(state, id, mut x, from): Editing,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let light: Light = decode(body, "")?;
    if x.has_light(light.light) {
        return Err(ApiError::conflict(
            "light",
            format!("{id} has a light {} already", light.light),
        ));
    }
    x.lights.push(light.clone());
    x.lights.sort_by_key(|l| l.light);
    let pos = position_of(&x, light.light)?;
    validate_light(&x, pos)?;
    store(&state, &mut x, &from).await?;
    tracing::info!(intersection = %id, light = %light.light, "light added");
    Ok(created(
        format!("/api/intersections/{id}/lights/{}", light.light),
        &light,
    ))
}

/// `GET /api/intersections/{id}/lights/{light}`.
pub async fn light(
    State(state): State<Shared>,
    Path((id, light)): Path<(String, String)>,
) -> ApiResult<Json<Light>> {
    let (x, _, pos) = load_light(&state, &id, &light).await?;
    Ok(Json(x.lights[pos].clone()))
}

/// `PUT /api/intersections/{id}/lights/{light}`: replaces a light (saturation, extra fields).
pub async fn replace_light(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, light)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Light>> {
    let id = parse_id(&id)?;
    let index = parse_light(&light)?;
    let (mut x, from) = load_for_write(&state, &id, &headers).await?;
    let pos = position_of(&x, index)?;
    let mut v = json_value(&bytes(body)?)?;
    key_from_path(&mut v, "light", Value::from(index.get() as u64))?;
    let new: Light = decode(v, "")?;
    x.lights[pos] = new.clone();
    validate_light(&x, pos)?;
    store(&state, &mut x, &from).await?;
    tracing::info!(intersection = %id, light = %index, "light replaced");
    Ok(Json(new))
}

/// `DELETE /api/intersections/{id}/lights/{light}` (204): removes the light and its place in
/// the phases (a phase left without lights goes too); 409 if that leaves the intersection
/// invalid (no light or no phase left).
pub async fn delete_light(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, light)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let index = parse_light(&light)?;
    let (mut x, from) = load_for_write(&state, &id, &headers).await?;
    let pos = position_of(&x, index)?;
    x.lights.remove(pos);
    for p in &mut x.phases {
        p.lights.retain(|l| *l != index);
    }
    x.phases.retain(|p| !p.lights.is_empty());
    x.validate("").map_err(|e| {
        ApiError::conflict(
            e.field,
            format!(
                "removing light {index} would leave {id} invalid: {}",
                e.message
            ),
        )
    })?;
    from.check(&id)?;
    let closed = close_open_alarms(&state, &id, Some(index)).await?;
    store(&state, &mut x, &from).await?;
    tracing::info!(intersection = %id, light = %index, closed_alarms = closed, "light deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// An intersection's phases, as read and written by `/phases`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PhasesBody {
    /// The phases, in signal order.
    pub phases: Vec<Phase>,
}

/// `GET /api/intersections/{id}/phases`.
pub async fn phases(
    State(state): State<Shared>,
    IdPath(id): IdPath,
) -> ApiResult<Json<PhasesBody>> {
    Ok(Json(PhasesBody {
        phases: load(&state, &id).await?.phases,
    }))
}

/// `PUT /api/intersections/{id}/phases`: replaces the phases and their timings (a change of
/// the timings enters the timing history as the operator's).
pub async fn replace_phases(
    Editing(state, id, mut x, from): Editing,
    context: Option<Extension<RequestContext>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<PhasesBody>> {
    let b: PhasesBody = decode(body, "")?;
    let before = std::mem::replace(&mut x.phases, b.phases);
    validate_new_phases(&x)?;
    let change = operator_edit(&state, &before, &x.phases, operator_of(context));
    store_recording(&state, &mut x, &from, change.as_ref()).await?;
    tracing::info!(intersection = %id, "phases replaced");
    Ok(Json(PhasesBody { phases: x.phases }))
}
