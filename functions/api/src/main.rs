//! The `api` Lambda: wiring only (configuration once, clients once, the runtime). The router
//! is the library's, the same one `traffic local` serves on a TCP listener.

use api::{ApiState, router_metered};
use lambda_http::{Error, run};
use traffic_functions::{Config, Metrics, init_tracing_with};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    init_tracing_with("info", &config.log);
    let ports = config.aws_ports().await?.ports;
    // In AWS the template's authorizer guards the mutating routes; a token is optional there.
    let metrics = Metrics::from_config(&config);
    run(router_metered(
        ApiState {
            ports,
            cfg: config.engine,
            token: config.api_token,
            alarms: config.alarms,
        },
        metrics,
    ))
    .await
}
