//! [`BatchHandler`]: a function that takes a batch of Kinesis records and answers with a
//! partial batch response, as a Lambda function with `ReportBatchItemFailures` does. `ingest`
//! and `fault` implement it; the one event source mapping (`traffic-app`) drives it.

use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;

/// A function of Kinesis batches.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles one batch; the response names the records to retry from.
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse;
}
