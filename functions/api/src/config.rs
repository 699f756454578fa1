//! `/api/config`: the engine parameters the dashboard needs.

use crate::Shared;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde::Serialize;
use traffic_core::webster::WebsterConfig;

/// The engine parameters the dashboard shows and computes with.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigView {
    /// Window lengths, ascending (`15m`, `1h`, `24h`).
    pub windows: Vec<String>,
    /// Length of the speed ranking.
    pub top_k: usize,
    /// Allowed lateness of readings, ms.
    pub allowed_lateness_ms: i64,
    /// Webster's parameters (the yellow time completes a phase's cycle).
    pub webster: WebsterConfig,
    /// Whether writes need a bearer token (`false`: only an API Gateway authorizer admits them).
    pub token_required: bool,
}

/// `GET /api/config`.
pub async fn config(State(state): State<Shared>) -> Json<ConfigView> {
    Json(ConfigView {
        windows: state.cfg.windows().iter().map(|w| w.to_string()).collect(),
        top_k: state.cfg.top_k,
        allowed_lateness_ms: state.cfg.allowed_lateness_ms,
        webster: state.cfg.webster.clone(),
        token_required: state.token.as_deref().is_some_and(|t| !t.is_empty()),
    })
}
