//! One CloudWatch metric line per request (`traffic_functions::metrics::RequestMetrics`): the
//! route's template with its method (`GET /api/intersections/{id}`, `unmatched` for a path
//! that is no route, so that ids never become dimension values), the status class, the
//! status code, and the time to the response. And the request's one step span, `api.route`
//! ([`trace`]: an X-Ray subsegment inside Lambda, `traffic_functions::xray`).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use traffic_functions::Metrics;
use traffic_functions::metrics::{RequestMetrics, status_class};

/// The `Route` dimension of a request: its method and matched route, or `unmatched`.
pub fn route_of(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", req.method(), path.as_str()),
        None => "unmatched".to_owned(),
    }
}

/// Runs the request and writes its line when `metrics` is on.
pub async fn measure(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    if !metrics.is_on() {
        return next.run(req).await;
    }
    let route = route_of(&req);
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let code = response.status().as_u16();
    metrics.request(RequestMetrics {
        function: "api",
        route,
        status: status_class(code),
        status_code: u64::from(code),
        requests: 1,
        server_errors: u64::from(code >= 500),
        latency: started.elapsed().as_secs_f64() * 1000.0,
    });
    response
}

/// Runs the request inside the span `api.route`: its `method`, its `route` (as the `Route`
/// dimension: ids never become annotations), its `status`; `error` for a 4xx answer, `fault`
/// for a 5xx one (as X-Ray marks them). The store calls inside are not spans of their own.
pub async fn trace(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "api.route",
        method = %req.method(),
        route = %route_of(&req),
        status = tracing::field::Empty,
        error = tracing::field::Empty,
        fault = tracing::field::Empty
    );
    let response = next.run(req).instrument(span.clone()).await;
    let code = response.status().as_u16();
    span.record("status", code);
    if (400..500).contains(&code) {
        span.record("error", true);
    } else if code >= 500 {
        span.record("fault", true);
    }
    response
}
