//! The `fault` Lambda: wiring only (tracing, ports, the runtime).

use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::Fault;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use traffic_functions::directory::Directory;
use traffic_functions::init_tracing;
use traffic_functions::wiring::Ports;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let ports = Ports::from_env().await?;
    let directory = Directory::default();
    let fault = Fault {
        lamps: ports.lamps.as_ref(),
        publisher: ports.publisher.as_ref(),
        registry: ports.registry.as_ref(),
        directory: &directory,
        stats: ports.stats.as_ref(),
    };
    let fault = &fault;
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(fault.handle(&event.payload).await)
        },
    ))
    .await
}
