//! One CloudWatch metric line per request (`traffic_functions::metrics::RequestMetrics`): the
//! route's template with its method (`GET /api/intersections/{id}`, `unmatched` for a path
//! that is no route, so that ids never become dimension values), the status class, the
//! status code, and the time to the response.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
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
