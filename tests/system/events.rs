//! The result events the merge publishes, on the embedded store: one "Window closed" per
//! window closed with the stored summary, one "Timings changed" per retiming round with the
//! plans stored with the new timings, and a publish that fails is redone by the next run with
//! the same results.

use crate::support::store_with_city;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, MergeReport, Provisional};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_core::EngineConfig;
use traffic_core::events::{ResultEvent, TimingsChanged, WindowClosed};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{PortError, PortResult, Registry, ResultEvents, ResultStore};

fn kinesis_event() -> anyhow::Result<KinesisEvent> {
    Ok(serde_json::from_str(include_str!(
        "../fixtures/kinesis-event.json"
    ))?)
}

/// The fixture's readings ingested into a store with the sample city.
async fn ingested() -> anyhow::Result<(tempfile::TempDir, EmbeddedStore, EngineConfig)> {
    let (dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    IngestHandler::from_ports(cfg.clone(), &store.ports())
        .process(&kinesis_event()?)
        .await;
    Ok((dir, store, cfg))
}

async fn merge_all(
    cfg: &EngineConfig,
    store: &EmbeddedStore,
    events: Arc<dyn ResultEvents>,
) -> PortResult<MergeReport> {
    MergeHandler::from_ports(
        cfg.clone(),
        Provisional::All,
        &store.ports().with_events(events),
    )
    .with_holder("events-test")
    .run(CloseUpTo::All)
    .await
}

/// What the store's closed results and a run's retiming say the events must be.
async fn expected(store: &EmbeddedStore, report: &MergeReport) -> anyhow::Result<Vec<ResultEvent>> {
    let mut closed: Vec<_> = store
        .results()
        .await?
        .into_iter()
        .filter(|r| r.closed && report.closed.contains(&r.window))
        .collect();
    closed.sort_by_key(|r| report.closed.iter().position(|w| *w == r.window));
    let mut out: Vec<ResultEvent> = closed
        .iter()
        .map(|r| ResultEvent::WindowClosed(WindowClosed::of(r)))
        .collect();
    let control = report
        .closed
        .iter()
        .rev()
        .find(|w| w.length.to_string() == "15m")
        .ok_or_else(|| anyhow::anyhow!("no 15-minute window closed"))?;
    // The plans the registry holds for the intersections retimed from that window.
    let plans = store
        .intersections()
        .await?
        .into_iter()
        .filter(|x| x.retimed_from == Some(control.to_string()))
        .map(|x| {
            let plan = x
                .plan
                .ok_or_else(|| anyhow::anyhow!("{} retimed without a plan", x.id))?;
            Ok((x.id, plan))
        })
        .collect::<anyhow::Result<_>>()?;
    out.extend(
        TimingsChanged::round(*control, report.retimed, report.retiming_conflicts, plans)
            .into_iter()
            .map(ResultEvent::TimingsChanged),
    );
    Ok(out)
}

/// `p` with every number rounded to the microsecond: the embedded registry keeps
/// intersections (and so the plans a redone round reads back) as JSON, whose reading may move
/// the last bit of a float; results and events come back bit for bit.
fn settle(p: &mut traffic_core::plan::Plan) {
    let us = |x: &mut f64| *x = (*x * 1e6).round() / 1e6;
    us(&mut p.cycle_s);
    p.offset_s.as_mut().map(us);
    for ph in &mut p.phases {
        us(&mut ph.min_green_s);
        us(&mut ph.green_s);
        us(&mut ph.max_green_s);
    }
}

/// `events` with their plans settled ([`settle`]).
fn settled(mut events: Vec<ResultEvent>) -> Vec<ResultEvent> {
    for e in &mut events {
        if let ResultEvent::TimingsChanged(t) = e {
            t.plans.values_mut().for_each(settle);
        }
    }
    events
}

#[tokio::test]
async fn closing_windows_publishes_each_ones_stored_summary_and_the_retiming_round()
-> anyhow::Result<()> {
    let (_dir, store, cfg) = ingested().await?;
    let report = merge_all(&cfg, &store, Arc::new(store.clone())).await?;
    assert_eq!(report.closed.len(), 3, "15m, 1h and 24h: {report:?}");
    assert!(report.retimed > 0, "{report:?}");

    let events = store.result_events()?;
    assert_eq!(
        settled(events.clone()),
        settled(expected(&store, &report).await?)
    );
    assert_eq!(report.events_published, 4);
    let ResultEvent::WindowClosed(fifteen) = &events[0] else {
        anyhow::bail!("first event {:?}", events[0]);
    };
    // I-0001: (12·43.5 + 8·50) / 20 = 46.1; I-0002: 30 (as the stored result).
    let top: Vec<_> = fifteen
        .top10
        .iter()
        .map(|e| (e.intersection_id.as_str(), e.mean_speed_kmh))
        .collect();
    assert_eq!(top, vec![("I-0001", 46.1), ("I-0002", 30.0)]);
    // The round carries each retimed intersection's plan: the one drawn from its new timings.
    let Some(ResultEvent::TimingsChanged(round)) = events.last() else {
        anyhow::bail!("last event {:?}", events.last());
    };
    assert_eq!(round.plans.len(), report.retimed, "{round:?}");
    for (id, plan) in &round.plans {
        let x = store
            .intersection(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no {id}"))?;
        let drawn = traffic_core::plan::plan(
            &x.phases,
            cfg.webster.yellow_s,
            x.control.limits.as_ref(),
            &cfg.plan,
        );
        let (mut plan, mut drawn) = (plan.clone(), drawn);
        settle(&mut plan);
        settle(&mut drawn);
        assert_eq!(plan, drawn, "{id}");
        assert_eq!(plan.offset_s, None);
    }
    let detail: serde_json::Value = serde_json::from_str(&events[3].detail()?)?;
    assert!(
        detail["plans"]["I-0001"]["phases"][0]["max_green_s"].is_f64(),
        "{detail}"
    );

    // A run that closes nothing publishes nothing.
    let again = merge_all(&cfg, &store, Arc::new(store.clone())).await?;
    assert!(again.closed.is_empty(), "{again:?}");
    assert_eq!(again.events_published, 0);
    assert_eq!(store.result_events()?.len(), 4);
    Ok(())
}

/// A bus that refuses the first `fail` publishes, then hands events to the embedded store.
struct FlakyBus {
    inner: EmbeddedStore,
    fail: AtomicUsize,
}

#[async_trait]
impl ResultEvents for FlakyBus {
    async fn publish_events(&self, events: &[ResultEvent]) -> PortResult<()> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::Unavailable {
                context: "PutEvents".into(),
                source: "injected: ServiceUnavailable".into(),
            });
        }
        self.inner.publish_events(events).await
    }
}

#[tokio::test]
async fn a_publish_that_fails_fails_the_run_and_the_next_run_publishes_the_same_windows()
-> anyhow::Result<()> {
    // The same readings merged once without a fault: what must come out.
    let (_d, clean, cfg) = ingested().await?;
    let clean_report = merge_all(&cfg, &clean, Arc::new(clean.clone())).await?;
    let want = clean.result_events()?;

    let (_dir, store, cfg) = ingested().await?;
    let bus = Arc::new(FlakyBus {
        inner: store.clone(),
        fail: AtomicUsize::new(1),
    });
    let failed = merge_all(&cfg, &store, bus.clone()).await;
    assert!(failed.is_err(), "the run reports the failed publish");
    assert!(store.result_events()?.is_empty());

    let report = merge_all(&cfg, &store, bus.clone()).await?;
    assert_eq!(
        report.closed, clean_report.closed,
        "the same windows close again"
    );
    assert_eq!(
        settled(store.result_events()?),
        settled(want),
        "the same events, once each"
    );
    assert_eq!(
        store.results().await?,
        clean.results().await?,
        "the same results"
    );
    Ok(())
}
