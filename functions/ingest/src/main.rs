//! The `ingest` Lambda: wiring only (tracing, configuration, ports, the runtime).

use aws_lambda_events::event::kinesis::KinesisEvent;
use ingest::Ingest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use traffic_functions::directory::Directory;
use traffic_functions::init_tracing;
use traffic_functions::wiring::{Ports, engine_config_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = engine_config_from_env()?;
    let ports = Ports::from_env().await?;
    let directory = Directory::default();
    let ingest = Ingest {
        cfg: &cfg,
        state: ports.state.as_ref(),
        registry: ports.registry.as_ref(),
        directory: &directory,
        stats: ports.stats.as_ref(),
    };
    let ingest = &ingest;
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(ingest.handle(&event.payload).await)
        },
    ))
    .await
}
