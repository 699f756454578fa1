//! The `fault` Lambda: wiring only (configuration once, clients once, the runtime).

use fault::FaultHandler;
use lambda_runtime::Error;
use traffic_functions::lambda::{Lambda, serve_batches};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let lambda = Lambda::start().await?;
    let fault = FaultHandler::from_ports(lambda.config.engine, &lambda.ports)
        .with_alarm_policy(lambda.config.alarms)
        .with_metrics(lambda.metrics);
    serve_batches(&fault).await
}
