//! The `api` Lambda: wiring only (configuration once, clients once, the runtime). The router
//! is the library's, the same one `traffic local` serves on a TCP listener.

use api::{ApiState, router_metered};
use lambda_http::{Error, run};
use traffic_functions::lambda::Lambda;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Lambda {
        config,
        ports,
        metrics,
    } = Lambda::start().await?;
    // In AWS the template's authorizer guards the mutating routes; a token is optional there.
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
