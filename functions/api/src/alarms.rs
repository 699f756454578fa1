//! Lamps and alarms: `/api/intersections/{id}/lamps`, the repair of a light's lamps, and
//! `/api/alarms`.

use crate::Shared;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::request::Params;
use crate::request::int_param;
use crate::request::params;
use crate::request::parse_id;
use crate::request::parse_light;
use crate::stored::load;
use crate::stored::position_of;
use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use serde::Deserialize;
use serde::Serialize;
use traffic_core::IntersectionId;
use traffic_core::LightIndex;
use traffic_core::lamps::Alarm;
use traffic_core::lamps::LightLamps;
use traffic_core::reading::Lamps;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::AlarmRecord;

/// Closes the open alarms of an intersection (or of one of its lights) that is being deleted:
/// nothing is left to repair, and a repair of a light that no longer exists would be refused.
/// The alarms stay in the log, marked repaired at the time of deletion. Returns how many.
pub(crate) async fn close_open_alarms(
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
    let at = format_rfc3339_ms(state.ports.clock.now_ms());
    let mut closed = 0;
    for l in lights {
        closed += state.ports.lamps.repair(id, l, &at).await?.len();
    }
    Ok(closed)
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

pub(crate) fn lamp_view(light: LightIndex, s: &LightLamps) -> LampView {
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
    let at = format_rfc3339_ms(state.ports.clock.now_ms());
    let closed = state.ports.lamps.repair(&id, light, &at).await?;
    tracing::info!(intersection = %id, light = %light, closed = closed.len(), "lamps repaired");
    Ok(Json(RepairView {
        intersection_id: id,
        light,
        at,
        closed: closed.iter().map(alarm_view).collect(),
    }))
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
