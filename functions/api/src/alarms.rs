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
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::Serialize;
use traffic_core::IntersectionId;
use traffic_core::LightIndex;
use traffic_core::lamps::Alarm;
use traffic_core::lamps::LightLamps;
use traffic_core::reading::Lamps;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::{AlarmQuery, AlarmRecord, Closing, alarm_ts_of_id};

/// How an alarm closed now is recorded: at the ports' clock, kept the policy's retention.
fn closing_now(state: &Shared) -> Closing {
    Closing::at(state.ports.clock.now_ms(), state.alarms.retention_ms)
}

/// Closes the open alarms of an intersection (or of one of its lights) that is being deleted:
/// nothing is left to repair, and a repair of a light that no longer exists would be refused.
/// The alarms stay in the log, marked repaired at the time of deletion (until the retention
/// ends), and the field gets a repair order for each light whose alarms closed (so a light
/// that comes back starts with working lamps). Only the open alarms by light are read, never
/// the log. Returns how many closed.
pub(crate) async fn close_open_alarms(
    state: &Shared,
    id: &IntersectionId,
    light: Option<LightIndex>,
) -> ApiResult<usize> {
    let closing = closing_now(state);
    let closed = state
        .ports
        .lamps
        .close_alarms(id, light, &closing, true)
        .await?;
    Ok(closed.len())
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
    let closing = closing_now(&state);
    let closed = state
        .ports
        .lamps
        .close_alarms(&id, Some(light), &closing, true)
        .await?;
    tracing::info!(intersection = %id, light = %light, closed = closed.len(), "lamps repaired");
    Ok(Json(RepairView {
        intersection_id: id,
        light,
        at: closing.at,
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

/// A page of alarms and how many are open.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmsView {
    /// Open alarms now.
    pub open: u64,
    /// The alarms of this page, newest first.
    pub alarms: Vec<AlarmView>,
    /// The `cursor` of the next page (the id of this page's last alarm), when the page is
    /// full; the next page may be empty. Also given as a `Link: <…>; rel="next"` header.
    pub next: Option<String>,
}

/// Default and largest page of alarms.
const ALARM_PAGE_DEFAULT: u64 = 100;
const ALARM_PAGE_MAX: u64 = 1000;

/// `GET /api/alarms?open=true&limit=N&cursor=ID`: alarms newest first, a page at a time
/// (default 100, at most 1,000): all of them, or with `open=true` only the open ones (from
/// the open view). `cursor` is the previous page's `next`. Reads only the alarms it returns
/// and the open count, however long the log.
pub async fn alarms(State(state): State<Shared>, q: Params) -> ApiResult<Response> {
    let q = params(q)?;
    let limit = int_param(&q, "limit", ALARM_PAGE_DEFAULT, 1, ALARM_PAGE_MAX)?;
    let open_only = match q.get("open").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad(
                "open",
                format!("must be true or false, got {other:?}"),
            ));
        }
    };
    let after = match q.get("cursor") {
        None => None,
        Some(c) if alarm_ts_of_id(c).is_some() => Some(c.clone()),
        Some(c) => {
            return Err(ApiError::bad(
                "cursor",
                format!("must be an alarm id (a page's `next`), got {c:?}"),
            ));
        }
    };
    let page = state
        .ports
        .lamps
        .alarm_page(&AlarmQuery {
            open_only,
            limit: limit as usize,
            after,
        })
        .await?;
    let link = page.next.as_ref().map(|next| {
        format!(
            "</api/alarms?{}limit={limit}&cursor={}>; rel=\"next\"",
            if open_only { "open=true&" } else { "" },
            next.replace('%', "%25").replace('#', "%23")
        )
    });
    let mut resp = Json(AlarmsView {
        open: page.open,
        alarms: page.alarms.iter().map(alarm_view).collect(),
        next: page.next,
    })
    .into_response();
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}
