//! The `fault` Lambda: wiring only (configuration once, clients once, the runtime).

use fault::FaultHandler;
use lambda_runtime::Error;
use traffic_functions::lambda::{Lambda, serve_batches};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Lambda {
        config,
        ports,
        metrics,
    } = Lambda::start().await?;
    let fault = FaultHandler::from_ports(config.engine, &ports)
        .with_alarm_policy(config.alarms)
        .with_metrics(metrics);
    serve_batches(&fault).await
}
