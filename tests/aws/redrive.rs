//! `traffic redrive` on the emulator (Kinesis, SQS, DynamoDB): a batch that `ingest` failed on
//! goes to the on-failure queue while the shard moves on past it; redelivering it through the
//! live path applies nothing (the checkpoint is past it); the redrive applies it, once, and the
//! results then equal `traffic replay` of the same readings (a run without the failure); a
//! second redrive of the same failure record counts duplicates and changes nothing; a record
//! whose window the merge has closed is reported as final; fault's failure records go through
//! fault's handler.

use crate::support::{Faulty, assert_same, aws_env};
use anyhow::ensure;
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, Provisional};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use traffic_app::aws::redrive::{Consumer, RedriveContext, redrive_queue};
use traffic_app::aws::setup;
use traffic_app::driver::SimDriver;
use traffic_app::esm::{EventSourceMapping, Mapping, MappingConfig, OnFailure, kinesis_event};
use traffic_app::replay::{ReplayOptions, replay};
use traffic_aws::KinesisSource;
use traffic_aws::kinesis::KinesisSink;
use traffic_aws::range::{StreamRef, read_range};
use traffic_aws::sns::SnsPublisher;
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{MemoryCheckpoints, Ports, StateStore};
use traffic_sim::{CityConfig, SimConfig, generate_city};

/// 2026-01-05T07:00:00Z.
const START_MS: i64 = 1_767_596_400_000;

/// The bodies of the messages in the queue, left there (visible again at once).
async fn messages(c: &traffic_aws::AwsClients, url: &str) -> anyhow::Result<Vec<String>> {
    let got = c
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .wait_time_seconds(1)
        .send()
        .await?;
    Ok(got
        .messages()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_batch_ingest_gave_up_on_is_redriven_once_and_the_results_equal_a_run_without_the_failure()
-> anyhow::Result<()> {
    let Some(env) = aws_env("redrive").await else {
        return Ok(());
    };
    let c = &env.clients;
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections: 3,
        seed: 7,
        ..CityConfig::default()
    })?;
    let resources = env.resources(1);
    let (created, store) = setup(c, &resources, &city, &cfg).await?;
    let queue = traffic_aws::setup::ensure_queue(c, &format!("{}-failed", env.prefix)).await?;
    let dir = tempfile::tempdir()?;
    let readings_file = dir.path().join("readings.jsonl");
    let mut ports = Ports::from_store(
        Arc::new(store.clone()),
        Arc::new(SnsPublisher::new(
            c.sns.clone(),
            Some(created.topic_arn.clone()),
        )),
    );

    // 25 simulated minutes of 3 intersections, no lamp failures.
    let mut driver = SimDriver::new(
        &city,
        SimConfig {
            seed: 11,
            start_ms: START_MS,
            lamp_failure_probability: 0.0,
            ..SimConfig::default()
        },
        KinesisSink::new(c.kinesis.clone(), &resources.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?
    .record_to(&readings_file)?;
    let mut sent = 0u64;
    let mut per_step = 0u64;
    for _ in 0..25 {
        let n = driver.step().await?.readings.len() as u64;
        per_step = per_step.max(n);
        sent += n;
    }

    // The first batch (two minutes of readings) fails twice at its commit, as a DynamoDB
    // outage would: the mapping sends it to the queue and moves on.
    let faulty = Faulty::new(store.clone());
    faulty.fail_commits.store(2, Ordering::SeqCst);
    let mut live = ports.clone();
    live.state = faulty.clone();
    let esm = EventSourceMapping::new(
        Arc::new(KinesisSource::new(c, &resources.stream).await?),
        Arc::new(MemoryCheckpoints::default()),
        vec![Mapping {
            config: MappingConfig {
                batch_size: (2 * per_step) as usize,
                poll_interval: Duration::from_millis(100),
                max_attempts: 2,
                bisect_on_error: false,
                retry_backoff: Duration::from_millis(10),
                on_failure: OnFailure::Sqs(queue.url.clone()),
                ..MappingConfig::new("ingest")
            },
            handler: Arc::new(IngestHandler::from_ports(cfg.clone(), &live)),
        }],
    )
    .with_sqs(c.sqs.clone());
    let progress = esm.progress();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(esm.follow(rx.into()));
    let done = progress
        .wait_until(Duration::from_secs(60), |s| {
            s.get("ingest")
                .is_some_and(|x| x.records + x.records_to_destination >= sent)
        })
        .await;
    let _ = stop.send(true);
    task.await?;
    ensure!(done, "{:?}", progress.snapshot());
    let failed = progress.of("ingest").records_to_destination;
    assert_eq!(failed, 2 * per_step, "{:?}", progress.of("ingest"));
    let bodies = messages(c, &queue.url).await?;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body = bodies[0].clone();
    let info: serde_json::Value = serde_json::from_str(&body)?;
    let shard = info["KinesisBatchInfo"]["shardId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let meta = store.shard_metas().await?;
    assert_eq!(meta[0].counters.accepted, sent - failed, "the rest landed");

    // The live path cannot replay it: every record is at or below the checkpoint.
    let start = SequenceNumber::parse(
        info["KinesisBatchInfo"]["startSequenceNumber"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let end = SequenceNumber::parse(
        info["KinesisBatchInfo"]["endSequenceNumber"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let records = read_range(
        &c.kinesis,
        &StreamRef::Name(resources.stream.clone()),
        &ShardId::from(shard.as_str()),
        &start,
        &end,
    )
    .await?;
    assert_eq!(records.len() as u64, failed);
    let again = IngestHandler::from_ports(cfg.clone(), &ports)
        .process(&kinesis_event(
            &ShardId::from(shard.as_str()),
            "",
            &c.region,
            &records,
        ))
        .await;
    assert_eq!(again.redelivered, failed, "{again:?}");
    assert_eq!(again.counters.accepted, 0, "{again:?}");

    // The redrive: from the queue, by the failure record's stream ARN.
    ports.state = Arc::new(store.clone());
    let ctx = RedriveContext {
        cfg: cfg.clone(),
        ports: ports.clone(),
        kinesis: c.kinesis.clone(),
        stream: None,
        consumer: None,
        region: c.region.clone(),
        alarms: Default::default(),
    };
    let first = redrive_queue(&ctx, &c.sqs, &queue.url, 100).await?;
    println!("first redrive: {}", serde_json::to_string(&first)?);
    assert_eq!((first.messages, first.redriven, first.left), (1, 1, 0));
    assert_eq!(first.counts.applied, failed, "{first:?}");
    assert_eq!(first.counts.records(), failed);
    assert_eq!(first.batches[0].consumer, Some(Consumer::Ingest));
    assert!(
        messages(c, &queue.url).await?.is_empty(),
        "the message was deleted"
    );
    let after_first = store.shard_metas().await?;
    assert_eq!(after_first[0].counters.accepted, sent);
    assert_eq!(after_first[0].applied_through, meta[0].applied_through);

    // The same failure record again (a message redelivered, or sent again by hand): counted
    // as duplicates, nothing written.
    c.sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body(&body)
        .send()
        .await?;
    let second = redrive_queue(&ctx, &c.sqs, &queue.url, 100).await?;
    println!("second redrive: {}", serde_json::to_string(&second)?);
    assert_eq!(second.counts.duplicate, failed, "{second:?}");
    assert_eq!(second.counts.applied, 0);
    assert_eq!(store.shard_metas().await?, after_first);

    // The results equal a run without the failure.
    MergeHandler::from_ports(cfg.clone(), Provisional::None, &ports)
        .with_holder("redrive")
        .run(CloseUpTo::All)
        .await?;
    let city_file = dir.path().join("city.json");
    std::fs::write(&city_file, serde_json::to_string(&city)?)?;
    let replayed = replay(
        cfg.clone(),
        &city_file,
        &readings_file,
        &ReplayOptions {
            alarms: Default::default(),
            shards: 1,
            batch_size: 100,
        },
    )
    .await?;
    let mut ours = ports.results.results().await?;
    ours.sort_by_key(|w| w.window);
    ensure!(!ours.is_empty(), "no results");
    assert_same(
        &serde_json::to_value(&ours)?,
        &serde_json::to_value(&replayed.windows)?,
        "windows",
    );

    // A failure record whose window the merge has closed since: reported as final, with a
    // count, and nothing written.
    let mut late = info.clone();
    late["KinesisBatchInfo"]["endSequenceNumber"] = serde_json::json!(start.as_str());
    late["KinesisBatchInfo"]["batchSize"] = serde_json::json!(1);
    c.sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body(late.to_string())
        .send()
        .await?;
    let before_final = store.shard_metas().await?;
    let third = redrive_queue(&ctx, &c.sqs, &queue.url, 100).await?;
    println!("after the merge: {}", serde_json::to_string(&third)?);
    assert_eq!(third.counts.final_, 1, "{third:?}");
    assert_eq!(third.counts.applied, 0);
    let after_final = store.shard_metas().await?;
    assert_eq!(
        after_final[0].counters.late,
        before_final[0].counters.late + 1
    );
    assert!(
        after_final[0]
            .deltas
            .iter()
            .all(|d| before_final[0].deltas.contains(d)),
        "no delta listed for a final reading"
    );

    // The same range from fault's queue (Lambda's record names the function): through fault's
    // own handler, whose lamp transitions are idempotent by event time; no lamp broke here.
    let mut from_fault = info.clone();
    from_fault["requestContext"]["functionArn"] = serde_json::json!(
        "arn:aws:lambda:eu-south-1:123456789012:function:traffic-FaultFunction-X1"
    );
    c.sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body(from_fault.to_string())
        .send()
        .await?;
    let fault = redrive_queue(&ctx, &c.sqs, &queue.url, 100).await?;
    println!("fault's: {}", serde_json::to_string(&fault)?);
    assert_eq!(fault.batches[0].consumer, Some(Consumer::Fault));
    assert_eq!(
        (fault.redriven, fault.counts.applied, fault.alarms),
        (1, failed, 0)
    );

    env.cleanup(&resources, Some(&created.topic_arn), &[&queue])
        .await;
    Ok(())
}
