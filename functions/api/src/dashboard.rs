//! The dashboard: one HTML page, its script (`app.js` and the ES modules it imports) and style
//! sheet, embedded in the binary with `include_str!` so that it works offline and on a closed
//! network (no CDN, no external font).

use crate::OPENAPI_JSON;
use crate::error::ApiError;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
/// Each file named, by name, with its contents from `assets/` (embedded at build time).
macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../assets/", $name)))),*]
    };
}

/// The page's script by file name: `app.js` and the modules it imports, one concern each.
const SCRIPTS: &[(&str, &str)] = assets![
    "app.js",
    "alarms.js",
    "api.js",
    "detail.js",
    "dom.js",
    "editor.js",
    "map.js",
    "refresh.js",
    "results.js",
    "state.js",
    "stats.js",
    "timings.js",
    "volume.js",
];
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// Only this origin: the page loads nothing from anywhere else.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    let mut r = asset(INDEX_HTML, "text/html; charset=utf-8");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// `GET /assets/{file}`: the page's script modules, style sheet and icon.
pub async fn asset_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    if let Some((_, body)) = SCRIPTS.iter().find(|(name, _)| *name == file) {
        return Ok(asset(body, "text/javascript; charset=utf-8"));
    }
    match file.as_str() {
        "app.css" => Ok(asset(APP_CSS, "text/css; charset=utf-8")),
        "favicon.svg" => Ok(asset(FAVICON_SVG, "image/svg+xml")),
        _ => Err(ApiError::not_found("file", format!("no asset {file:?}"))),
    }
}

/// `GET /api/openapi.json`: the OpenAPI 3 document of the API.
pub async fn openapi() -> Response {
    asset(OPENAPI_JSON, "application/json")
}
