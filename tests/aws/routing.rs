//! On the emulator: a `PutRecord` whose `ExplicitHashKey` sends an intersection's reading to
//! the other shard of a 2-shard stream is rejected and counted by `ingest` (and raises no
//! alarm in `fault`), through the same event source mapping and handlers as `traffic
//! aws-local`, with the shards' ranges read by `ListShards` as the Lambda functions do.

use crate::support::aws_env;
use anyhow::{Context, ensure};
use aws_sdk_kinesis::primitives::Blob;
use std::sync::Arc;
use std::time::Duration;
use traffic_app::aws::setup;
use traffic_app::runner::{Runner, RunnerOptions};
use traffic_aws::KinesisShards;
use traffic_aws::sns::SnsPublisher;
use traffic_core::EngineConfig;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::{LampStore, Ports, StateStore, StreamShards};
use traffic_sim::{CityConfig, generate_city};

fn reading(id: &str, light: u8, ts_ms: i64, green: &str) -> String {
    serde_json::json!({
        "intersection_id": id,
        "light": light,
        "ts": format_rfc3339_ms(ts_ms),
        "vehicles": 6,
        "mean_speed_kmh": 41.0,
        "lamps": {"red": "ok", "yellow": "ok", "green": green},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_record_put_with_an_explicit_hash_key_into_the_wrong_shard_is_rejected_and_counted()
-> anyhow::Result<()> {
    let Some(env) = aws_env("routing").await else {
        return Ok(());
    };
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections: 4,
        seed: 3,
        ..CityConfig::default()
    })?;
    let resources = env.resources(2);
    let (created, store) = setup(&env.clients, &resources, &city, &cfg).await?;
    let c = &env.clients;
    let shards = KinesisShards::new(c.kinesis.clone(), Some(resources.stream.clone()));
    let ranges = shards.hash_ranges().await?;
    ensure!(ranges.len() == 2, "two shards: {ranges:?}");

    let id = city.intersections[0].id.to_string();
    let (own, other) = if ranges[0].1.admits(&id) {
        (&ranges[0], &ranges[1])
    } else {
        (&ranges[1], &ranges[0])
    };
    ensure!(own.1.admits(&id) && !other.1.admits(&id));
    let now = chrono::Utc::now().timestamp_millis();
    // Its own shard: light 0, all ok. The other shard, by explicit hash key: light 1 with a
    // broken green lamp.
    let put = c
        .kinesis
        .put_record()
        .stream_name(&resources.stream)
        .partition_key(&id)
        .data(Blob::new(reading(&id, 0, now - 60_000, "ok")))
        .send()
        .await?;
    ensure!(own.0 == put.shard_id(), "{put:?} should be on {}", own.0);
    let put = c
        .kinesis
        .put_record()
        .stream_name(&resources.stream)
        .partition_key(&id)
        .explicit_hash_key(other.1.start.to_string())
        .data(Blob::new(reading(&id, 1, now - 60_000, "broken")))
        .send()
        .await?;
    ensure!(
        other.0 == put.shard_id(),
        "{put:?} should be on {}",
        other.0
    );

    let ports = Ports::from_store(
        Arc::new(store.clone()),
        Arc::new(SnsPublisher::new(
            c.sns.clone(),
            Some(created.topic_arn.clone()),
        )),
    )
    .with_stream(Arc::new(shards));
    let runner = Runner::start(
        cfg,
        ports,
        c,
        &resources.stream,
        RunnerOptions {
            batch_size: 50,
            poll_interval: Duration::from_millis(100),
            merge_every: Duration::from_secs(3600),
            list_interval: Duration::from_millis(300),
            ..RunnerOptions::default()
        },
    )
    .await?;
    let progress = runner.progress();
    let done = progress
        .wait_until(Duration::from_secs(60), |s| {
            ["ingest", "fault"]
                .iter()
                .all(|f| s.get(*f).is_some_and(|x| x.records >= 2))
        })
        .await;
    let snapshot = progress.snapshot();
    runner.stop().await;
    ensure!(done, "{snapshot:?}");

    let metas = store.shard_metas().await?;
    let of = |shard: &str| {
        metas
            .iter()
            .find(|m| m.shard_id == shard)
            .map(|m| (m.counters.accepted, m.counters.rejected))
            .with_context(|| format!("no meta for {shard}: {metas:?}"))
    };
    assert_eq!(
        of(own.0.as_str())?,
        (1, 0),
        "its own shard's reading is accepted"
    );
    assert_eq!(
        of(other.0.as_str())?,
        (0, 1),
        "the misrouted reading is rejected"
    );
    let alarms = store.alarms().await?;
    assert!(
        alarms.is_empty(),
        "the misrouted broken lamp raised {alarms:?}"
    );
    env.cleanup(&resources, Some(&created.topic_arn), &[]).await;
    Ok(())
}
