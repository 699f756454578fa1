//! The `ingest` Lambda: wiring only (configuration once, clients once, the runtime).

use ingest::IngestHandler;
use lambda_runtime::Error;
use traffic_functions::lambda::{Lambda, serve_batches};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Lambda {
        config,
        ports,
        metrics,
    } = Lambda::start().await?;
    let ingest = IngestHandler::from_ports(config.engine, &ports).with_metrics(metrics);
    serve_batches(&ingest).await
}
