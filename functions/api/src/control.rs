//! `PUT /api/intersections/{id}/control`: an intersection's control mode (`adaptive`, `fixed`,
//! `manual`) and the limits a retiming respects (`traffic_core::control`), and the record of
//! an operator's edit of the timings in the timing history.

use crate::Shared;
use crate::body::decode;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::request::JsonBody;
use crate::request::with_etag;
use crate::stored::Editing;
use axum::Extension;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde_json::Value;
use traffic_core::city::Phase;
use traffic_core::control::{Control, ControlMode};
use traffic_ports::TimingChange;

/// The members `PUT .../control` accepts, and those of its `limits`.
const CONTROL_MEMBERS: [&str; 2] = ["mode", "limits"];
const LIMITS_MEMBERS: [&str; 3] = ["min_green_s", "max_cycle_s", "max_green_change"];

/// A 400 naming the first member of `v` (an object) not in `known`, prefixed with `at`.
fn unknown_member(v: &Value, known: &[&str], at: &str) -> ApiResult<()> {
    if let Value::Object(m) = v
        && let Some(k) = m.keys().find(|k| !known.contains(&k.as_str()))
    {
        return Err(ApiError::bad(
            format!("{at}{k}"),
            format!("unknown property (expected one of {})", known.join(", ")),
        ));
    }
    Ok(())
}

/// `PUT /api/intersections/{id}/control`, body `{"mode": "adaptive" | "fixed" | "manual",
/// "limits"?: {"min_green_s"?: [s | null, ...], "max_cycle_s"?: s, "max_green_change"?: f}}`:
/// sets how the merge treats Webster's proposal for the intersection, and returns the
/// intersection (with its new `ETag`). Timings do not change now: the next retiming round
/// applies the mode and limits. Leaving `manual` drops the recorded proposal. 400 naming the
/// field for a bad body (nothing changed), 404 for no such intersection, 412 on a stale
/// `If-Match`.
pub async fn put_control(
    Editing(state, id, x, from): Editing,
    JsonBody(v): JsonBody,
) -> ApiResult<Response> {
    if !v.is_object() {
        return Err(ApiError::bad("body", "must be a JSON object"));
    }
    unknown_member(&v, &CONTROL_MEMBERS, "")?;
    if let Some(limits) = v.get("limits") {
        unknown_member(limits, &LIMITS_MEMBERS, "limits.")?;
    }
    let control: Control = decode(v, "")?;
    if let Some(limits) = &control.limits {
        limits
            .validate(x.phases.len(), "limits.")
            .map_err(|e| ApiError::bad(e.field, e.message))?;
    }
    let control = control.normalized();
    let was = x.control.mode;
    // Applied again to the intersection as it is by then if a retiming lands in between.
    let (x, version) = crate::stored::store_applying(&state, x, from, |x| {
        if control.mode != ControlMode::Manual {
            x.proposal = None;
        }
        x.control = control.clone();
    })
    .await?;
    tracing::info!(intersection = %id, from = was.as_str(), to = x.control.mode.as_str(), "control set");
    Ok(with_etag(crate::stored::shown(&state, x), &version))
}

/// The operator's identity from an API Gateway JWT, if the request carried one.
pub(crate) fn operator_of(context: Option<Extension<RequestContext>>) -> Option<String> {
    context.and_then(|Extension(c)| crate::alarms::jwt_subject(&c))
}

/// The entry an operator's change of an intersection's timings from `before` to `after` makes
/// in its timing history (`None` when the greens, reds and lights are the same), stored with
/// the edit in one atomic write (`stored::store_recording`).
pub(crate) fn operator_edit(
    state: &Shared,
    before: &[Phase],
    after: &[Phase],
    operator: Option<String>,
) -> Option<TimingChange> {
    let same = before.len() == after.len()
        && before
            .iter()
            .zip(after)
            .all(|(b, a)| b.lights == a.lights && b.green_s == a.green_s && b.red_s == a.red_s);
    (!same).then(|| {
        TimingChange::by_operator(
            state.cfg.pane(),
            state.ports.clock.now_ms(),
            operator,
            after.to_vec(),
        )
    })
}
