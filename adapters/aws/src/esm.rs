//! An event source mapping over the real Kinesis API: what Lambda's Kinesis trigger does, for
//! places where no Lambda service runs the functions (an emulator, a laptop, a test).
//!
//! For each [`Mapping`] (a consumer: `ingest`, `fault`, each with its own position), and for
//! each shard of the stream:
//!
//! - records are read in order with `GetShardIterator` and `GetRecords`, in batches of up to
//!   `batch_size`, waiting up to `batching_window` to fill one (Lambda's
//!   `MaximumBatchingWindowInSeconds`), polling an idle shard every `poll_interval`;
//! - each batch becomes a `KinesisEvent` exactly as Lambda builds it (`eventID`
//!   `<shard>:<sequence number>`, base64 data, arrival time, the stream's ARN) and is handed to
//!   the [`BatchHandler`], the same code the Lambda binary runs;
//! - the partial batch response is honoured (`ReportBatchItemFailures`): the batch is retried
//!   from the lowest failed sequence number (an identifier not in the batch fails the whole
//!   batch, as in Lambda; so does a handler that panics); after a second failure of the same
//!   records the batch is bisected (`BisectBatchOnFunctionError`; halves start a fresh count);
//!   after `max_attempts` tries of a batch its records go to the on-failure destination and
//!   the shard moves on; records older than `max_record_age` go there without a try;
//! - resharding: `ListShards` is read every `list_interval`; a shard starts only once its
//!   parent (and adjacent parent, after a merge) has been read to its end, so an
//!   intersection's readings are handled in order across a split or a merge. A shard has
//!   ended when `GetRecords` returns no next iterator, or (emulators that never say so) when
//!   it is closed and a read at its tip returns nothing.
//!
//! Positions are kept in memory: a restarted mapping starts again from `starting_position`
//! (the handlers are idempotent, so reading again from the trim horizon is safe).

use crate::error::code_of;
use crate::retry::backoff;
use crate::{AwsClients, KinesisShards};
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use traffic_ports::StreamShards;

/// A function that takes Kinesis batches, as a Lambda function with
/// `ReportBatchItemFailures` does.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles one batch; the response names the records to retry from.
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse;
}

/// Where reading starts on a shard with no position yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartingPosition {
    /// The oldest record kept.
    #[default]
    TrimHorizon,
    /// Only records put from now on.
    Latest,
}

/// Where the records of a batch that could not be handled go.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Logged only.
    #[default]
    Log,
    /// Appended to a file, one JSON document per line, with the records themselves.
    File(PathBuf),
    /// Sent to an SQS queue (by URL), as Lambda does: the batch's description, not its data.
    Sqs(String),
}

/// How one mapping reads and retries.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingConfig {
    /// The consumer's name (`ingest`, `fault`): logs, statistics, destination records.
    pub name: String,
    /// Most records per batch (Lambda allows up to 10,000).
    pub batch_size: usize,
    /// How long to gather records into a batch before handing it over.
    pub batching_window: Duration,
    /// Wait between reads of a shard that had nothing new.
    pub poll_interval: Duration,
    /// Tries of one batch (first try included) before it goes to the destination.
    pub max_attempts: u32,
    /// Split a batch that failed twice into halves.
    pub bisect_on_error: bool,
    /// Records older than this (by arrival in the stream) are not handed over.
    pub max_record_age: Option<Duration>,
    /// Where a new shard is read from.
    pub starting_position: StartingPosition,
    /// Where failed batches go.
    pub on_failure: OnFailure,
    /// First wait before a retry (doubling after each).
    pub retry_backoff: Duration,
}

impl MappingConfig {
    /// Defaults close to a Lambda mapping's: batches of 100, no batching window, a read every
    /// second, 5 tries, bisection, no age limit, from the trim horizon, failures logged.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch_size: 100,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            max_attempts: 5,
            bisect_on_error: true,
            max_record_age: None,
            starting_position: StartingPosition::TrimHorizon,
            on_failure: OnFailure::Log,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// A consumer: its settings and its handler.
#[derive(Clone)]
pub struct Mapping {
    /// Settings.
    pub config: MappingConfig,
    /// The handler.
    pub handler: Arc<dyn BatchHandler>,
}

/// What a mapping has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MappingStats {
    /// Records handled (acknowledged by the handler).
    pub records: u64,
    /// Batches read and handed over.
    pub batches: u64,
    /// Handler invocations (retries and halves included).
    pub invocations: u64,
    /// Retries from a failed record.
    pub retries: u64,
    /// Batches split in two.
    pub bisections: u64,
    /// Records sent to the on-failure destination.
    pub records_to_destination: u64,
    /// Batches sent to the on-failure destination.
    pub batches_to_destination: u64,
    /// Shards started (a child only once its parents are finished).
    pub shards_started: u64,
    /// Shards read to their end.
    pub shards_finished: u64,
    /// `GetRecords` calls.
    pub get_records_calls: u64,
    /// Last sequence number handled, per shard.
    pub checkpoints: BTreeMap<String, String>,
}

/// The counters of every mapping, observable while they run.
#[derive(Debug, Default)]
pub struct Progress {
    stats: Mutex<BTreeMap<String, MappingStats>>,
    changed: Notify,
}

impl Progress {
    /// The counters of every mapping.
    pub fn snapshot(&self) -> BTreeMap<String, MappingStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The counters of one mapping.
    pub fn of(&self, name: &str) -> MappingStats {
        self.stats
            .lock()
            .ok()
            .and_then(|s| s.get(name).cloned())
            .unwrap_or_default()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut MappingStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(s.entry(name.to_owned()).or_default());
        }
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds for the counters of every mapping, or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, MappingStats>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if done(&self.snapshot()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Also wake now and then, in case a notification slipped between check and wait.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

/// The mapping could not start.
#[derive(Debug, thiserror::Error)]
#[error("event source mapping on {stream}: {message}")]
pub struct EsmError {
    /// The stream.
    pub stream: String,
    /// What went wrong.
    pub message: String,
}

pub use traffic_core::lineage::ShardInfo;

/// The shards that may start now: not started yet, and every parent of theirs either read to
/// its end or no longer listed (past the stream's retention).
pub fn ready_shards(
    shards: &[ShardInfo],
    started: &BTreeSet<String>,
    finished: &BTreeSet<String>,
) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let parent_done = |p: &Option<String>| match p {
        None => true,
        Some(p) => finished.contains(p) || !listed.contains(p.as_str()),
    };
    shards
        .iter()
        .filter(|s| !started.contains(&s.id))
        .filter(|s| parent_done(&s.parent) && parent_done(&s.adjacent_parent))
        .map(|s| s.id.clone())
        .collect()
}

/// Compares Kinesis sequence numbers (decimal strings) numerically.
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Where to retry a batch from, given its handler's response: the index of the record with
/// the lowest failed sequence number; 0 (all) when an identifier is not in the batch; `None`
/// when nothing failed.
pub fn retry_index(sequence_numbers: &[&str], response: &KinesisEventResponse) -> Option<usize> {
    let mut lowest: Option<usize> = None;
    for f in &response.batch_item_failures {
        let pos = f
            .item_identifier
            .as_deref()
            .and_then(|id| sequence_numbers.iter().position(|s| seq_cmp(s, id).is_eq()));
        match pos {
            None => return Some(0),
            Some(p) => lowest = Some(lowest.map_or(p, |l: usize| l.min(p))),
        }
    }
    lowest
}

struct Ctx {
    clients: AwsClients,
    stream: String,
    stream_arn: String,
    list_interval: Duration,
    progress: Arc<Progress>,
}

/// The mappings of one stream.
pub struct EventSourceMapping {
    ctx: Arc<Ctx>,
    mappings: Vec<Mapping>,
}

impl EventSourceMapping {
    /// Mappings on `stream` (its ARN is looked up now).
    pub async fn new(
        clients: &AwsClients,
        stream: &str,
        mappings: Vec<Mapping>,
    ) -> Result<Self, EsmError> {
        let summary = clients
            .kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| EsmError {
                stream: stream.to_owned(),
                message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
            })?;
        let stream_arn = summary
            .stream_description_summary()
            .map(|s| s.stream_arn().to_owned())
            .unwrap_or_default();
        Ok(Self {
            ctx: Arc::new(Ctx {
                clients: clients.clone(),
                stream: stream.to_owned(),
                stream_arn,
                list_interval: Duration::from_secs(10),
                progress: Arc::new(Progress::default()),
            }),
            mappings,
        })
    }

    /// Re-reads the shard list this often (new shards after a reshard start within it, or as
    /// soon as a parent ends).
    pub fn with_list_interval(mut self, every: Duration) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.list_interval = every;
        }
        self
    }

    /// The counters, to watch while the mapping runs.
    pub fn progress(&self) -> Arc<Progress> {
        self.ctx.progress.clone()
    }

    /// Runs every mapping until `shutdown` turns true (or its sender is dropped).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut set = tokio::task::JoinSet::new();
        for m in self.mappings {
            set.spawn(coordinate(self.ctx.clone(), Arc::new(m), shutdown.clone()));
        }
        while set.join_next().await.is_some() {}
    }
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

async fn list_shards(ctx: &Ctx) -> Result<Vec<ShardInfo>, String> {
    KinesisShards::new(ctx.clients.kinesis.clone(), Some(ctx.stream.clone()))
        .shards()
        .await
        .map_err(|e| e.to_string())
}

async fn coordinate(ctx: Arc<Ctx>, mapping: Arc<Mapping>, mut shutdown: watch::Receiver<bool>) {
    let name = mapping.config.name.clone();
    let closed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut failures = 0;
    while !stopping(&shutdown) {
        match list_shards(&ctx).await {
            Ok(shards) => {
                failures = 0;
                if let Ok(mut c) = closed.lock() {
                    c.extend(shards.iter().filter(|s| s.closed).map(|s| s.id.clone()));
                }
                for id in ready_shards(&shards, &started, &finished) {
                    tracing::info!(mapping = %name, shard = %id, "reading shard");
                    ctx.progress.update(&name, |s| s.shards_started += 1);
                    started.insert(id.clone());
                    tasks.spawn(read_shard(
                        ctx.clone(),
                        mapping.clone(),
                        id,
                        closed.clone(),
                        shutdown.clone(),
                        done_tx.clone(),
                    ));
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(mapping = %name, error = %e, "listing shards failed");
            }
        }
        let wait = if failures > 0 {
            backoff(failures, ctx.list_interval)
        } else {
            ctx.list_interval
        };
        tokio::select! {
            r = shutdown.changed() => if r.is_err() { break },
            Some(id) = done_rx.recv() => {
                tracing::info!(mapping = %name, shard = %id, "shard read to its end");
                finished.insert(id);
                while let Ok(id) = done_rx.try_recv() {
                    finished.insert(id);
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn shard_iterator(
    ctx: &Ctx,
    shard: &str,
    checkpoint: Option<&str>,
    start: StartingPosition,
) -> Result<String, String> {
    let req = ctx
        .clients
        .kinesis
        .get_shard_iterator()
        .stream_name(&ctx.stream)
        .shard_id(shard);
    let req = match (checkpoint, start) {
        (Some(seq), _) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        (None, StartingPosition::TrimHorizon) => {
            req.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        (None, StartingPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
    };
    let resp = req
        .send()
        .await
        .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())?;
    resp.shard_iterator()
        .map(str::to_owned)
        .ok_or_else(|| "no shard iterator in the answer".to_owned())
}

async fn read_shard(
    ctx: Arc<Ctx>,
    mapping: Arc<Mapping>,
    shard: String,
    closed: Arc<Mutex<HashSet<String>>>,
    shutdown: watch::Receiver<bool>,
    done: mpsc::UnboundedSender<String>,
) {
    let cfg = &mapping.config;
    let batch_size = cfg.batch_size.clamp(1, 10_000);
    let mut checkpoint: Option<String> = None;
    let mut iterator: Option<String> = None;
    let mut buffer: Vec<Record> = Vec::new();
    let mut first_buffered: Option<Instant> = None;
    let mut failures = 0u32;
    while !stopping(&shutdown) {
        let it = match iterator.take() {
            Some(it) => it,
            None => {
                match shard_iterator(&ctx, &shard, checkpoint.as_deref(), cfg.starting_position)
                    .await
                {
                    Ok(it) => it,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(mapping = %cfg.name, shard = %shard, error = %e, "no shard iterator");
                        tokio::time::sleep(backoff(failures, Duration::from_secs(5))).await;
                        continue;
                    }
                }
            }
        };
        let want = (batch_size - buffer.len()).max(1) as i32;
        let resp = match ctx
            .clients
            .kinesis
            .get_records()
            .shard_iterator(&it)
            .limit(want)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                if code_of(&e) != Some("ExpiredIteratorException") {
                    tracing::warn!(
                        mapping = %cfg.name, shard = %shard,
                        error = %aws_sdk_kinesis::error::DisplayErrorContext(&e),
                        "GetRecords failed"
                    );
                    tokio::time::sleep(backoff(failures, Duration::from_secs(5))).await;
                }
                // Start again from the position (the iterator may have expired).
                iterator = None;
                continue;
            }
        };
        failures = 0;
        ctx.progress.update(&cfg.name, |s| s.get_records_calls += 1);
        let caught_up = resp.millis_behind_latest().is_none_or(|m| m == 0);
        let next = resp.next_shard_iterator().map(str::to_owned);
        let records = resp.records;
        let got_none = records.is_empty();
        if !got_none && first_buffered.is_none() {
            first_buffered = Some(Instant::now());
        }
        buffer.extend(records);
        let is_closed = closed.lock().map(|c| c.contains(&shard)).unwrap_or(false);
        let ended = next.is_none() || (got_none && caught_up && is_closed);
        let window_over = first_buffered.is_some_and(|t| t.elapsed() >= cfg.batching_window);
        // Without a batching window a batch is what one read returned; with one, records are
        // gathered until the batch is full, the window has passed or the shard has ended.
        if !buffer.is_empty()
            && (cfg.batching_window.is_zero() || buffer.len() >= batch_size || window_over || ended)
        {
            let batch = std::mem::take(&mut buffer);
            first_buffered = None;
            deliver(&ctx, &mapping, &shard, &batch).await;
            checkpoint = batch.last().map(|r| r.sequence_number().to_owned());
            if let Some(seq) = &checkpoint {
                ctx.progress.update(&cfg.name, |s| {
                    s.checkpoints.insert(shard.clone(), seq.clone());
                });
            }
        }
        if ended && buffer.is_empty() {
            ctx.progress.update(&cfg.name, |s| s.shards_finished += 1);
            let _ = done.send(shard.clone());
            return;
        }
        iterator = next;
        if got_none {
            let wait = match first_buffered {
                Some(t) => cfg
                    .batching_window
                    .saturating_sub(t.elapsed())
                    .min(cfg.poll_interval),
                None => cfg.poll_interval,
            };
            let mut stop = shutdown.clone();
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The `KinesisEvent` Lambda would hand over for these records of `shard`.
pub fn kinesis_event(
    shard: &str,
    stream_arn: &str,
    region: &str,
    records: &[Record],
) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut e = KinesisEventRecord::default();
            e.event_id = Some(format!("{shard}:{}", r.sequence_number()));
            e.event_name = Some("aws:kinesis:record".into());
            e.event_source = Some("aws:kinesis".into());
            e.event_version = Some("1.0".into());
            e.event_source_arn = Some(stream_arn.to_owned());
            e.aws_region = Some(region.to_owned());
            *e.kinesis.data = r.data().as_ref().to_vec();
            e.kinesis.partition_key = r.partition_key().unwrap_or_default().to_owned();
            e.kinesis.sequence_number = r.sequence_number().to_owned();
            e.kinesis.kinesis_schema_version = Some("1.0".into());
            if let Some(dt) = arrival(r) {
                e.kinesis.approximate_arrival_timestamp.0 = dt;
            }
            e
        })
        .collect();
    event
}

fn arrival(r: &Record) -> Option<chrono::DateTime<chrono::Utc>> {
    r.approximate_arrival_timestamp()
        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

async fn deliver(ctx: &Ctx, mapping: &Mapping, shard: &str, records: &[Record]) {
    let cfg = &mapping.config;
    ctx.progress.update(&cfg.name, |s| s.batches += 1);
    let mut start = 0;
    if let Some(max_age) = cfg.max_record_age {
        let now = chrono::Utc::now();
        let age_limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        start = records
            .iter()
            .position(|r| arrival(r).is_none_or(|a| now - a <= age_limit))
            .unwrap_or(records.len());
        if start > 0 {
            to_destination(ctx, cfg, shard, &records[..start], 0, "RecordAgeExceeded").await;
        }
    }
    let mut queue: VecDeque<(Range<usize>, u32)> = VecDeque::from([(start..records.len(), 0)]);
    while let Some((range, attempts)) = queue.pop_front() {
        if range.is_empty() {
            continue;
        }
        let part = &records[range.clone()];
        let event = kinesis_event(shard, &ctx.stream_arn, &ctx.clients.region, part);
        ctx.progress.update(&cfg.name, |s| s.invocations += 1);
        let handler = mapping.handler.clone();
        // A handler that panics fails its batch, as a crashed Lambda invocation does.
        let response = tokio::spawn(async move { handler.handle(&event).await }).await;
        let seqs: Vec<&str> = part.iter().map(|r| r.sequence_number()).collect();
        let failed_at = match &response {
            Ok(r) => retry_index(&seqs, r),
            Err(e) => {
                tracing::error!(mapping = %cfg.name, shard = %shard, error = %e, "handler panicked");
                Some(0)
            }
        };
        let Some(i) = failed_at else {
            ctx.progress
                .update(&cfg.name, |s| s.records += part.len() as u64);
            continue;
        };
        ctx.progress.update(&cfg.name, |s| s.records += i as u64);
        let rest = range.start + i..range.end;
        let attempts = attempts + 1;
        if attempts >= cfg.max_attempts.max(1) {
            to_destination(
                ctx,
                cfg,
                shard,
                &records[rest],
                attempts,
                "RetryAttemptsExhausted",
            )
            .await;
        } else if cfg.bisect_on_error && attempts >= 2 && rest.len() > 1 {
            let mid = rest.start + rest.len() / 2;
            tracing::warn!(mapping = %cfg.name, shard = %shard, records = rest.len(), "batch failed twice; bisecting");
            ctx.progress.update(&cfg.name, |s| s.bisections += 1);
            queue.push_front((mid..rest.end, 0));
            queue.push_front((rest.start..mid, 0));
        } else {
            tracing::warn!(
                mapping = %cfg.name, shard = %shard, attempt = attempts,
                from = %records[rest.start].sequence_number(),
                "batch failed; retrying from the first failed record"
            );
            ctx.progress.update(&cfg.name, |s| s.retries += 1);
            let wait = cfg
                .retry_backoff
                .saturating_mul(1 << attempts.min(10))
                .min(Duration::from_secs(30));
            tokio::time::sleep(wait).await;
            queue.push_front((rest, attempts));
        }
    }
}

/// The record Lambda sends to an on-failure destination for a Kinesis batch (plus, in a file,
/// the records themselves).
pub fn destination_record(
    mapping: &str,
    shard: &str,
    stream_arn: &str,
    records: &[Record],
    attempts: u32,
    condition: &str,
    with_data: bool,
) -> serde_json::Value {
    let first = records.first();
    let last = records.last();
    let time = |r: Option<&Record>| r.and_then(arrival).map(|t| t.to_rfc3339());
    let mut v = serde_json::json!({
        "requestContext": {
            "functionArn": mapping,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "PartialBatchFailure"},
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first.map(|r| r.sequence_number()),
            "endSequenceNumber": last.map(|r| r.sequence_number()),
            "approximateArrivalOfFirstRecord": time(first),
            "approximateArrivalOfLastRecord": time(last),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        },
    });
    if with_data {
        v["records"] = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "sequenceNumber": r.sequence_number(),
                    "partitionKey": r.partition_key(),
                    "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                })
            })
            .collect();
    }
    v
}

async fn to_destination(
    ctx: &Ctx,
    cfg: &MappingConfig,
    shard: &str,
    records: &[Record],
    attempts: u32,
    condition: &str,
) {
    tracing::error!(
        mapping = %cfg.name, shard = %shard, records = records.len(), condition,
        first = records.first().map(|r| r.sequence_number()).unwrap_or(""),
        "records given up on; sent to the on-failure destination"
    );
    ctx.progress.update(&cfg.name, |s| {
        s.records_to_destination += records.len() as u64;
        s.batches_to_destination += 1;
    });
    // The file keeps the records themselves; SQS gets Lambda's description only.
    let record = |with_records: bool| {
        destination_record(
            &cfg.name,
            shard,
            &ctx.stream_arn,
            records,
            attempts,
            condition,
            with_records,
        )
    };
    let result = match &cfg.on_failure {
        OnFailure::Log => Ok(()),
        OnFailure::File(path) => {
            let rec = record(true);
            append_line(path, &rec.to_string()).await
        }
        OnFailure::Sqs(url) => {
            let rec = record(false);
            ctx.clients
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(rec.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
        }
    };
    if let Err(e) = result {
        tracing::error!(mapping = %cfg.name, shard = %shard, error = %e, "on-failure destination not written");
    }
}

async fn append_line(path: &std::path::Path, line: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::streams::KinesisBatchItemFailure;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            closed: false,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn children_wait_for_their_parents_to_be_read_to_the_end() {
        let shards = vec![
            shard("s0", None, None),
            shard("s1", None, None),
            shard("s2", Some("s0"), None),
            shard("s3", Some("s0"), None),
            shard("s4", Some("s1"), Some("s2")),
        ];
        assert_eq!(
            ready_shards(&shards, &set(&[]), &set(&[])),
            vec!["s0", "s1"]
        );
        let started = set(&["s0", "s1"]);
        assert!(ready_shards(&shards, &started, &set(&[])).is_empty());
        assert_eq!(
            ready_shards(&shards, &started, &set(&["s0"])),
            vec!["s2", "s3"]
        );
        let started = set(&["s0", "s1", "s2", "s3"]);
        assert!(ready_shards(&shards, &started, &set(&["s0", "s1"])).is_empty());
        assert_eq!(
            ready_shards(&shards, &started, &set(&["s0", "s1", "s2"])),
            vec!["s4"]
        );
        // A parent past retention (no longer listed) holds nothing back.
        assert_eq!(
            ready_shards(&shards[2..3], &set(&[]), &set(&[])),
            vec!["s2"]
        );
    }

    fn response(ids: &[&str]) -> KinesisEventResponse {
        let mut r = KinesisEventResponse::default();
        for id in ids {
            let mut f = KinesisBatchItemFailure::default();
            f.item_identifier = Some((*id).to_owned());
            r.batch_item_failures.push(f);
        }
        r
    }

    #[test]
    fn a_batch_is_retried_from_its_lowest_failed_record() {
        let seqs = ["7", "9", "10", "11"];
        assert_eq!(retry_index(&seqs, &response(&[])), None);
        assert_eq!(retry_index(&seqs, &response(&["11", "10"])), Some(2));
        assert_eq!(retry_index(&seqs, &response(&["9"])), Some(1));
        // An identifier not in the batch fails all of it.
        assert_eq!(retry_index(&seqs, &response(&["10", "12"])), Some(0));
        assert_eq!(seq_cmp("10", "9"), std::cmp::Ordering::Greater);
    }
}
