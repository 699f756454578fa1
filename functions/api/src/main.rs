//! The `api` Lambda: wiring only (configuration once, clients once, the runtime). The router
//! is the library's, the same one `traffic local` serves on a TCP listener.

use api::{ApiState, router_metered};
use lambda_http::{Error, run};
use traffic_functions::lambda::Lambda;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let lambda = Lambda::start().await?;
    // In AWS the template's authorizer guards the mutating routes; a token is optional there.
    run(router_metered(
        ApiState {
            ports: lambda.ports,
            cfg: lambda.config.engine,
            token: lambda.config.api_token,
            alarms: lambda.config.alarms,
        },
        lambda.metrics,
    ))
    .await
}
