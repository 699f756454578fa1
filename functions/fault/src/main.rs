//! The `fault` Lambda: wiring only (configuration once, clients once, the runtime).

use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::FaultHandler;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use traffic_functions::{BatchHandler, Config, Metrics, init_tracing_with};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    init_tracing_with("info", &config.log);
    let ports = config.aws_ports().await?.ports;
    let fault = FaultHandler::from_ports(config.engine.clone(), &ports)
        .with_alarm_policy(config.alarms.clone())
        .with_metrics(Metrics::from_config(&config));
    let fault = &fault;
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(fault.handle(&event.payload).await)
        },
    ))
    .await
}
