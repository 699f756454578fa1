//! The consumer loops of one mapping: [`drain_shard`] reads a shard to its current tail;
//! [`coordinate`] and `follow_shard` follow a stream's shards until stopped (polling an idle
//! shard, gathering a batch for the batching window, starting children after parents).

use super::config::Mapping;
use super::delivery::deliver;
use super::shards::ready_shards;
use super::{Ctx, EsmError};
use crate::stop::Stop;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use traffic_aws::retry::backoff;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{ReadFrom, SourceRecord};

/// Stores `mapping`'s checkpoint on `shard` after a batch it took.
async fn checkpoint(
    ctx: &Ctx,
    mapping: &Mapping,
    shard: &ShardId,
    seq: &SequenceNumber,
) -> Result<(), EsmError> {
    let name = &mapping.config.name;
    ctx.checkpoints.set_checkpoint(name, shard, seq).await?;
    ctx.progress.update(name, |s| {
        s.checkpoints.insert(shard.clone(), seq.to_string());
    });
    Ok(())
}

/// Reads `shard` from the mapping's checkpoint to the current tail, batch by batch, each
/// handed over and checkpointed; returns whether the shard has ended.
pub(crate) async fn drain_shard(
    ctx: &Ctx,
    mapping: &Mapping,
    shard: &ShardId,
) -> Result<bool, EsmError> {
    let cfg = &mapping.config;
    ctx.progress.update(&cfg.name, |s| s.shards_started += 1);
    let mut after = ctx.checkpoints.checkpoint(&cfg.name, shard).await?;
    loop {
        let batch = ctx
            .source
            .read(
                shard,
                ReadFrom::resume(after.as_ref(), cfg.starting_position),
                cfg.batch_size.clamp(1, 10_000),
            )
            .await?;
        ctx.progress.update(&cfg.name, |s| s.get_records_calls += 1);
        if let Some(last) = batch.records.last().map(|r| r.seq.clone()) {
            deliver(ctx, mapping, shard, &batch.records).await?;
            checkpoint(ctx, mapping, shard, &last).await?;
            after = Some(last);
        }
        if batch.ended {
            ctx.progress.update(&cfg.name, |s| s.shards_finished += 1);
            return Ok(true);
        }
        if batch.caught_up || batch.records.is_empty() {
            return Ok(false);
        }
    }
}

/// Follows the stream's shards for one mapping until `stop`: the shard list is read every
/// `list_interval` (sooner when a shard ends) and every shard that is ready starts.
pub(crate) async fn coordinate(
    ctx: Arc<Ctx>,
    mapping: Arc<Mapping>,
    list_interval: Duration,
    mut stop: Stop,
) {
    let name = mapping.config.name.clone();
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ShardId>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut failures = 0;
    while !stop.is_stopped() {
        match ctx.source.shards().await {
            Ok(shards) => {
                failures = 0;
                for id in ready_shards(&shards, &started, &finished) {
                    tracing::info!(mapping = %name, shard = %id, "reading shard");
                    ctx.progress.update(&name, |s| s.shards_started += 1);
                    started.insert(id.clone());
                    tasks.spawn(follow_shard(
                        ctx.clone(),
                        mapping.clone(),
                        id,
                        stop.clone(),
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
            backoff(failures, list_interval)
        } else {
            list_interval
        };
        tokio::select! {
            _ = stop.wait() => break,
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

/// Follows one shard: reads on from the last record read, gathers a batch (full, or the
/// batching window passed, or the shard ended), hands it over, checkpoints it.
async fn follow_shard(
    ctx: Arc<Ctx>,
    mapping: Arc<Mapping>,
    shard: ShardId,
    mut stop: Stop,
    done: mpsc::UnboundedSender<ShardId>,
) {
    let cfg = &mapping.config;
    let batch_size = cfg.batch_size.clamp(1, 10_000);
    let mut failures = 0u32;
    let mut after: Option<SequenceNumber> = loop {
        match ctx.checkpoints.checkpoint(&cfg.name, &shard).await {
            Ok(c) => break c,
            Err(e) => {
                failures += 1;
                tracing::warn!(mapping = %cfg.name, shard = %shard, error = %e, "no checkpoint");
                if !stop.sleep(backoff(failures, Duration::from_secs(5))).await {
                    return;
                }
            }
        }
    };
    let mut buffer: Vec<SourceRecord> = Vec::new();
    let mut first_buffered: Option<Instant> = None;
    while !stop.is_stopped() {
        let want = (batch_size - buffer.len()).max(1);
        let read_after = buffer.last().map(|r| &r.seq).or(after.as_ref());
        let read = ctx
            .source
            .read(
                &shard,
                ReadFrom::resume(read_after, cfg.starting_position),
                want,
            )
            .await;
        let batch = match read {
            Ok(b) => b,
            Err(e) => {
                failures += 1;
                tracing::warn!(mapping = %cfg.name, shard = %shard, error = %e, "reading the shard failed");
                if !stop.sleep(backoff(failures, Duration::from_secs(5))).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        ctx.progress.update(&cfg.name, |s| s.get_records_calls += 1);
        let got_none = batch.records.is_empty();
        if !got_none && first_buffered.is_none() {
            first_buffered = Some(Instant::now());
        }
        buffer.extend(batch.records);
        let window_over = first_buffered.is_some_and(|t| t.elapsed() >= cfg.batching_window);
        // Without a batching window a batch is what one read returned; with one, records are
        // gathered until the batch is full, the window has passed or the shard has ended.
        if !buffer.is_empty()
            && (cfg.batching_window.is_zero()
                || buffer.len() >= batch_size
                || window_over
                || batch.ended)
        {
            let records = std::mem::take(&mut buffer);
            first_buffered = None;
            if let Err(e) = deliver(&ctx, &mapping, &shard, &records).await {
                tracing::error!(mapping = %cfg.name, shard = %shard, error = %e, "the shard stops");
                return;
            }
            if let Some(last) = records.last().map(|r| r.seq.clone()) {
                if let Err(e) = checkpoint(&ctx, &mapping, &shard, &last).await {
                    tracing::warn!(mapping = %cfg.name, shard = %shard, error = %e, "checkpoint not stored");
                }
                after = Some(last);
            }
        }
        if batch.ended && buffer.is_empty() {
            ctx.progress.update(&cfg.name, |s| s.shards_finished += 1);
            let _ = done.send(shard.clone());
            return;
        }
        if got_none {
            let wait = match first_buffered {
                Some(t) => cfg
                    .batching_window
                    .saturating_sub(t.elapsed())
                    .min(cfg.poll_interval),
                None => cfg.poll_interval,
            };
            tokio::select! {
                _ = stop.wait() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
