//! The router on a registry whose intersection the merge retimes between the API's read and
//! its write: an operator's change without `If-Match` is applied again to the retimed
//! intersection (a few times, then a 409 "send it again"); one with `If-Match` is a 412.

mod support;

use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;
use traffic_core::window::WindowKey;
use traffic_core::{Intersection, IntersectionId};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{PortResult, ProposalUpdate, Registry, TimingChange, TimingUpdate};

/// The embedded registry, with a retiming of the intersection landing before each of its
/// first `retimings` conditional writes.
struct RetimedBeforeWrite {
    inner: EmbeddedStore,
    retimings: usize,
    done: AtomicUsize,
}

impl RetimedBeforeWrite {
    /// The merge's retiming: the first green one second longer, at the version it reads.
    async fn retime(&self, id: &IntersectionId) -> PortResult<()> {
        if self.done.fetch_add(1, Ordering::SeqCst) >= self.retimings {
            return Ok(());
        }
        if let Some((x, version)) = self.inner.intersection_versioned(id).await? {
            let mut phases = x.phases.clone();
            phases[0].green_s += 1.0;
            let update = TimingUpdate {
                id: id.clone(),
                phases,
                plan: None,
                expected_version: version,
            };
            let from: WindowKey = "15m@2026-01-05T08:00:00Z"
                .parse()
                .map_err(|_| traffic_ports::PortError::Corrupt("window".into()))?;
            self.inner.set_timings(&[update], &from).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Registry for RetimedBeforeWrite {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        self.inner.intersections().await
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
    ) -> PortResult<Option<(Intersection, traffic_ports::Version)>> {
        self.inner.intersection_versioned(id).await
    }
    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &traffic_ports::Version,
    ) -> PortResult<traffic_ports::Version> {
        self.retime(&x.id).await?;
        self.inner.replace_intersection_if(x, expected).await
    }
    async fn delete_intersection_if(
        &self,
        id: &IntersectionId,
        expected: &traffic_ports::Version,
    ) -> PortResult<()> {
        self.inner.delete_intersection_if(id, expected).await
    }
    async fn intersections_versioned(
        &self,
    ) -> PortResult<Vec<(Intersection, traffic_ports::Version)>> {
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
    async fn operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(IntersectionId, TimingChange)>> {
        self.inner.operator_edits(from_ms, to_ms).await
    }
    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &traffic_ports::Version,
        change: &TimingChange,
    ) -> PortResult<traffic_ports::Version> {
        self.retime(&x.id).await?;
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

/// A router whose registry is retimed before each of its first `retimings` writes, with the
/// intersection I-0001 created before.
async fn retimed_api(retimings: usize) -> anyhow::Result<Api> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let mut ports = api.store.ports();
    ports.registry = Arc::new(RetimedBeforeWrite {
        inner: api.store.clone(),
        retimings,
        done: AtomicUsize::new(0),
    });
    Ok(Api {
        router: api::router(api::ApiState {
            ports,
            cfg: traffic_core::EngineConfig::default(),
            token: Some(TOKEN.to_owned()),
            alarms: Default::default(),
        }),
        store: api.store,
        _dir: api._dir,
    })
}

const CONTROL: &str = "/api/intersections/I-0001/control";

#[tokio::test]
async fn a_control_set_while_the_merge_retimes_is_applied_to_the_retimed_intersection()
-> anyhow::Result<()> {
    let api = retimed_api(2).await?;
    let before = api.get("/api/intersections/I-0001").await?;
    let green = before.body["phases"][0]["green_s"].as_f64().unwrap_or(0.0);
    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"manual"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let after = api.get("/api/intersections/I-0001").await?;
    assert_eq!(after.body["control"]["mode"], "manual", "{after:?}");
    // Both retimings stand: the operator's change was applied over them.
    assert_eq!(
        after.body["phases"][0]["green_s"].as_f64(),
        Some(green + 2.0)
    );
    Ok(())
}

#[tokio::test]
async fn a_control_set_retimed_under_it_every_time_is_a_409_and_one_naming_a_version_a_412()
-> anyhow::Result<()> {
    let api = retimed_api(usize::MAX).await?;
    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"manual"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::CONFLICT, "{a:?}");
    assert!(a.text.contains("send it again"), "{a:?}");

    let api = retimed_api(1).await?;
    let etag = api
        .get("/api/intersections/I-0001")
        .await?
        .etag
        .unwrap_or_default();
    let a = api
        .call_with(
            "PUT",
            CONTROL,
            Some(r#"{"mode":"manual"}"#),
            true,
            &[("if-match", &etag)],
        )
        .await?;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{a:?}");
    let after = api.get("/api/intersections/I-0001").await?;
    assert_ne!(after.body["control"]["mode"], "manual", "{after:?}");
    Ok(())
}
