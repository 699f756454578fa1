//! Reading and writing one intersection for the resources that change it: the versioned
//! load, and the store every write goes through (`If-Match`: 412 on a stale version, checked
//! after the request is validated).

use crate::Shared;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::request::IdPath;
use crate::request::if_match;
use crate::request::parse_id;
use crate::request::parse_light;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use traffic_core::IntersectionId;
use traffic_core::LightIndex;
use traffic_core::city::{Intersection, Phase};
use traffic_core::plan::{Plan, plan_of};
use traffic_core::safe_timing::TimingLimits;
use traffic_ports::PortError;
use traffic_ports::TimingChange;
use traffic_ports::Version;

/// Loads an intersection or answers 404.
pub(crate) async fn load(state: &Shared, id: &IntersectionId) -> ApiResult<Intersection> {
    Ok(load_versioned(state, id).await?.0)
}

/// The intersection and the light a `/api/intersections/{id}/lights/{light}` path names, with
/// the light's position among its lights; 400 for a bad id or light, 404 when either is not
/// there.
pub(crate) async fn load_light(
    state: &Shared,
    id: &str,
    light: &str,
) -> ApiResult<(Intersection, LightIndex, usize)> {
    let id = parse_id(id)?;
    let light = parse_light(light)?;
    let x = load(state, &id).await?;
    let pos = position_of(&x, light)?;
    Ok((x, light, pos))
}

/// An intersection and its version; 404 if there is none.
pub(crate) async fn load_versioned(
    state: &Shared,
    id: &IntersectionId,
) -> ApiResult<(Intersection, Version)> {
    state
        .ports
        .registry
        .intersection_versioned(id)
        .await?
        .ok_or_else(|| ApiError::not_found("id", format!("no intersection {id}")))
}

/// The intersection a write to `/api/intersections/{id}` (or to a part of it) changes: the
/// API's state, the id from the path (400 if it is not one), the intersection and the version
/// the change must apply to, as [`load_for_write`] reads them (404 if there is none).
pub struct Editing(
    pub(crate) Shared,
    pub(crate) IntersectionId,
    pub(crate) Intersection,
    pub(crate) ReadAt,
);

impl FromRequestParts<Shared> for Editing {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let IdPath(id) = IdPath::from_request_parts(parts, state).await?;
        let (x, from) = load_for_write(state, &id, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(state.clone(), id, x, from))
    }
}

/// An intersection to change, and the version the change must apply to: 404 if it does not
/// exist. The request's `If-Match` is kept and checked only when the change is about to be
/// written ([`ReadAt::check`]): a request is validated whole first, so an invalid one is a
/// 400 whatever version it names, and a 412 always means a valid change to an old version.
pub(crate) async fn load_for_write(
    state: &Shared,
    id: &IntersectionId,
    headers: &HeaderMap,
) -> ApiResult<(Intersection, ReadAt)> {
    let expected = if_match(headers);
    let (x, version) = load_versioned(state, id).await?;
    let from = ReadAt::read(&x, version, expected);
    Ok((x, from))
}

/// How many times an unconditional change is applied again to the intersection as it is now
/// when it changed between the read and the write (a retiming), before the client is told to
/// send it again (409).
const REAPPLY: usize = 4;

/// Stores the change `apply` makes to `x` (read at `from`), as [`store`] does; when the client
/// named no version and the intersection changed in between (the merge retimed it), reads it
/// again and applies the change to that, up to [`REAPPLY`] times: the change is the
/// operator's, over whatever the intersection holds by then, as a client sending it again
/// would make it. Returns the intersection as written and its new version.
pub(crate) async fn store_applying(
    state: &Shared,
    mut x: Intersection,
    mut from: ReadAt,
    apply: impl Fn(&mut Intersection),
) -> ApiResult<(Intersection, Version)> {
    let mut attempt = 0;
    loop {
        apply(&mut x);
        match store(state, &mut x, &from).await {
            Err(ApiError::Conflict { .. }) if !from.precondition() && attempt < REAPPLY => {
                attempt += 1;
                let (fresh, version) = load_versioned(state, &x.id).await?;
                from = ReadAt::read(&fresh, version, None);
                x = fresh;
            }
            stored => return stored.map(|v| (x, v)),
        }
    }
}

/// `x` as the API shows it: with the plan it runs ([`plan_of`]: the one the merge stored
/// with its timings, else drawn from its phases and limits now), so every answer has one.
pub(crate) fn shown(state: &Shared, mut x: Intersection) -> Intersection {
    x.plan = Some(plan_of(&x, state.cfg.webster.yellow_s, &state.cfg.plan));
    x
}

/// Drops a `plan` member from a write's body: the plan is the merge's (read-only), not the
/// operator's; a body read back with it is accepted as it is.
pub(crate) fn without_plan(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("plan");
    }
}

/// The version a read-modify-write starts from, and the ones the client named, if any.
pub(crate) struct ReadAt {
    pub(crate) current: Version,
    expected: Option<Vec<Version>>,
    /// The stored plan, with the phases and limits it was stored with.
    plan: Option<(Plan, Vec<Phase>, Option<TimingLimits>)>,
}

impl ReadAt {
    /// The version `x` was read at (`current`), and the ones the client named.
    fn read(x: &Intersection, current: Version, expected: Option<Vec<Version>>) -> Self {
        let plan = x
            .plan
            .clone()
            .map(|p| (p, x.phases.clone(), x.control.limits.clone()));
        Self {
            current,
            expected,
            plan,
        }
    }

    /// Whether the client named a version (`If-Match`).
    pub(crate) fn precondition(&self) -> bool {
        self.expected.is_some()
    }

    /// The precondition: 412 if `If-Match` named only other versions than the one read.
    /// Called after the request is validated and before anything is written.
    pub(crate) fn check(&self, id: &IntersectionId) -> ApiResult<()> {
        match &self.expected {
            Some(expected) if !expected.contains(&self.current) => Err(stale(id)),
            _ => Ok(()),
        }
    }

    /// The plan a write of `x` keeps: the stored one while the phases and limits it was drawn
    /// for are unchanged, else none (readers then draw it from the new ones until the merge
    /// retimes the intersection).
    fn plan_for(&self, x: &Intersection) -> Option<Plan> {
        self.plan
            .as_ref()
            .filter(|(_, phases, limits)| *phases == x.phases && *limits == x.control.limits)
            .map(|(p, _, _)| p.clone())
    }
}

pub(crate) fn stale(id: &IntersectionId) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "intersection {id} changed since you read it (an edit or a retiming): read it again"
    ))
}

/// Stores `x` over the version it was read at, atomically: a change in between is a 412 when
/// the client named the version, else a 409 (the request can simply be sent again). Its
/// `plan` becomes the stored one if the write keeps it ([`ReadAt`]), else none.
pub(crate) async fn store(
    state: &Shared,
    x: &mut Intersection,
    from: &ReadAt,
) -> ApiResult<Version> {
    store_recording(state, x, from, None).await
}

/// As [`store`], with `change` (an operator's edit of the timings) entering the timing history
/// in the same atomic write: the edit and its history entry land together or not at all.
pub(crate) async fn store_recording(
    state: &Shared,
    x: &mut Intersection,
    from: &ReadAt,
    change: Option<&TimingChange>,
) -> ApiResult<Version> {
    from.check(&x.id)?;
    x.plan = from.plan_for(x);
    let x = &*x;
    let registry = &state.ports.registry;
    let stored = match change {
        Some(c) => {
            registry
                .replace_intersection_recording(x, &from.current, c)
                .await
        }
        None => registry.replace_intersection_if(x, &from.current).await,
    };
    match stored {
        Ok(v) => Ok(v),
        Err(PortError::Conflict(_)) if from.precondition() => Err(stale(&x.id)),
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

/// Validates the whole intersection; the error names the field. A `proposal` sent back as read
/// is kept, but its phases must be timings the document allows (`Phase`): one out of range
/// was stored and then served against the document.
pub(crate) fn validate(x: &Intersection) -> ApiResult<()> {
    x.validate("")
        .map_err(|e| ApiError::bad(e.field, e.message))?;
    let max = traffic_core::city::MAX_PHASE_TIME_S;
    for (p, phase) in x.proposal.iter().flat_map(|p| p.phases.iter().enumerate()) {
        if !(phase.green_s > 0.0 && phase.green_s <= max) {
            return Err(ApiError::bad(
                format!("proposal.phases[{p}].green_s"),
                format!("must be positive, at most {max} s"),
            ));
        }
        if !(phase.red_s >= 0.0 && phase.red_s <= max) {
            return Err(ApiError::bad(
                format!("proposal.phases[{p}].red_s"),
                format!("must be zero or more, at most {max} s"),
            ));
        }
    }
    Ok(())
}

/// Validates an intersection whose phases a request changed but whose control it did not:
/// limits that no longer fit the new phases (more minimum greens than phases) are a 409, a
/// conflict with what is stored, which `PUT .../control` resolves; anything else as
/// [`validate`].
pub(crate) fn validate_new_phases(x: &Intersection) -> ApiResult<()> {
    x.validate("").map_err(|e| {
        if e.field.starts_with("control.") {
            ApiError::conflict(
                e.field,
                format!(
                    "{}: the intersection's limits name more phases than it would have; change them first (PUT /api/intersections/{}/control)",
                    e.message, x.id
                ),
            )
        } else {
            ApiError::bad(e.field, e.message)
        }
    })
}

pub(crate) fn position_of(x: &Intersection, light: LightIndex) -> ApiResult<usize> {
    x.lights
        .iter()
        .position(|l| l.light == light)
        .ok_or_else(|| ApiError::not_found("light", format!("{} has no light {light}", x.id)))
}
