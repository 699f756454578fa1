//! The HTTP API and the dashboard of the traffic system: one axum [`router`].
//!
//! In AWS the `api` Lambda serves it through `lambda_http` behind an API Gateway HTTP API; locally
//! `traffic local` serves the same router on a TCP listener. Same routes, same validation, same
//! errors. Routes (all JSON, described in `openapi.json`, served at `/api/openapi.json`):
//!
//! - intersections: list, get, create, replace, merge-patch, delete; their lights, phases, lamp
//!   states, the repair of a light's lamps, and their control mode and limits;
//! - results per window length (current and recent windows), current timings and their history,
//!   alarms, statistics (throughput and latency per minute, ingest counters);
//! - the dashboard at `/`, its assets embedded in the binary.
//!
//! Reads are public. Mutating requests (`POST`, `PUT`, `PATCH`, `DELETE`) need either
//! `Authorization: Bearer <token>` with the configured token, or an API Gateway request context
//! whose authorizer approved the request (see `docs/api.md`); otherwise they get 401 and change
//! nothing.
//!
//! Modules: the request helpers [`request`] (parameters, paths, `ETag`s), [`paging`] (page
//! sizes, cursors, the city-wide lists), [`body`]
//! (decoding that names fields), [`error`] (the JSON error form) and [`stored`] (the versioned
//! load and store of an intersection); one module per resource: [`intersections`], [`lights`]
//! (and phases), [`alarms`] (and lamps, repairs), [`control`] (modes, limits, who changed the
//! timings), [`timings`], [`results`] (and the network),
//! [`stats`], [`config`]; [`dashboard`] (and the OpenAPI document); [`metered`] (one
//! CloudWatch metric line per request, and its `api.route` span).

pub mod alarms;
pub mod body;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod error;
pub mod export;
pub mod history;
pub mod intersections;
pub mod lights;
pub mod metered;
pub mod paging;
pub mod request;
pub mod results;
pub mod stats;
pub mod stored;
pub mod timings;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use error::ApiError;
use std::sync::Arc;
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;
use traffic_ports::Ports;

/// What the handlers share: the ports, the engine configuration and the write token.
#[derive(Clone)]
pub struct ApiState {
    /// The stores the API reads and writes.
    pub ports: Ports,
    /// The engine configuration (window lengths, Webster's yellow time).
    pub cfg: EngineConfig,
    /// The bearer token that authorizes mutating requests; `None` accepts only requests that an
    /// API Gateway authorizer approved.
    pub token: Option<String>,
    /// How alarms are handled (the retention of the ones a repair or a deletion closes).
    pub alarms: AlarmPolicy,
}

/// The state as the handlers hold it.
pub type Shared = Arc<ApiState>;

/// The OpenAPI 3 document of the API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Declares the routes once: [`ROUTES`] (their methods and paths, which the OpenAPI test checks)
/// and the function that adds them to the router.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every route of the router, as (method, path) with axum's `{param}` syntax; the
        /// OpenAPI document lists exactly these.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(r: Router<Shared>) -> Router<Shared> {
            r$(.route($path, on(MethodFilter::$method, $handler)))*
        }
    };
}

api_routes! {
    GET "/" => dashboard::index,
    GET "/assets/{file}" => dashboard::asset_file,
    GET "/api/openapi.json" => dashboard::openapi,
    GET "/api/config" => config::config,
    GET "/api/intersections" => intersections::list,
    POST "/api/intersections" => intersections::create,
    GET "/api/intersections/{id}" => intersections::get,
    PUT "/api/intersections/{id}" => intersections::replace,
    PATCH "/api/intersections/{id}" => intersections::patch,
    DELETE "/api/intersections/{id}" => intersections::delete,
    GET "/api/intersections/{id}/lights" => lights::lights,
    POST "/api/intersections/{id}/lights" => lights::add_light,
    GET "/api/intersections/{id}/lights/{light}" => lights::light,
    PUT "/api/intersections/{id}/lights/{light}" => lights::replace_light,
    DELETE "/api/intersections/{id}/lights/{light}" => lights::delete_light,
    POST "/api/intersections/{id}/lights/{light}/repair" => alarms::repair,
    GET "/api/intersections/{id}/phases" => lights::phases,
    PUT "/api/intersections/{id}/phases" => lights::replace_phases,
    GET "/api/intersections/{id}/lamps" => alarms::lamps,
    PUT "/api/intersections/{id}/control" => control::put_control,
    GET "/api/intersections/{id}/timings" => timings::intersection_timings,
    GET "/api/intersections/{id}/history" => history::history,
    GET "/api/timings" => timings::timings,
    GET "/api/results" => results::current_results,
    GET "/api/results/{length}" => results::results,
    GET "/api/network" => results::network,
    GET "/api/network/{length}/{start}" => results::archived_network,
    GET "/api/alarms" => alarms::alarms,
    POST "/api/alarms/{id}/ack" => alarms::ack,
    GET "/api/stats" => stats::stats,
}

/// The router: every route, the write check, and JSON 404/405 answers for unknown routes.
pub fn router(state: ApiState) -> Router {
    router_metered(state, traffic_functions::Metrics::off())
}

/// As [`router`], writing one metric line per request to `metrics` ([`metered`]).
pub fn router_metered(state: ApiState, metrics: traffic_functions::Metrics) -> Router {
    let shared: Shared = Arc::new(state);
    add_routes(Router::new())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .layer(middleware::from_fn_with_state(metrics, metered::measure))
        .layer(middleware::from_fn(metered::trace))
        .with_state(shared)
}

/// The message of the 404 for a path that is no route (as opposed to an unknown id).
pub const NO_ROUTE: &str = "no such route";

async fn no_route() -> ApiError {
    ApiError::NotFound {
        field: None,
        message: NO_ROUTE.to_owned(),
    }
}

async fn method_not_allowed(method: Method) -> Response {
    let body = error::ErrorBody {
        error: format!("method {method} is not allowed here"),
        field: None,
    };
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Whether `method` changes something (and so needs authorization).
pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Lets reads through; lets a write through only with the configured bearer token or an API
/// Gateway authorizer's approval, before any handler (and so any change) runs.
async fn authorize(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if !is_mutating(req.method()) {
        return next.run(req).await;
    }
    match check_write(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::info!(method = %req.method(), path = req.uri().path(), "write refused: {e}");
            e.into_response()
        }
    }
}

fn check_write(state: &ApiState, req: &Request) -> Result<(), ApiError> {
    if approved_by_api_gateway(req) {
        return Ok(());
    }
    // An empty token would let an empty `Bearer ` through: it counts as no token.
    let Some(expected) = state.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::Unauthorized(
            "writes are disabled: no API token is configured and no authorizer approved the request"
                .into(),
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        None => Err(ApiError::Unauthorized(
            "this request changes data: send Authorization: Bearer <token>".into(),
        )),
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("the token is not valid".into())),
    }
}

/// Whether lambda_http's request context says that an API Gateway authorizer (JWT, Lambda or
/// IAM) approved this request. Requests served by a local listener carry no such context.
fn approved_by_api_gateway(req: &Request) -> bool {
    use lambda_http::request::RequestContext;
    match req.extensions().get::<RequestContext>() {
        // API Gateway puts an `authorizer` member in the context only for routes that have an
        // authorizer, and invokes the function only when it approved the request.
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.is_some(),
        _ => false,
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_secrets_compare_equal_and_others_do_not() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }

    #[test]
    fn only_reads_are_not_mutating() {
        assert!(!is_mutating(&Method::GET));
        assert!(is_mutating(&Method::POST));
        assert!(is_mutating(&Method::PATCH));
        assert!(is_mutating(&Method::DELETE));
    }
}
