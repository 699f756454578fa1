//! The pieces a measured run is wired from besides the real adapters: a stream in memory for
//! the simulator's readings, a timer around each batch handler, and the simulator's cached
//! view of the registry.

use crate::driver::ReadingSink;
use crate::stream::MemorySource;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use traffic_aws::kinesis::PutReport;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_core::{IntersectionId, LightIndex, Reading};
use traffic_functions::BatchHandler;
use traffic_ports::{LampStore, PortResult, ProposalUpdate, Registry, TimingChange, TimingUpdate};
use traffic_sim::Simulator;

/// Readings into a stream in memory, arriving at the end of their simulated minute; repair
/// orders from the lamp store.
pub(super) struct MemoryReadings {
    pub(super) source: Arc<MemorySource>,
    pub(super) lamps: Arc<dyn LampStore>,
}

#[async_trait]
impl ReadingSink for MemoryReadings {
    async fn repair_orders(&mut self) -> anyhow::Result<Vec<(IntersectionId, LightIndex)>> {
        Ok(self.lamps.take_repairs().await?)
    }

    async fn put(
        &mut self,
        readings: &[Reading],
        _sim: &Simulator,
        _repairs: &[(IntersectionId, LightIndex)],
    ) -> anyhow::Result<PutReport> {
        for r in readings {
            let arrival = r.ts_ms - r.ts_ms.rem_euclid(60_000) + 60_000;
            self.source.put(
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

/// The simulator's view of the registry: the intersections (their timings) read again only
/// after a merge run, which is when retimings land. The simulator is not the system (its
/// reads are not counted), and re-reading a thousand intersections every simulated minute is
/// what made the emulator slowest.
pub(super) struct TimingsAfterMerges {
    pub(super) inner: Arc<dyn Registry>,
    pub(super) cached: tokio::sync::Mutex<Option<Vec<Intersection>>>,
}

impl TimingsAfterMerges {
    pub(super) async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

#[async_trait]
impl Registry for TimingsAfterMerges {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        let mut c = self.cached.lock().await;
        if let Some(xs) = c.as_ref() {
            return Ok(xs.clone());
        }
        let xs = self.inner.intersections().await?;
        *c = Some(xs.clone());
        Ok(xs)
    }
    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)> {
        self.inner.intersections_page(after, limit).await
    }
    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>> {
        self.inner.intersection(id).await
    }
    async fn create_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.inner.create_intersection(x).await
    }
    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.inner.put_intersection(x).await
    }
    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        self.inner.delete_intersection(id).await
    }
    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, String)>> {
        self.inner.intersection_versioned(id).await
    }
    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &str,
    ) -> PortResult<String> {
        self.inner.replace_intersection_if(x, expected).await
    }
    async fn delete_intersection_if(&self, id: &IntersectionId, expected: &str) -> PortResult<()> {
        self.inner.delete_intersection_if(id, expected).await
    }
    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, String)>> {
        self.inner.intersections_versioned().await
    }
    async fn set_timings(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        self.inner.set_timings(timings, from).await
    }
    async fn set_proposals(&self, proposals: &[ProposalUpdate]) -> PortResult<Vec<IntersectionId>> {
        self.inner.set_proposals(proposals).await
    }
    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        self.inner.timing_history(id).await
    }
    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &str,
        change: &TimingChange,
    ) -> PortResult<String> {
        self.inner
            .replace_intersection_recording(x, expected, change)
            .await
    }
    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        self.inner.record_timing_change(id, change).await
    }
}
