//! The result events on the emulator's EventBridge: a bus, a rule on source `traffic.merge`
//! sending to an SQS queue (as a subscriber would set it up), a merge that closes windows over
//! readings that went through Kinesis and `ingest`, and the events read back from the queue
//! against the results the merge stored.

use crate::support::aws_env;
use anyhow::{Context, ensure};
use merge::{CloseUpTo, MergeHandler, Provisional};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use traffic_app::aws::setup;
use traffic_app::driver::SimDriver;
use traffic_app::runner::{Runner, RunnerOptions};
use traffic_aws::events::EventBridgePublisher;
use traffic_aws::kinesis::KinesisSink;
use traffic_aws::setup::ensure_queue;
use traffic_core::EngineConfig;
use traffic_core::events::{TimingsChanged, WindowClosed};
use traffic_ports::Ports;
use traffic_sim::{CityConfig, SimConfig, generate_city};

/// 2026-01-05T07:00:00Z.
const START_MS: i64 = 1_767_596_400_000;

/// One EventBridge event as the SQS target receives it.
#[derive(Debug, serde::Deserialize)]
struct Received {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: serde_json::Value,
}

/// Receives what the rule delivered to `url` until `want` events arrived or `timeout` passed.
async fn receive(
    c: &traffic_aws::AwsClients,
    url: &str,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Received>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && out.len() < want {
        let r = c
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .context("receiving from SQS")?;
        for m in r.messages() {
            out.push(serde_json::from_str(m.body().unwrap_or("{}")).context("event body")?);
            if let Some(h) = m.receipt_handle() {
                c.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .context("deleting from SQS")?;
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_events_a_subscriber_reads_from_the_bus_match_the_stored_results() -> anyhow::Result<()>
{
    let Some(env) = aws_env("events").await else {
        return Ok(());
    };
    let c = &env.clients;
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections: 12,
        seed: 7,
        ..CityConfig::default()
    })?;
    let resources = env.resources(2);
    let (created, store) = setup(c, &resources, &city, &cfg).await?;

    // The subscriber's side: a queue, and a rule on the merge's source targeting it, on the
    // bus that the set-up created (`aws-setup` makes it, as the template does).
    let bus = created
        .names
        .event_bus
        .clone()
        .context("the set-up names its event bus")?;
    assert_eq!(bus, format!("{}-results", env.prefix));
    c.events
        .describe_event_bus()
        .name(&bus)
        .send()
        .await
        .context("the set-up's event bus exists")?;
    let queue = ensure_queue(c, &format!("{}-subscriber", env.prefix)).await?;
    let rule = format!("{}-all-results", env.prefix);
    c.events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["traffic.merge"]}"#)
        .send()
        .await?;
    c.events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue.arn)
                .build()?,
        )
        .send()
        .await?;

    // 40 simulated minutes of 12 intersections through Kinesis and ingest.
    let publisher = Arc::new(EventBridgePublisher::new(
        c.events.clone(),
        Some(bus.clone()),
    ));
    let ports = Ports::from_store(
        Arc::new(store.clone()),
        Arc::new(traffic_aws::sns::SnsPublisher::new(
            c.sns.clone(),
            Some(created.topic_arn.clone()),
        )),
    )
    .with_events(publisher.clone());
    let mut driver = SimDriver::new(
        &city,
        SimConfig {
            seed: 11,
            start_ms: START_MS,
            ..SimConfig::default()
        },
        KinesisSink::new(c.kinesis.clone(), &resources.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?;
    let mut sent = 0u64;
    for _ in 0..40 {
        sent += driver.step().await?.readings.len() as u64;
    }
    let runner = Runner::start(
        cfg.clone(),
        ports.clone(),
        c,
        &resources.stream,
        RunnerOptions {
            batch_size: 200,
            poll_interval: Duration::from_millis(100),
            merge_every: Duration::from_secs(3600),
            list_interval: Duration::from_millis(300),
            ..RunnerOptions::default()
        },
    )
    .await?;
    ensure!(runner.wait_for_records(sent, Duration::from_secs(90)).await);
    runner.stop().await;

    // The merge closes every window and publishes.
    let report = MergeHandler::from_ports(
        cfg.clone(),
        Provisional::None,
        &Ports {
            stream: None,
            ..ports.clone()
        },
    )
    .with_holder("aws-events")
    .run(CloseUpTo::All)
    .await?;
    ensure!(report.closed.len() >= 4, "{report:?}");
    ensure!(report.retimed > 0, "{report:?}");
    let calls = publisher.calls();

    let received = receive(
        c,
        &queue.url,
        report.events_published,
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        received.len() == report.events_published,
        "{} events received, {} published",
        received.len(),
        report.events_published
    );
    for r in &received {
        assert_eq!(r.source, "traffic.merge");
    }

    // Every window closed: one "Window closed" event, equal to the stored result's summary.
    let stored = ports.results.results().await?;
    let mut windows = BTreeSet::new();
    for r in received.iter().filter(|r| r.detail_type == "Window closed") {
        let e: WindowClosed = serde_json::from_value(r.detail.clone())?;
        let s = stored
            .iter()
            .find(|s| s.window == e.window)
            .with_context(|| format!("no stored result for {}", e.window))?;
        ensure!(s.closed, "{} is not closed", e.window);
        crate::support::assert_same(
            &serde_json::to_value(WindowClosed::of(s))?,
            &r.detail,
            &e.window.to_string(),
        );
        ensure!(windows.insert(e.window), "{} twice", e.window);
    }
    let closed: BTreeSet<_> = report.closed.iter().copied().collect();
    assert_eq!(windows, closed, "one event per window closed");

    // One retiming round: the latest 15-minute window, with the run's counts and the plans
    // the registry stored with the timings it wrote.
    let rounds: Vec<&serde_json::Value> = received
        .iter()
        .filter(|r| r.detail_type == "Timings changed")
        .map(|r| &r.detail)
        .collect();
    let latest = report
        .closed
        .iter()
        .filter(|w| w.length == cfg.pane())
        .max()
        .copied()
        .context("no 15-minute window closed")?;
    let plans = ports
        .registry
        .intersections()
        .await?
        .into_iter()
        .filter(|x| x.retimed_from == Some(latest.to_string()))
        .map(|x| Ok((x.id.clone(), x.plan.context("retimed without a plan")?)))
        .collect::<anyhow::Result<_>>()?;
    let want = TimingsChanged::round(latest, report.retimed, report.retiming_conflicts, plans);
    assert_eq!(rounds.len(), want.len(), "{rounds:?}");
    ensure!(report.retimed > 0, "nothing retimed: {report:?}");
    for (got, want) in rounds.iter().zip(&want) {
        crate::support::assert_same(&serde_json::to_value(want)?, got, "Timings changed");
    }
    let sizes: Vec<usize> = received
        .iter()
        .map(|r| "traffic.merge".len() + r.detail_type.len() + r.detail.to_string().len())
        .collect();
    println!(
        "events: {sent} readings, {} windows closed, {} events in {calls} PutEvents calls, all read back through the rule's SQS target; entry sizes {sizes:?} bytes",
        report.closed.len(),
        report.events_published
    );
    let _ = c
        .events
        .remove_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .ids("queue")
        .send()
        .await;
    let _ = c
        .events
        .delete_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .send()
        .await;
    let _ = c.events.delete_event_bus().name(&bus).send().await;
    env.cleanup(&resources, Some(&created.topic_arn), &[&queue])
        .await;
    Ok(())
}
