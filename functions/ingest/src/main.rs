//! The `ingest` Lambda: wiring only (configuration once, clients once, the runtime).

use aws_lambda_events::event::kinesis::KinesisEvent;
use ingest::IngestHandler;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use traffic_functions::{BatchHandler, Config, Metrics, init_tracing_with};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    init_tracing_with("info", &config.log);
    let ports = config.aws_ports().await?.ports;
    let metrics = Metrics::from_config(&config);
    let ingest = IngestHandler::from_ports(config.engine, &ports).with_metrics(metrics);
    let ingest = &ingest;
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(ingest.handle(&event.payload).await)
        },
    ))
    .await
}
