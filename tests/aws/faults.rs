//! Faults on AWS's APIs: a batch redelivered after its state was written, a poison record in
//! the middle of a batch, throttling and lost connections from DynamoDB, a resharded stream,
//! and a shard that gets nothing. Each test checks the results against `traffic replay` of the
//! same readings, or the windows that close.

use crate::support::{AwsEnv, Faulty, Proxy, assert_same, aws_env};
use anyhow::{Context, ensure};
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, Provisional};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use traffic_app::aws::setup;
use traffic_app::driver::SimDriver;
use traffic_app::esm::{EventSourceMapping, Mapping, MappingConfig, OnFailure};
use traffic_app::replay::{ReplayOptions, replay};
use traffic_app::runner::{Runner, RunnerOptions};
use traffic_aws::kinesis::{Entry, KinesisSink};
use traffic_aws::setup::{Created, Resources};
use traffic_aws::sns::SnsPublisher;
use traffic_aws::{DynamoStore, KinesisSource, StoreOptions};
use traffic_core::{City, EngineConfig};
use traffic_functions::BatchHandler;
use traffic_ports::Ports;
use traffic_ports::{ManualClock, MemoryCheckpoints};
use traffic_ports::{PortError, StateStore, StreamShards};
use traffic_sim::{CityConfig, SimConfig, generate_city};

/// 2026-01-05T07:00:00Z.
const START_MS: i64 = 1_767_596_400_000;

struct Fixture {
    env: AwsEnv,
    cfg: EngineConfig,
    city: City,
    resources: Resources,
    created: Created,
    store: DynamoStore,
    dir: tempfile::TempDir,
}

async fn fixture(test: &str, shards: i32, intersections: usize) -> anyhow::Result<Option<Fixture>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let cfg = EngineConfig::default();
    let city = generate_city(&CityConfig {
        intersections,
        seed: 7,
        ..CityConfig::default()
    })?;
    let resources = env.resources(shards);
    let (created, store) = setup(&env.clients, &resources, &city, &cfg).await?;
    Ok(Some(Fixture {
        env,
        cfg,
        city,
        resources,
        created,
        store,
        dir: tempfile::tempdir()?,
    }))
}

impl Fixture {
    fn ports(&self, state: Arc<dyn StateStore>) -> Ports {
        let mut p = Ports::from_store(
            Arc::new(self.store.clone()),
            Arc::new(SnsPublisher::new(
                self.env.clients.sns.clone(),
                Some(self.created.topic_arn.clone()),
            )),
        );
        p.state = state;
        p
    }

    fn readings_file(&self) -> std::path::PathBuf {
        self.dir.path().join("readings.jsonl")
    }

    /// Puts `steps` periods of the city into the stream (recording them); returns how many.
    async fn put_steps(&self, steps: usize) -> anyhow::Result<u64> {
        let ports = self.ports(Arc::new(self.store.clone()));
        let mut driver = SimDriver::new(
            &self.city,
            SimConfig {
                seed: 11,
                start_ms: START_MS,
                lamp_failure_probability: 0.002,
                ..SimConfig::default()
            },
            KinesisSink::new(self.env.clients.kinesis.clone(), &self.resources.stream),
            ports.registry.clone(),
            ports.lamps.clone(),
        )?
        .record_to(&self.readings_file())?;
        let mut sent = 0;
        for _ in 0..steps {
            sent += driver.step().await?.readings.len() as u64;
        }
        Ok(sent)
    }

    /// Closes every window and checks the results against `traffic replay` of the recorded
    /// readings (with `shards` shards, like the stream).
    async fn check_against_replay(&self, shards: usize) -> anyhow::Result<()> {
        let ports = self.ports(Arc::new(self.store.clone()));
        MergeHandler::from_ports(self.cfg.clone(), Provisional::None, &ports)
            .with_holder("check_against_replay")
            .run(CloseUpTo::All)
            .await?;
        let city_file = self.dir.path().join("city.json");
        std::fs::write(&city_file, serde_json::to_string(&self.city)?)?;
        let replayed = replay(
            self.cfg.clone(),
            &city_file,
            &self.readings_file(),
            &ReplayOptions {
                alarms: Default::default(),
                shards,
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
        let alarms: Vec<traffic_core::AlarmId> = ports
            .lamps
            .alarms()
            .await?
            .iter()
            .map(|a| a.alarm.id())
            .collect();
        ensure!(
            alarms.len() == replayed.alarms.len(),
            "alarms {alarms:?} vs replay {:?}",
            replayed.alarms
        );
        Ok(())
    }

    async fn cleanup(&self) {
        self.env
            .cleanup(&self.resources, Some(&self.created.topic_arn), &[])
            .await;
    }
}

fn fast() -> RunnerOptions {
    RunnerOptions {
        batch_size: 50,
        poll_interval: Duration::from_millis(100),
        merge_every: Duration::from_secs(3600),
        list_interval: Duration::from_millis(300),
        max_attempts: 10,
        ..RunnerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_batch_redelivered_after_its_state_was_written_changes_no_result() -> anyhow::Result<()> {
    let Some(f) = fixture("redelivery", 1, 6).await? else {
        return Ok(());
    };
    let sent = f.put_steps(20).await?;
    // The first three commits land, then report a lost connection: the mapping retries
    // those records although their state is already in DynamoDB.
    let faulty = Faulty::new(f.store.clone());
    faulty.fail_after_write.store(3, Ordering::SeqCst);
    let runner = Runner::start(
        f.cfg.clone(),
        f.ports(faulty.clone()),
        &f.env.clients,
        &f.resources.stream,
        fast(),
    )
    .await?;
    ensure!(runner.wait_for_records(sent, Duration::from_secs(90)).await);
    let ingest = runner.progress().of("ingest");
    runner.stop().await;
    assert_eq!(faulty.fail_after_write.load(Ordering::SeqCst), 0);
    assert!(ingest.retries >= 3, "{ingest:?}");
    assert_eq!(ingest.records_to_destination, 0);
    let metas = f.store.shard_metas().await?;
    let accepted: u64 = metas.iter().map(|m| m.counters.accepted).sum();
    let duplicates: u64 = metas.iter().map(|m| m.counters.duplicates).sum();
    assert_eq!(accepted, sent, "every reading counted once");
    assert_eq!(
        duplicates, 0,
        "redelivered records are skipped, not counted"
    );
    f.check_against_replay(1).await?;
    println!(
        "redelivery: {sent} readings, {} retried invocations, results = replay",
        ingest.retries
    );
    f.cleanup().await;
    Ok(())
}

/// `ingest`, except that it fails on every record whose partition key is `poison` (after
/// handling the records before it), as a function with a bug would.
struct Choking(IngestHandler);

#[async_trait]
impl BatchHandler for Choking {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let Some(at) = event
            .records
            .iter()
            .position(|r| r.kinesis.partition_key == "poison")
        else {
            return self.0.handle(event).await;
        };
        let mut before = event.clone();
        before.records.truncate(at);
        let response = self.0.handle(&before).await;
        if !response.batch_item_failures.is_empty() {
            return response;
        }
        let mut failure = KinesisBatchItemFailure::default();
        failure.item_identifier = Some(event.records[at].kinesis.sequence_number.clone());
        let mut r = KinesisEventResponse::default();
        r.batch_item_failures.push(failure);
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_poison_record_in_the_middle_of_a_batch_is_skipped_and_reported_while_the_rest_proceeds()
-> anyhow::Result<()> {
    let Some(f) = fixture("poison", 1, 6).await? else {
        return Ok(());
    };
    let sink = KinesisSink::new(f.env.clients.kinesis.clone(), &f.resources.stream);
    let sent = f.put_steps(2).await?;
    // A malformed record (ingest rejects and counts it) and a record the handler chokes on,
    // in the middle of the stream; then more readings.
    sink.put(&[
        Entry {
            partition_key: "I-0001".into(),
            data: br#"{"intersection_id": 42, "light":"#.to_vec(),
        },
        Entry {
            partition_key: "poison".into(),
            data: br#"{"poison":true}"#.to_vec(),
        },
    ])
    .await?;
    let more = f.put_steps_after(2).await?;
    let total = sent + 2 + more;

    let failed_file = f.dir.path().join("failed-batches.jsonl");
    let ports = f.ports(Arc::new(f.store.clone()));
    let esm = EventSourceMapping::new(
        Arc::new(KinesisSource::new(&f.env.clients, &f.resources.stream).await?),
        Arc::new(MemoryCheckpoints::default()),
        vec![Mapping {
            config: MappingConfig {
                batch_size: 1000,
                poll_interval: Duration::from_millis(100),
                max_attempts: 3,
                retry_backoff: Duration::from_millis(20),
                on_failure: OnFailure::File(failed_file.clone()),
                ..MappingConfig::new("ingest")
            },
            handler: Arc::new(Choking(IngestHandler::from_ports(f.cfg.clone(), &ports))),
        }],
    )
    .with_sqs(f.env.clients.sqs.clone());
    let progress = esm.progress();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(esm.follow(rx.into()));
    let done = progress
        .wait_until(Duration::from_secs(60), |s| {
            s.get("ingest")
                .is_some_and(|x| x.records + x.records_to_destination >= total)
        })
        .await;
    let _ = stop.send(true);
    task.await?;
    ensure!(
        done,
        "not all records were handled: {:?}",
        progress.snapshot()
    );
    let ingest = progress.of("ingest");
    assert_eq!(ingest.records_to_destination, 1, "{ingest:?}");
    assert_eq!(ingest.batches_to_destination, 1);
    assert!(ingest.bisections >= 1, "{ingest:?}");

    let lines = std::fs::read_to_string(&failed_file).context("the on-failure file")?;
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 1);
    let rec = &lines[0];
    assert_eq!(rec["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(rec["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(rec["records"][0]["partitionKey"], "poison");

    let metas = f.store.shard_metas().await?;
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].counters.accepted, sent + more, "the rest landed");
    assert_eq!(
        metas[0].counters.rejected, 1,
        "the malformed record is counted"
    );
    println!(
        "poison: {total} records; the malformed one rejected and counted, the choking one sent to {} after {} invocations, the other {} accepted",
        failed_file.display(),
        ingest.invocations,
        sent + more
    );
    f.cleanup().await;
    Ok(())
}

impl Fixture {
    /// Puts `steps` more periods, continuing where [`Fixture::put_steps`] stopped (the
    /// recording goes on in the same file).
    async fn put_steps_after(&self, steps: usize) -> anyhow::Result<u64> {
        let text = std::fs::read_to_string(self.readings_file()).unwrap_or_default();
        let last = text
            .lines()
            .filter_map(|l| traffic_core::Reading::parse(l.as_bytes()).ok())
            .map(|r| r.ts_ms)
            .max()
            .unwrap_or(START_MS);
        let ports = self.ports(Arc::new(self.store.clone()));
        let mut driver = SimDriver::new(
            &self.city,
            SimConfig {
                seed: 12,
                start_ms: last,
                lamp_failure_probability: 0.0,
                ..SimConfig::default()
            },
            KinesisSink::new(self.env.clients.kinesis.clone(), &self.resources.stream),
            ports.registry.clone(),
            ports.lamps.clone(),
        )?
        .record_to(&self.readings_file())?;
        let mut sent = 0;
        for _ in 0..steps {
            sent += driver.step().await?.readings.len() as u64;
        }
        Ok(sent)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_throttled_store_is_retried_and_the_results_recover() -> anyhow::Result<()> {
    let Some(f) = fixture("throttled", 2, 8).await? else {
        return Ok(());
    };
    let sent = f.put_steps(16).await?;
    let faulty = Faulty::new(f.store.clone());
    faulty.fail_commits.store(4, Ordering::SeqCst);
    let runner = Runner::start(
        f.cfg.clone(),
        f.ports(faulty.clone()),
        &f.env.clients,
        &f.resources.stream,
        fast(),
    )
    .await?;
    ensure!(runner.wait_for_records(sent, Duration::from_secs(90)).await);
    let ingest = runner.progress().of("ingest");
    runner.stop().await;
    assert_eq!(faulty.fail_commits.load(Ordering::SeqCst), 0);
    assert!(ingest.retries >= 1, "{ingest:?}");
    assert_eq!(ingest.records_to_destination, 0);
    f.check_against_replay(2).await?;
    println!(
        "throttled: 4 commits refused as throttled, {} retried invocations, results = replay",
        ingest.retries
    );
    f.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn throttling_and_lost_connections_become_retryable_errors_and_pass() -> anyhow::Result<()> {
    let Some(f) = fixture("proxy", 1, 2).await? else {
        return Ok(());
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if endpoint.is_empty() {
        println!("proxy: skipped (needs AWS_ENDPOINT_URL)");
        return Ok(());
    }
    let proxy = Proxy::start(&endpoint).await?;
    let store = DynamoStore::new(
        proxy.clients().await.dynamodb,
        f.created.names.clone(),
        StoreOptions::default(),
    );
    // More throttling than the SDK retries (3 tries): the port says "unavailable, retry".
    proxy.throttle_next.store(10, Ordering::SeqCst);
    let e = store
        .shard_metas()
        .await
        .err()
        .context("expected an error")?;
    assert!(matches!(e, PortError::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(format!("{e}").contains("Throttling"), "{e}");
    proxy.throttle_next.store(0, Ordering::SeqCst);
    // Connections dropped: the same.
    proxy.drop_next.store(10, Ordering::SeqCst);
    let e = store
        .delta_panes(0)
        .await
        .err()
        .context("expected an error")?;
    assert!(matches!(e, PortError::Unavailable { .. }), "{e:?}");
    proxy.drop_next.store(0, Ordering::SeqCst);
    // A little throttling: the SDK's backoff absorbs it and the call succeeds.
    proxy.throttle_next.store(2, Ordering::SeqCst);
    assert!(store.shard_metas().await?.is_empty());
    assert!(
        traffic_ports::Registry::intersection(&store, &f.city.intersections[0].id)
            .await?
            .is_some()
    );
    f.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_resharded_stream_is_read_parent_first_and_nothing_is_lost() -> anyhow::Result<()> {
    let Some(f) = fixture("reshard", 1, 8).await? else {
        return Ok(());
    };
    let sent = f.put_steps(5).await?;
    // Split the only shard in two.
    let c = &f.env.clients;
    c.kinesis
        .split_shard()
        .stream_name(&f.resources.stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await?;
    for _ in 0..100 {
        let s = c
            .kinesis
            .describe_stream_summary()
            .stream_name(&f.resources.stream)
            .send()
            .await?;
        if s.stream_description_summary()
            .is_some_and(|d| d.stream_status().as_str() == "ACTIVE")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let more = f.put_steps_after(5).await?;
    let shards = c
        .kinesis
        .list_shards()
        .stream_name(&f.resources.stream)
        .send()
        .await?;
    let children = shards
        .shards()
        .iter()
        .filter(|s| s.parent_shard_id() == Some("shardId-000000000000"))
        .count();
    assert_eq!(children, 2);
    // The merge's view of the same split (`StreamShards` on ListShards): the parent closed,
    // two open children naming it.
    let lineage =
        traffic_aws::KinesisShards::new(c.kinesis.clone(), Some(f.resources.stream.clone()))
            .shards()
            .await?;
    let parent = lineage
        .iter()
        .find(|s| s.id == "shardId-000000000000")
        .context("the parent is still listed")?;
    assert!(parent.closed, "{lineage:?}");
    assert_eq!(
        lineage
            .iter()
            .filter(|s| s.is_child_of(&parent.id) && !s.closed)
            .count(),
        2,
        "{lineage:?}"
    );
    let runner = Runner::start(
        f.cfg.clone(),
        f.ports(Arc::new(f.store.clone())),
        c,
        &f.resources.stream,
        fast(),
    )
    .await?;
    // moto (5.2.5) keeps routing records to the closed parent after a split, so there they
    // all come from the parent; on Kinesis the later ones come from the children. Either way
    // the children start only once the parent has been read to its end.
    let progress = runner.progress();
    let done = progress
        .wait_until(Duration::from_secs(90), |s| {
            ["ingest", "fault"].iter().all(|m| {
                s.get(*m).is_some_and(|x| {
                    x.records >= sent + more && x.shards_finished >= 1 && x.shards_started == 3
                })
            })
        })
        .await;
    let snapshot = progress.snapshot();
    runner.stop().await;
    ensure!(done, "{snapshot:?}");
    let metas = f.store.shard_metas().await?;
    let accepted: u64 = metas.iter().map(|m| m.counters.accepted).sum();
    assert_eq!(accepted, sent + more);
    // A closed shard stops counting for the watermark only once a child of its has state.
    let finished = traffic_core::lineage::finished_shards(&metas, &lineage);
    let child_has_state = metas.iter().any(|m| {
        lineage
            .iter()
            .any(|s| s.id == m.shard_id && s.is_child_of(&parent.id))
    });
    assert_eq!(finished.contains(&parent.id), child_has_state, "{metas:?}");
    println!(
        "reshard: {} readings over a split (parent then two children), each counted once",
        sent + more
    );
    f.cleanup().await;
    Ok(())
}

/// A handler that fails every batch from its first record.
struct AlwaysFails;

#[async_trait]
impl BatchHandler for AlwaysFails {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let mut r = KinesisEventResponse::default();
        if let Some(first) = event.records.first() {
            let mut f = KinesisBatchItemFailure::default();
            f.item_identifier = Some(first.kinesis.sequence_number.clone());
            r.batch_item_failures.push(f);
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_batch_given_up_on_is_described_in_the_sqs_destination() -> anyhow::Result<()> {
    let Some(f) = fixture("destination", 1, 2).await? else {
        return Ok(());
    };
    let c = &f.env.clients;
    let queue = traffic_aws::setup::ensure_queue(c, &format!("{}-failed", f.env.prefix)).await?;
    let sink = KinesisSink::new(c.kinesis.clone(), &f.resources.stream);
    let entries: Vec<Entry> = (0..3)
        .map(|i| Entry {
            partition_key: format!("k{i}"),
            data: format!("{{\"n\":{i}}}").into_bytes(),
        })
        .collect();
    sink.put(&entries).await?;
    let esm = EventSourceMapping::new(
        Arc::new(KinesisSource::new(c, &f.resources.stream).await?),
        Arc::new(MemoryCheckpoints::default()),
        vec![Mapping {
            config: MappingConfig {
                batch_size: 10,
                poll_interval: Duration::from_millis(100),
                max_attempts: 2,
                bisect_on_error: false,
                retry_backoff: Duration::from_millis(10),
                on_failure: OnFailure::Sqs(queue.url.clone()),
                ..MappingConfig::new("ingest")
            },
            handler: Arc::new(AlwaysFails),
        }],
    )
    .with_sqs(f.env.clients.sqs.clone());
    let progress = esm.progress();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(esm.follow(rx.into()));
    let done = progress
        .wait_until(Duration::from_secs(30), |s| {
            s.get("ingest")
                .is_some_and(|x| x.records_to_destination >= 3)
        })
        .await;
    let _ = stop.send(true);
    task.await?;
    ensure!(done, "{:?}", progress.snapshot());
    let got = c
        .sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await?;
    let bodies: Vec<serde_json::Value> = got
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or("{}")))
        .collect::<Result<_, _>>()?;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let info = &bodies[0]["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 3);
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(
        bodies[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(bodies[0]["requestContext"]["approximateInvokeCount"], 2);
    assert!(bodies[0].get("records").is_none(), "no data in SQS");
    f.env
        .cleanup(&f.resources, Some(&f.created.topic_arn), &[&queue])
        .await;
    Ok(())
}

/// Runs the runner until `ingest` has taken `sent` records, then stops it.
async fn drain(f: &Fixture, sent: u64) -> anyhow::Result<()> {
    let runner = Runner::start(
        f.cfg.clone(),
        f.ports(Arc::new(f.store.clone())),
        &f.env.clients,
        &f.resources.stream,
        fast(),
    )
    .await?;
    let progress = runner.progress();
    let done = progress
        .wait_until(Duration::from_secs(90), |s| {
            s.get("ingest").is_some_and(|x| x.records >= sent)
        })
        .await;
    let snapshot = progress.snapshot();
    runner.stop().await;
    ensure!(done, "{snapshot:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_shard_that_gets_nothing_stops_holding_the_windows_once_idle() -> anyhow::Result<()> {
    // Three intersections on four shards: at least one shard gets nothing.
    let Some(f) = fixture("idle", 4, 3).await? else {
        return Ok(());
    };
    let c = &f.env.clients;
    let sent = f.put_steps(30).await?;
    drain(&f, sent).await?;
    let with_state = f.store.shard_metas().await?.len();
    ensure!(with_state < 4, "every shard got readings");
    let stream =
        traffic_aws::KinesisShards::new(c.kinesis.clone(), Some(f.resources.stream.clone()));
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::at(now));
    let ports = f
        .ports(Arc::new(f.store.clone()))
        .with_events(Arc::new(traffic_ports::NoResultEvents))
        .with_stream(Arc::new(stream))
        .with_clock(clock.clone());
    let merge =
        MergeHandler::from_ports(f.cfg.clone(), Provisional::None, &ports).with_holder("idle");
    // The silent shards have caught up, but not for the idle timeout yet: they hold every
    // window (they could still deliver readings of 07:00).
    let first = merge.run(CloseUpTo::Watermark).await?;
    ensure!(first.closed.is_empty(), "{first:?}");
    // A minute more of readings, then the idle timeout later: the silent shards stop holding
    // the windows, the others (which just received) decide.
    let more = f.put_steps_after(1).await?;
    drain(&f, sent + more).await?;
    clock.set(now + f.cfg.idle_timeout_ms);
    let second = merge.run(CloseUpTo::Watermark).await?;
    assert_eq!(second.shards_idle, 4 - with_state, "{second:?}");
    let closed: Vec<String> = second
        .closed
        .iter()
        .filter(|w| w.length.to_string() == "15m")
        .map(|w| traffic_core::time::format_rfc3339_ms(w.start_ms))
        .collect();
    assert_eq!(closed, ["2026-01-05T07:00:00Z"]);
    println!(
        "idle: 4 shards, {} of them silent; the first 15-minute window closes once they are idle",
        4 - with_state
    );
    f.cleanup().await;
    Ok(())
}
