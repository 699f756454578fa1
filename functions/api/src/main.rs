//! The `api` Lambda: wiring only (tracing, configuration, ports, the runtime). The router is
//! the library's, the same one `traffic local` serves on a TCP listener.

use api::{ApiState, router};
use lambda_http::{Error, run};
use traffic_functions::init_tracing;
use traffic_functions::wiring::{Ports, engine_config_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = engine_config_from_env()?;
    let ports = Ports::from_env().await?;
    // In AWS the template's authorizer guards the mutating routes; a token is optional there.
    let token = std::env::var("TRAFFIC_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    run(router(ApiState { ports, cfg, token })).await
}
