//! Lamps and alarms: `/api/intersections/{id}/lamps`, the repair of a light's lamps,
//! `/api/alarms` (pages of the log or of the open alarms) and their acknowledgement.

use crate::Shared;
use crate::body::{decode, json_value};
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::request::IdPath;
use crate::request::Params;
use crate::request::bytes;
use crate::request::int_param;
use crate::request::params;
use crate::stored::load;
use crate::stored::load_light;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde::Serialize;
use traffic_core::LightIndex;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::lamps::Alarm;
use traffic_core::lamps::LightLamps;
use traffic_core::reading::Lamps;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{AlarmId, IntersectionId};
use traffic_ports::{Ack, AlarmQuery, AlarmRecord, Closing};

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
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<LampView>>> {
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
    let (x, light, _) = load_light(&state, &id, &light).await?;
    let id = x.id;
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
        at: format_rfc3339_ms(closing.at_ms),
        closed: closed
            .iter()
            .map(|r| alarm_view(&state.alarms, r))
            .collect(),
    }))
}

/// An operator's acknowledgement, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AckView {
    /// Who (the name sent, else the token's subject, else `operator`).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Their note, if any.
    pub note: Option<String>,
}

/// A recorded alarm, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlarmView {
    /// Its stable id (`I-0001#2#green#1767600005000`; [`AlarmId`] says how it is written).
    pub id: AlarmId,
    /// What it is about: `lamp` (or `sensor_silent`).
    pub kind: String,
    /// How urgent: `critical`, `major` or `minor` (`ALARM_SEVERITIES`).
    pub severity: String,
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The light.
    pub light: LightIndex,
    /// The broken lamp's colour (`red`, `yellow`, `green`; meaningless for a sensor-silent
    /// alarm: `red`).
    pub lamp: String,
    /// What fell silent, for a sensor-silent alarm: `light`, `intersection` or `city`.
    pub scope: Option<String>,
    /// Event time of the first reading that reported it broken (RFC 3339).
    pub ts: String,
    /// The same, epoch ms.
    pub ts_ms: i64,
    /// Where the intersection is, when the sensor sent it.
    pub position: Option<traffic_core::reading::Position>,
    /// Whether it was handed to the publisher (SNS).
    pub published: bool,
    /// Recorded without an SNS message: its lamp paged less than the hold-down before.
    pub held_down: bool,
    /// Who acknowledged it and when, if anyone did.
    pub ack: Option<AckView>,
    /// When it was closed (repaired, resolved, or its light deleted), RFC 3339.
    pub repaired_at: Option<String>,
    /// Why a recovery resolved it (`lamp reported ok`, `reported again`, ...); `null` while
    /// open and when a repair or a deletion closed it.
    pub closed_why: Option<String>,
    /// Whether it is still open (not repaired).
    pub open: bool,
    /// A one-line summary.
    pub text: String,
}

/// The API's view of a stored alarm, its kind and severity by `policy`.
pub fn alarm_view(policy: &AlarmPolicy, r: &AlarmRecord) -> AlarmView {
    let a: &Alarm = &r.alarm;
    AlarmView {
        id: a.id(),
        kind: policy.kind(a).as_str().to_owned(),
        severity: policy.severity(a).as_str().to_owned(),
        intersection_id: a.intersection_id.clone(),
        light: a.light,
        lamp: a.lamp.as_str().to_owned(),
        scope: a.silent.map(|s| s.as_str().to_owned()),
        ts: format_rfc3339_ms(a.ts_ms),
        ts_ms: a.ts_ms,
        position: a.position,
        published: r.published,
        held_down: r.held_down,
        ack: r.ack.as_ref().map(|k| AckView {
            by: k.by.clone(),
            at: format_rfc3339_ms(k.at_ms),
            note: k.note.clone(),
        }),
        repaired_at: r.repaired_at_ms.map(format_rfc3339_ms),
        closed_why: r.closed_why.clone(),
        open: r.repaired_at_ms.is_none(),
        text: a.short_text(),
    }
}

/// The body of an acknowledgement (all optional; an empty body is none of them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

/// Longest note and name kept.
const NOTE_MAX: usize = 500;
const BY_MAX: usize = 100;

/// `POST /api/alarms/{id}/ack`, body `{"note"?, "by"?}`: an operator has seen the alarm (the
/// id percent-encoded: `I-0001%232%23red%231767600005000`). Keeps who (the `by` sent, else the
/// JWT's subject, else `operator`), when (now) and the note; a second acknowledgement replaces
/// the first. 404 for no such alarm, 400 naming the field for a bad body.
pub async fn ack(
    State(state): State<Shared>,
    Path(alarm_id): Path<String>,
    context: Option<Extension<RequestContext>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<AlarmView>> {
    // A string that is no alarm id names no alarm: the same 404 as an id never recorded.
    let Ok(alarm_id) = alarm_id.parse::<AlarmId>() else {
        return Err(ApiError::not_found(
            "id",
            format!("no alarm {alarm_id:?} (an id is <intersection>#<light>#<lamp>#<ts_ms>)"),
        ));
    };
    let raw = bytes(body)?;
    let body: AckBody = if raw.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        let value = json_value(&raw)?;
        let Some(members) = value.as_object() else {
            return Err(ApiError::bad("body", "must be a JSON object"));
        };
        // The document's `note` and `by` are strings: a `null` is refused, not taken for a
        // member left out.
        if let Some(field) = ["note", "by"]
            .into_iter()
            .find(|f| members.get(*f).is_some_and(|v| v.is_null()))
        {
            return Err(ApiError::bad(
                field,
                "must be a string; leave the member out for none",
            ));
        }
        decode(value, "")?
    };
    // Lengths are those of the strings as sent (the document's maxLength and minLength), and
    // the strings are kept as sent: an empty note is no note.
    let note = body.note.filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > NOTE_MAX) {
        return Err(ApiError::bad(
            "note",
            format!("at most {NOTE_MAX} characters"),
        ));
    }
    let by = match body.by {
        Some(b) if b.is_empty() || b.chars().count() > BY_MAX => {
            return Err(ApiError::bad(
                "by",
                format!("a name of 1 to {BY_MAX} characters"),
            ));
        }
        Some(b) => b,
        None => context
            .and_then(|Extension(c)| jwt_subject(&c))
            .unwrap_or_else(|| "operator".to_owned()),
    };
    let ack = Ack {
        by,
        at_ms: state.ports.clock.now_ms(),
        note,
    };
    let rec = state.ports.lamps.ack_alarm(&alarm_id, &ack).await?;
    tracing::info!(alarm = %alarm_id, by = %ack.by, "alarm acknowledged");
    Ok(Json(alarm_view(&state.alarms, &rec)))
}

/// The subject (or client id) of the JWT an API Gateway authorizer approved, if any.
pub(crate) fn jwt_subject(c: &RequestContext) -> Option<String> {
    let RequestContext::ApiGatewayV2(ctx) = c else {
        return None;
    };
    let claims = &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims;
    claims
        .get("sub")
        .or_else(|| claims.get("client_id"))
        .cloned()
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
    pub next: Option<AlarmId>,
}

/// Default and largest page of alarms.
const ALARM_PAGE_DEFAULT: u64 = 100;
const ALARM_PAGE_MAX: u64 = 1000;

/// A cursor's event time is below this (at most 18 digits, as `openapi.json` documents).
const MAX_CURSOR_TS_MS: i64 = 1_000_000_000_000_000_000;

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
    let after = match q.get("cursor").map(|c| (c, c.parse::<AlarmId>())) {
        None => None,
        // As the document's pattern says: an alarm's event time, never before 1970 nor past
        // 18 digits (a page's `next` is always such an id).
        Some((_, Ok(id))) if (0..MAX_CURSOR_TS_MS).contains(&id.ts_ms()) => Some(id),
        Some((c, Ok(_))) => {
            return Err(ApiError::bad(
                "cursor",
                format!("must be a page's `next`, got {c:?}: its time is out of range"),
            ));
        }
        Some((c, Err(e))) => {
            return Err(ApiError::bad(
                "cursor",
                format!("must be an alarm id (a page's `next`), got {c:?}: {e}"),
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
            next.to_string().replace('%', "%25").replace('#', "%23")
        )
    });
    let mut resp = Json(AlarmsView {
        open: page.open,
        alarms: page
            .alarms
            .iter()
            .map(|r| alarm_view(&state.alarms, r))
            .collect(),
        next: page.next,
    })
    .into_response();
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}
