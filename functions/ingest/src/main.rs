//! The `ingest` Lambda: wiring only (configuration once, clients once, the runtime).

use ingest::IngestHandler;
use lambda_runtime::Error;
use traffic_functions::lambda::{Lambda, serve_batches};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let lambda = Lambda::start().await?;
    let ingest =
        IngestHandler::from_ports(lambda.config.engine, &lambda.ports).with_metrics(lambda.metrics);
    serve_batches(&ingest).await
}
