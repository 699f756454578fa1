//! The whole pipeline on AWS's own APIs (moto in CI, LocalStack or AWS when pointed there):
//! the simulator puts readings into Kinesis, the event source mapping drives `ingest` and
//! `fault`, the merge runs on its timer, and what lands in DynamoDB and SNS is checked against
//! `traffic replay` of the very same readings. Prints the DynamoDB requests per 1,000 readings
//! and the end-to-end latencies (docs/aws.md quotes them).

use crate::support::{assert_same, aws_env, per_thousand, receive_alarms};
use anyhow::{Context, ensure};
use merge::{CloseUpTo, MergeHandler, Provisional};
use std::sync::Arc;
use std::time::Duration;
use traffic_app::aws::setup;
use traffic_app::driver::SimDriver;
use traffic_app::replay::{ReplayOptions, replay};
use traffic_app::runner::{Runner, RunnerOptions};
use traffic_aws::kinesis::KinesisSink;
use traffic_aws::setup::{ensure_queue, subscribe_queue};
use traffic_aws::sns::SnsPublisher;
use traffic_core::reading::LampColour;
use traffic_core::{EngineConfig, LightIndex};
use traffic_ports::Ports;
use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, generate_city};

/// 2026-01-05T07:00:00Z: the morning rise, so that retiming matters.
const START_MS: i64 = 1_767_596_400_000;

fn options() -> RunnerOptions {
    RunnerOptions {
        batch_size: 100,
        poll_interval: Duration::from_millis(100),
        merge_every: Duration::from_millis(300),
        list_interval: Duration::from_secs(1),
        ..RunnerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_city_runs_end_to_end_on_the_aws_apis() -> anyhow::Result<()> {
    let Some(env) = aws_env("end_to_end").await else {
        return Ok(());
    };
    let c = &env.clients;
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections: 12,
        seed: 3,
        ..CityConfig::default()
    })?;
    let resources = env.resources(2);
    let (created, store) = setup(c, &resources, &city, &cfg).await?;
    let queue = ensure_queue(c, &format!("{}-alarm-reader", env.prefix)).await?;
    subscribe_queue(c, &created.topic_arn, &queue).await?;
    let ports = Ports::from_store(
        Arc::new(store.clone()),
        Arc::new(SnsPublisher::new(
            c.sns.clone(),
            Some(created.topic_arn.clone()),
        )),
    );
    let runner = Runner::start(cfg.clone(), ports.clone(), c, &resources.stream, options()).await?;

    let dir = tempfile::tempdir()?;
    let recorded = dir.path().join("readings.jsonl");
    let sim_cfg = SimConfig {
        seed: 5,
        start_ms: START_MS,
        lamp_failure_probability: 0.0,
        ..SimConfig::default()
    };
    let mut driver = SimDriver::new(
        &city,
        sim_cfg.clone(),
        KinesisSink::new(c.kinesis.clone(), &resources.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?
    .record_to(&recorded)?;
    // The same city and seed under fixed timings: what the sensors would report without the
    // control loop.
    let mut fixed = Simulator::new(&city, sim_cfg)?;
    let fixed_controls = Controls::fixed(&city);

    let broken = (city.intersections[2].id.clone(), LightIndex::new(1)?);
    let before = store.metrics().snapshot();
    let mut sent = 0u64;
    let mut first_retimed = None;
    let mut changed_by_retiming = 0usize;
    let mut alarm_latency = None;
    for step in 0..40 {
        if step == 5 {
            driver
                .simulator()
                .break_lamp(&broken.0, broken.1, LampColour::Green);
            fixed.break_lamp(&broken.0, broken.1, LampColour::Green);
        }
        let s = driver.step().await?;
        let twin = fixed.step(&fixed_controls);
        if first_retimed.is_none() && !s.controls.retimed.is_empty() {
            first_retimed = Some(step);
        }
        if first_retimed.is_some() {
            changed_by_retiming += s
                .readings
                .iter()
                .zip(&twin)
                .filter(|(a, b)| (a.vehicles, a.mean_speed_kmh) != (b.vehicles, b.mean_speed_kmh))
                .count();
        }
        sent += s.readings.len() as u64;
        if step == 5 {
            let got = receive_alarms(c, &queue, Duration::from_secs(30), |d| !d.is_empty()).await?;
            ensure!(got.len() == 1, "one alarm expected, got {got:?}");
            alarm_latency = Some(got[0].received_at - s.put_at);
            let a = &got[0];
            assert_eq!(
                a.attributes.get("intersection_id").map(String::as_str),
                Some(broken.0.as_str())
            );
            assert_eq!(a.attributes.get("light").map(String::as_str), Some("1"));
            assert_eq!(a.attributes.get("lamp").map(String::as_str), Some("green"));
            assert!(a.attributes.contains_key("lat") && a.attributes.contains_key("lon"));
            assert!(
                a.subject
                    .as_deref()
                    .is_some_and(|s| s.contains(broken.0.as_str())),
                "{:?}",
                a.subject
            );
            assert!(a.message.contains("green lamp broken"), "{}", a.message);
        }
        ensure!(
            runner.wait_for_records(sent, Duration::from_secs(60)).await,
            "the mappings did not handle {sent} records: {:?}",
            runner.progress().snapshot()
        );
        // A merge run that started after those records landed.
        let merges = runner.merges();
        let n = merges.runs();
        ensure!(
            merges.wait_for(n + 2, Duration::from_secs(60)).await,
            "no merge run"
        );
    }
    let used = store.metrics().snapshot().since(&before);

    // Latency from PutRecords to a provisional result that counts the new readings.
    let s = driver.step().await?;
    sent += s.readings.len() as u64;
    let window = cfg.pane().window_of(s.readings[0].ts_ms);
    let in_window = std::fs::read_to_string(&recorded)?
        .lines()
        .filter_map(|l| traffic_core::Reading::parse(l.as_bytes()).ok())
        .filter(|r| window.contains(r.ts_ms))
        .count() as u64;
    let result_latency = loop {
        let results = ports.results.results().await?;
        if results
            .iter()
            .any(|r| r.window == window && r.readings == in_window)
        {
            break s.put_at.elapsed();
        }
        ensure!(
            s.put_at.elapsed() < Duration::from_secs(60),
            "no result with the new readings"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ensure!(runner.wait_for_records(sent, Duration::from_secs(60)).await);
    let progress = runner.progress().snapshot();
    runner.stop().await;

    // Close every window, as `traffic replay` does at the end of its file.
    MergeHandler::from_ports(cfg.clone(), Provisional::None, &ports)
        .with_holder("aws_pipeline")
        .run(CloseUpTo::All)
        .await?;

    let city_file = dir.path().join("city.json");
    std::fs::write(&city_file, serde_json::to_string(&city)?)?;
    let replayed = replay(
        cfg.clone(),
        &city_file,
        &recorded,
        &ReplayOptions {
            alarms: Default::default(),
            shards: 2,
            batch_size: 100,
        },
    )
    .await
    .context("replaying the recorded readings")?;
    let mut ours = ports.results.results().await?;
    ours.sort_by_key(|w| w.window);
    assert_eq!(ours.len(), replayed.windows.len());
    let keys =
        |w: &[traffic_core::query::WindowResult]| w.iter().map(|r| r.window).collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&replayed.windows));
    // Equal, floats to 1e-12 relative: the embedded store (inside `traffic replay`) keeps
    // results as JSON, and serde_json without `float_roundtrip` may parse a float back one
    // ulp off; DynamoDB's numbers round-trip exactly.
    assert_same(
        &serde_json::to_value(&ours)?,
        &serde_json::to_value(&replayed.windows)?,
        "windows",
    );
    let alarms = ports.lamps.alarms().await?;
    assert_eq!(alarms.len(), 1);
    assert_eq!(replayed.alarms.len(), 1);
    assert!(alarms[0].published);

    // No second message for the lamp that stayed broken.
    let more = receive_alarms(c, &queue, Duration::from_secs(3), |_| false).await?;
    assert!(more.is_empty(), "a second alarm: {more:?}");

    // The control loop: the merge's timings reached the registry, the simulator took them up
    // and the sensors then reported other traffic than under the fixed timings.
    let retimed_at = first_retimed.context("the simulator never saw new timings")?;
    let x = ports
        .registry
        .intersection(&city.intersections[0].id)
        .await?
        .context("intersection")?;
    assert!(x.retimed_from.is_some());
    assert_ne!(x.phases, city.intersections[0].phases);
    assert!(
        !ports
            .registry
            .timing_history(&city.intersections[0].id)
            .await?
            .is_empty()
    );
    assert!(
        changed_by_retiming > 0,
        "retiming changed none of the readings"
    );
    // An operator's edit of the timings (through the API) reaches the field as a retiming
    // does; with nothing changed, nothing is taken up. (The first refresh takes up what the
    // closing merge above retimed.)
    driver.refresh_controls().await?;
    assert!(driver.refresh_controls().await?.retimed.is_empty());
    let mut edited = x.clone();
    edited.phases[0].green_s += 6.0;
    edited.phases[1].red_s += 6.0;
    ports.registry.put_intersection(&edited).await?;
    let update = driver.refresh_controls().await?;
    assert_eq!(update.retimed, [edited.id.clone()]);
    assert_eq!(
        driver.controls().timings.get(&edited.id),
        Some(&edited.phases)
    );

    let readings = sent - s.readings.len() as u64;
    println!(
        "end to end on {}:",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    println!(
        "  {readings} readings (12 intersections, 40 periods, 2 shards, batches as they come, merge every 300 ms)"
    );
    println!(
        "  DynamoDB per 1,000 readings (ingest + fault + merge): {:.1} reads, {:.1} writes; by operation {:?}",
        per_thousand(used.read_requests, readings),
        per_thousand(used.write_requests, readings),
        used.by_operation
    );
    println!(
        "  first retimed timings taken up by the simulator at period {retimed_at}; {changed_by_retiming} readings differed from fixed timings after that"
    );
    println!(
        "  latency PutRecords -> SNS alarm in SQS: {} ms",
        alarm_latency.map(|d| d.as_millis()).unwrap_or_default()
    );
    println!(
        "  latency PutRecords -> result in DynamoDB: {} ms (poll 100 ms, merge timer 300 ms)",
        result_latency.as_millis()
    );
    println!(
        "  mappings: {}",
        serde_json::to_string(
            &progress
                .iter()
                .map(|(k, v)| (k.clone(), (v.records, v.batches, v.invocations)))
                .collect::<std::collections::BTreeMap<_, _>>()
        )?
    );
    env.cleanup(&resources, Some(&created.topic_arn), &[&queue])
        .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_busy_stream_costs_few_dynamodb_requests_per_thousand_readings() -> anyhow::Result<()> {
    let Some(env) = aws_env("requests").await else {
        return Ok(());
    };
    let c = &env.clients;
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections: 50,
        seed: 4,
        ..CityConfig::default()
    })?;
    let resources = env.resources(2);
    let (created, store) = setup(c, &resources, &city, &cfg).await?;
    let ports = Ports::from_store(
        Arc::new(store.clone()),
        Arc::new(SnsPublisher::new(
            c.sns.clone(),
            Some(created.topic_arn.clone()),
        )),
    );
    let mut driver = SimDriver::new(
        &city,
        SimConfig {
            seed: 9,
            start_ms: START_MS,
            ..SimConfig::default()
        },
        KinesisSink::new(c.kinesis.clone(), &resources.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?;
    // Ten minutes of readings (2,000) in the stream before the functions start, as after a
    // batching window: each shard's records come in batches of up to 1,000.
    let mut sent = 0u64;
    for _ in 0..10 {
        sent += driver.step().await?.readings.len() as u64;
    }
    let before = store.metrics().snapshot();
    let runner = Runner::start(
        cfg.clone(),
        ports.clone(),
        c,
        &resources.stream,
        RunnerOptions {
            batch_size: 1000,
            merge_every: Duration::from_secs(3600),
            ..options()
        },
    )
    .await?;
    ensure!(
        runner
            .wait_for_records(sent, Duration::from_secs(120))
            .await
    );
    let progress = runner.progress().snapshot();
    runner.stop().await;
    let streaming = store.metrics().snapshot().since(&before);
    let before = store.metrics().snapshot();
    MergeHandler::from_ports(cfg.clone(), Provisional::All, &ports)
        .with_holder("aws_pipeline")
        .run(CloseUpTo::Watermark)
        .await?;
    let merging = store.metrics().snapshot().since(&before);
    println!(
        "{sent} readings (50 intersections, 10 periods, 2 shards) in batches of up to 1,000 ({} ingest batches):",
        progress
            .get("ingest")
            .map(|p| p.batches)
            .unwrap_or_default()
    );
    println!(
        "  ingest + fault per 1,000 readings: {:.1} reads, {:.1} writes; {:?}",
        per_thousand(streaming.read_requests, sent),
        per_thousand(streaming.write_requests, sent),
        streaming.by_operation
    );
    println!(
        "  one merge run (provisional 15m/1h/24h results): {} reads, {} writes; {:?}",
        merging.read_requests, merging.write_requests, merging.by_operation
    );
    ensure!(
        per_thousand(streaming.write_requests, sent) <= 20.0,
        "too many writes: {streaming:?}"
    );
    env.cleanup(&resources, Some(&created.topic_arn), &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn aws_local_publishes_lamp_alarms_at_the_configured_severities() -> anyhow::Result<()> {
    let Some(env) = aws_env("awslocalsev").await else {
        return Ok(());
    };
    let c = &env.clients;
    let resources = env.resources(1);
    // The topic exists before the run (aws-local keeps what exists), with a queue on it.
    let topic = traffic_aws::setup::ensure_topic(c, &resources.topic).await?;
    let queue = ensure_queue(c, &format!("{}-sev", env.prefix)).await?;
    subscribe_queue(c, &topic, &queue).await?;
    let config = traffic_functions::Config::from_lookup(|k| {
        (k == "ALARM_SEVERITIES").then(|| "red=minor,yellow=minor,green=minor".to_owned())
    })?;
    let opts = traffic_app::aws::AwsLocalOptions {
        resources: resources.clone(),
        city: generate_city(&CityConfig {
            intersections: 6,
            seed: 3,
            ..CityConfig::default()
        })?,
        seed: 3,
        no_simulator: false,
        speedup: 600.0,
        failure_probability: 0.05,
        runner: RunnerOptions {
            poll_interval: Duration::from_millis(100),
            merge_every: Duration::from_secs(3600),
            ..RunnerOptions::default()
        },
        steps: Some(3),
    };
    traffic_app::aws::aws_local(&config, opts, traffic_app::stop::Stop::never()).await?;
    let got = receive_alarms(c, &queue, Duration::from_secs(20), |d| !d.is_empty()).await?;
    ensure!(!got.is_empty(), "no alarm published");
    for d in &got {
        ensure!(
            d.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("[minor]"))
                && d.attributes.get("severity").map(String::as_str) == Some("minor"),
            "{d:?}"
        );
    }
    env.cleanup(&resources, Some(&topic), &[&queue]).await;
    Ok(())
}
