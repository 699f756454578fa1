//! Intersections and their lights, phases and lamps: the registry's CRUD, and lamp repair.
//!
//! Every change is validated whole ([`Intersection::validate`], whose errors name the field)
//! before anything is written, so an invalid request changes nothing.

use crate::body::{decode, json_value, merge_patch};
use crate::error::{ApiError, ApiResult};
use crate::queries::{AlarmView, Params, alarm_view, city_page};
use crate::{Shared, now_ms};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use traffic_core::city::{Intersection, Light, Phase};
use traffic_core::lamps::LightLamps;
use traffic_core::reading::Lamps;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::PortError;

/// Parses the `{id}` path parameter; an id that cannot exist is a 404.
pub fn parse_id(s: &str) -> ApiResult<IntersectionId> {
    IntersectionId::parse(s)
        .map_err(|e| ApiError::not_found("id", format!("no intersection {s:?} ({e})")))
}

/// Parses the `{light}` path parameter; a light outside 0..=3 is a 404.
pub fn parse_light(s: &str) -> ApiResult<LightIndex> {
    s.parse::<i64>()
        .ok()
        .and_then(|i| LightIndex::new(i).ok())
        .ok_or_else(|| ApiError::not_found("light", format!("no light {s:?}: lights are 0..=3")))
}

/// The body's bytes, or a 400/413 in the API's error form.
fn bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::bad("body", e.body_text())
        }
    })
}

/// Loads an intersection or answers 404.
async fn load(state: &Shared, id: &IntersectionId) -> ApiResult<Intersection> {
    Ok(load_versioned(state, id).await?.0)
}

/// An intersection and its version; 404 if there is none.
async fn load_versioned(state: &Shared, id: &IntersectionId) -> ApiResult<(Intersection, String)> {
    state
        .ports
        .registry
        .intersection_versioned(id)
        .await?
        .ok_or_else(|| ApiError::not_found("id", format!("no intersection {id}")))
}

/// The version a request's `If-Match` header names (`"v"` or `W/"v"`); `None` without the
/// header or for `*` (any version).
fn if_match(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    if v == "*" {
        return None;
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_owned())
}

/// An intersection to change, and the version the change must apply to: 404 if it does not
/// exist, 412 if `If-Match` names another version.
async fn load_for_write(
    state: &Shared,
    id: &IntersectionId,
    headers: &HeaderMap,
) -> ApiResult<(Intersection, Version)> {
    let (x, version) = load_versioned(state, id).await?;
    let precondition = if_match(headers);
    if let Some(expected) = &precondition
        && *expected != version
    {
        return Err(stale(id));
    }
    Ok((
        x,
        Version {
            current: version,
            precondition: precondition.is_some(),
        },
    ))
}

/// The version a read-modify-write starts from, and whether the client named it.
struct Version {
    current: String,
    precondition: bool,
}

fn stale(id: &IntersectionId) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "intersection {id} changed since you read it (an edit or a retiming): read it again"
    ))
}

/// Stores `x` over the version it was read at, atomically: a change in between is a 412 when
/// the client named the version, else a 409 (the request can simply be sent again).
async fn store(state: &Shared, x: &Intersection, from: &Version) -> ApiResult<String> {
    match state
        .ports
        .registry
        .replace_intersection_if(x, &from.current)
        .await
    {
        Ok(v) => Ok(v),
        Err(PortError::Conflict(_)) if from.precondition => Err(stale(&x.id)),
        Err(PortError::Conflict(_)) => Err(ApiError::conflict(
            "id",
            format!(
                "intersection {} changed while this request was applied; send it again",
                x.id
            ),
        )),
        Err(PortError::NotFound(_)) => Err(ApiError::not_found(
            "id",
            format!("no intersection {}", x.id),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A JSON answer with the intersection's version as its `ETag`.
fn with_etag<T: Serialize>(body: T, version: &str) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Validates the whole intersection; the error names the field.
fn validate(x: &Intersection) -> ApiResult<()> {
    x.validate("")
        .map_err(|e| ApiError::bad(e.field, e.message))
}

/// Sets the path's key member (`id`, `light`) in a body that left it out, and refuses a body
/// whose key differs from the path's: a replace never renames.
fn key_from_path(v: &mut Value, key: &str, path_value: Value) -> ApiResult<()> {
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

fn created(location: String, body: impl Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// `GET /api/intersections?limit=N&after=ID`: intersections by id, a page at a time (default
/// 1,000, at most 5,000); a `Link: <…>; rel="next"` header names the next page.
pub async fn list(State(state): State<Shared>, q: Params) -> ApiResult<Response> {
    city_page(&state, q, "/api/intersections", |x| x).await
}

/// `POST /api/intersections`: creates an intersection (201); 409 if the id is taken.
pub async fn create(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let x: Intersection = decode(json_value(&bytes(body)?)?, "")?;
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
    Ok(created(format!("/api/intersections/{}", x.id), &x))
}

/// `GET /api/intersections/{id}`, with its version as the `ETag`: a write that sends it back
/// in `If-Match` applies only if nobody (an operator, a retiming) changed it meanwhile.
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (x, version) = load_versioned(&state, &id).await?;
    Ok(with_etag(x, &version))
}

/// `PUT /api/intersections/{id}`: replaces an existing intersection whole.
pub async fn replace(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (_, from) = load_for_write(&state, &id, &headers).await?;
    let v = json_value(&bytes(body)?)?;
    store_whole(&state, &id, v, &from, "replaced").await
}

/// Stores the JSON `v` as intersection `id` (its `id` taken from the path), validated whole,
/// over version `from`; answers with it and its new `ETag`.
async fn store_whole(
    state: &Shared,
    id: &IntersectionId,
    mut v: Value,
    from: &Version,
    done: &str,
) -> ApiResult<Response> {
    key_from_path(&mut v, "id", Value::String(id.to_string()))?;
    let x: Intersection = decode(v, "")?;
    validate(&x)?;
    let version = store(state, &x, from).await?;
    tracing::info!(intersection = %id, "intersection {done}");
    Ok(with_etag(x, &version))
}

/// `PATCH /api/intersections/{id}`: applies a JSON Merge Patch (RFC 7396) to the intersection.
pub async fn patch(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (current, from) = load_for_write(&state, &id, &headers).await?;
    let patch = json_value(&bytes(body)?)?;
    if !patch.is_object() {
        return Err(ApiError::bad("body", "a merge patch must be a JSON object"));
    }
    let mut v = serde_json::to_value(&current)
        .map_err(|e| ApiError::bad("body", format!("cannot patch: {e}")))?;
    merge_patch(&mut v, &patch);
    store_whole(&state, &id, v, &from, "patched").await
}

/// `DELETE /api/intersections/{id}` (204).
pub async fn delete(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let (_, from) = load_for_write(&state, &id, &headers).await?;
    // Alarms first: if the delete then fails, the lamps are merely repaired and the request
    // can be retried; the other order could leave alarms no one can close.
    let closed = close_open_alarms(&state, &id, None).await?;
    let deleted = if from.precondition {
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

/// Closes the open alarms of an intersection (or of one of its lights) that is being deleted:
/// nothing is left to repair, and a repair of a light that no longer exists would be refused.
/// The alarms stay in the log, marked repaired at the time of deletion. Returns how many.
async fn close_open_alarms(
    state: &Shared,
    id: &IntersectionId,
    light: Option<LightIndex>,
) -> ApiResult<usize> {
    let lights: std::collections::BTreeSet<LightIndex> = state
        .ports
        .lamps
        .alarms()
        .await?
        .into_iter()
        .filter(|a| a.repaired_at.is_none() && a.alarm.intersection_id == *id)
        .map(|a| a.alarm.light)
        .filter(|l| light.is_none_or(|only| only == *l))
        .collect();
    let at = format_rfc3339_ms(now_ms());
    let mut closed = 0;
    for l in lights {
        closed += state.ports.lamps.repair(id, l, &at).await?.len();
    }
    Ok(closed)
}

/// `GET /api/intersections/{id}/lights`.
pub async fn lights(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Light>>> {
    let id = parse_id(&id)?;
    Ok(Json(load(&state, &id).await?.lights))
}

fn position_of(x: &Intersection, light: LightIndex) -> ApiResult<usize> {
    x.lights
        .iter()
        .position(|l| l.light == light)
        .ok_or_else(|| ApiError::not_found("light", format!("{} has no light {light}", x.id)))
}

/// Validates `x` after a change to the light at `pos`, naming fields of that light relative to
/// the request body (`saturation_veh_h` rather than `lights[2].saturation_veh_h`).
fn validate_light(x: &Intersection, pos: usize) -> ApiResult<()> {
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
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (mut x, from) = load_for_write(&state, &id, &headers).await?;
    let light: Light = decode(json_value(&bytes(body)?)?, "")?;
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
    store(&state, &x, &from).await?;
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
    let id = parse_id(&id)?;
    let light = parse_light(&light)?;
    let x = load(&state, &id).await?;
    let pos = position_of(&x, light)?;
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
    store(&state, &x, &from).await?;
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
    let closed = close_open_alarms(&state, &id, Some(index)).await?;
    store(&state, &x, &from).await?;
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
    Path(id): Path<String>,
) -> ApiResult<Json<PhasesBody>> {
    let id = parse_id(&id)?;
    Ok(Json(PhasesBody {
        phases: load(&state, &id).await?.phases,
    }))
}

/// `PUT /api/intersections/{id}/phases`: replaces the phases and their timings.
pub async fn replace_phases(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<PhasesBody>> {
    let id = parse_id(&id)?;
    let (mut x, from) = load_for_write(&state, &id, &headers).await?;
    let b: PhasesBody = decode(json_value(&bytes(body)?)?, "")?;
    x.phases = b.phases;
    validate(&x)?;
    store(&state, &x, &from).await?;
    tracing::info!(intersection = %id, "phases replaced");
    Ok(Json(PhasesBody { phases: x.phases }))
}

/// The lamps of one light as the fault function last saw them.
#[derive(Debug, Serialize, Deserialize)]
pub struct LampView {
    /// The light.
    pub light: LightIndex,
    /// Its three lamps.
    pub lamps: Lamps,
    /// Whether any of them is broken.
    pub broken: bool,
    /// Event time of the reading that set them (RFC 3339), if any was seen.
    pub as_of: Option<String>,
}

fn lamp_view(light: LightIndex, s: &LightLamps) -> LampView {
    use traffic_core::LampState::Broken;
    LampView {
        light,
        lamps: s.lamps,
        broken: [s.lamps.red, s.lamps.yellow, s.lamps.green].contains(&Broken),
        as_of: s.as_of_ms.map(format_rfc3339_ms),
    }
}

/// `GET /api/intersections/{id}/lamps`: lamp states of each of its lights.
pub async fn lamps(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<LampView>>> {
    let id = parse_id(&id)?;
    let x = load(&state, &id).await?;
    let keys: Vec<(IntersectionId, LightIndex)> =
        x.lights.iter().map(|l| (id.clone(), l.light)).collect();
    let states = state.ports.lamps.lamp_states(&keys).await?;
    Ok(Json(
        keys.iter()
            .map(|k| lamp_view(k.1, &states.get(k).copied().unwrap_or_default()))
            .collect(),
    ))
}

/// What a repair did.
#[derive(Debug, Serialize, Deserialize)]
pub struct RepairView {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The light whose lamps were repaired.
    pub light: LightIndex,
    /// When (RFC 3339).
    pub at: String,
    /// The open alarms it closed.
    pub closed: Vec<AlarmView>,
}

/// `POST /api/intersections/{id}/lights/{light}/repair`: an operator repaired the light's lamps;
/// its open alarms are closed and a repair order goes to the field.
pub async fn repair(
    State(state): State<Shared>,
    Path((id, light)): Path<(String, String)>,
) -> ApiResult<Json<RepairView>> {
    let id = parse_id(&id)?;
    let light = parse_light(&light)?;
    let x = load(&state, &id).await?;
    position_of(&x, light)?;
    let at = format_rfc3339_ms(now_ms());
    let closed = state.ports.lamps.repair(&id, light, &at).await?;
    tracing::info!(intersection = %id, light = %light, closed = closed.len(), "lamps repaired");
    Ok(Json(RepairView {
        intersection_id: id,
        light,
        at,
        closed: closed.iter().map(alarm_view).collect(),
    }))
}
