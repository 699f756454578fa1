//! The runner: the two mappings following a stream and the merge on a timer (in place of the
//! EventBridge schedule), until stopped. `traffic aws-local` and the AWS tests run it.

use crate::esm::{EventSourceMapping, MappingConfig, OnFailure, Progress};
use crate::functions::{CONSUMERS, Functions};
use crate::stop::{Stop, Stopper};
use merge::{CloseUpTo, MergeReport, Provisional};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use traffic_aws::{AwsClients, KinesisSource};
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;
use traffic_ports::{MemoryCheckpoints, Ports};

/// How the mappings read and the merge runs.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Records per batch.
    pub batch_size: usize,
    /// Time to gather a batch.
    pub batching_window: Duration,
    /// Wait between reads of an idle shard.
    pub poll_interval: Duration,
    /// Tries of a batch before it goes to the on-failure destination.
    pub max_attempts: u32,
    /// Where failed batches go.
    pub on_failure: OnFailure,
    /// How often the merge runs.
    pub merge_every: Duration,
    /// Which open windows get provisional results.
    pub provisional: Provisional,
    /// How often the shard list is read (resharding).
    pub list_interval: Duration,
    /// How `fault` and `merge` handle alarms (`traffic aws-local` passes its
    /// configuration's; the default is the documented one).
    pub alarms: AlarmPolicy,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            max_attempts: 5,
            on_failure: OnFailure::Log,
            merge_every: Duration::from_secs(60),
            provisional: Provisional::All,
            list_interval: Duration::from_secs(10),
            alarms: AlarmPolicy::default(),
        }
    }
}

impl RunnerOptions {
    /// The mapping settings for consumer `name`.
    pub fn mapping(&self, name: &str) -> MappingConfig {
        MappingConfig {
            batch_size: self.batch_size,
            batching_window: self.batching_window,
            poll_interval: self.poll_interval,
            max_attempts: self.max_attempts,
            on_failure: self.on_failure.clone(),
            ..MappingConfig::new(name)
        }
    }
}

/// Counts of the merge runs, observable while they go on.
#[derive(Debug, Default)]
pub struct MergeRuns {
    runs: AtomicU64,
    failures: AtomicU64,
    changed: Notify,
    last: std::sync::Mutex<Option<MergeReport>>,
}

impl MergeRuns {
    /// Runs finished (successful or not).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// Runs that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The last successful run's report.
    pub fn last(&self) -> Option<MergeReport> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Waits until at least `n` runs have finished, or `timeout` passes.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.runs() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

/// The functions running against a stream: `ingest` and `fault` behind the event source
/// mapping, `merge` on a timer.
pub struct Runner {
    progress: Arc<Progress>,
    merges: Arc<MergeRuns>,
    stopper: Stopper,
    tasks: tokio::task::JoinSet<()>,
}

impl Runner {
    /// Starts both mappings on the Kinesis stream `stream` and the merge timer.
    pub async fn start(
        cfg: EngineConfig,
        ports: Ports,
        clients: &AwsClients,
        stream: &str,
        opts: RunnerOptions,
    ) -> anyhow::Result<Self> {
        let source = Arc::new(KinesisSource::new(clients, stream).await?);
        let functions = Arc::new(Functions::from_ports(
            cfg,
            opts.provisional,
            &opts.alarms,
            ports,
        ));
        let esm = EventSourceMapping::new(
            source,
            Arc::new(MemoryCheckpoints::default()),
            functions.mappings(|name| opts.mapping(name)),
        )
        .with_list_interval(opts.list_interval)
        .with_sqs(clients.sqs.clone());
        Ok(Self::with_mapping(functions, esm, opts.merge_every))
    }

    /// Starts `esm` following its stream and `functions`' merge every `merge_every`.
    pub fn with_mapping(
        functions: Arc<Functions>,
        esm: EventSourceMapping,
        merge_every: Duration,
    ) -> Self {
        let progress = esm.progress();
        let (stopper, stop) = Stopper::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(esm.follow(stop.clone()));
        let merges = Arc::new(MergeRuns::default());
        tasks.spawn(merge_timer(functions, merge_every, merges.clone(), stop));
        Self {
            progress,
            merges,
            stopper,
            tasks,
        }
    }

    /// The mappings' counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// The merge runs.
    pub fn merges(&self) -> Arc<MergeRuns> {
        self.merges.clone()
    }

    /// Waits until both mappings have handled (or given up on) `records` records, or
    /// `timeout` passes.
    pub async fn wait_for_records(&self, records: u64, timeout: Duration) -> bool {
        self.progress
            .wait_until(timeout, |s| {
                CONSUMERS.iter().all(|m| {
                    s.get(*m)
                        .is_some_and(|x| x.records + x.records_to_destination >= records)
                })
            })
            .await
    }

    /// Stops everything and waits for it.
    pub async fn stop(mut self) {
        self.stopper.stop();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn merge_timer(
    functions: Arc<Functions>,
    every: Duration,
    runs: Arc<MergeRuns>,
    mut stop: Stop,
) {
    loop {
        if !stop.sleep(every).await {
            return;
        }
        match functions.merge(CloseUpTo::Watermark).await {
            Ok(report) => {
                tracing::info!(
                    closed = report.closed.len(),
                    provisional = report.provisional,
                    retimed = report.retimed,
                    panes_compacted = report.panes_compacted,
                    skipped = ?report.skipped,
                    "merge run"
                );
                if let Ok(mut l) = runs.last.lock() {
                    *l = Some(report);
                }
            }
            Err(e) => {
                runs.failures.fetch_add(1, Ordering::SeqCst);
                tracing::error!(error = %e, "merge run failed; the next run tries again");
            }
        }
        runs.runs.fetch_add(1, Ordering::SeqCst);
        runs.changed.notify_waiters();
    }
}
