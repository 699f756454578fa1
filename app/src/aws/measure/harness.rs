//! The pieces a measured run is wired from besides the real adapters: a stream in memory for
//! the simulator's readings, and a timer around each batch handler.

use crate::driver::ReadingStream;
use crate::stream::MemorySource;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use traffic_aws::kinesis::PutReport;
use traffic_core::Reading;
use traffic_functions::BatchHandler;

/// A stream in memory whose readings arrive at the end of their simulated minute.
pub(super) struct MinuteArrivals(pub(super) Arc<MemorySource>);

#[async_trait]
impl ReadingStream for MinuteArrivals {
    async fn put_readings(&mut self, readings: &[Reading]) -> anyhow::Result<PutReport> {
        for r in readings {
            let arrival = r.ts_ms - r.ts_ms.rem_euclid(60_000) + 60_000;
            self.0.put(
                r.intersection_id.as_str().to_owned(),
                r.to_json().into_bytes(),
                arrival,
            );
        }
        Ok(PutReport {
            records: readings.len(),
            ..PutReport::default()
        })
    }
}

/// A batch handler that counts its invocations and the time they took.
pub(super) struct Timed {
    pub(super) inner: Arc<dyn BatchHandler>,
    pub(super) calls: AtomicU64,
    pub(super) nanos: AtomicU64,
}

impl Timed {
    pub(super) fn new(inner: Arc<dyn BatchHandler>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl BatchHandler for Timed {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let t = Instant::now();
        let r = self.inner.handle(event).await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}
