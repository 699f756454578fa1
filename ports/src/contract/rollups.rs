//! Laws of [`StateStore`] on rollups (stored per window, read by range) and on the redrive
//! mark (written with its commit, once).

use super::{Outcome, ensure_law, id};
use crate::{PortError, StateStore};
use traffic_core::LightIndex;
use traffic_core::ShardId;
use traffic_core::delta::DeltaReading;
use traffic_core::pane::{Commit, ShardMeta};
use traffic_core::redrive::{RedriveCounts, RedriveMark};
use traffic_core::rollup::{CompactionCounts, Rollup, Totals};
use traffic_core::sequence::SequenceNumber;
use traffic_core::window::{WindowKey, WindowLength};

/// 2026-01-06T12:00:00Z, epoch ms.
const T0: i64 = 1_767_700_800_000;

const M15: i64 = 900_000;

fn length(ms: i64) -> anyhow::Result<WindowLength> {
    WindowLength::from_ms(ms).ok_or_else(|| anyhow::anyhow!("window length {ms}"))
}

/// A rollup of the window of `len_ms` at `start_ms` through `through_ms`, with totals of
/// `readings` readings of intersection `C-<case>-0`.
fn rollup(
    case: &str,
    len_ms: i64,
    start_ms: i64,
    through_ms: i64,
    readings: u32,
) -> anyhow::Result<Rollup> {
    let mut r = Rollup::new(WindowKey {
        length: length(len_ms)?,
        start_ms,
    });
    r.through_ms = through_ms;
    let mut t = Totals::new(32);
    for k in 0..readings {
        t.add_reading(&DeltaReading {
            light: LightIndex::new(i64::from(k % 2))?,
            ts_ms: start_ms + i64::from(k) * 10_000,
            vehicles: 3 + k,
            speed_milli: 38_500 + u64::from(k) * 100,
        });
    }
    r.intersections.insert(id(case, 0)?, t);
    r.counts = CompactionCounts {
        duplicates: u64::from(readings % 3),
        too_frequent: 1,
    };
    Ok(r)
}

/// [`StateStore::rollups`] returns exactly the stored rollups of windows of its length
/// starting in `from_ms..=to_ms`, as they were stored.
pub async fn rollups_are_exactly_those_of_the_length_starting_in_range<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    let case = "rollups-range";
    let starts: Vec<i64> = (0..4).map(|k| T0 + k * M15).collect();
    let mut stored = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        stored.push(rollup(case, M15, start, start + M15, k as u32 + 1)?);
    }
    let hour = rollup(case, 4 * M15, T0, T0 + 4 * M15, 9)?;
    let mut all = stored.clone();
    all.push(hour.clone());
    s.put_rollups(&all, T0).await?;
    let sorted = |mut v: Vec<Rollup>| {
        v.sort_by_key(|r| r.window.start_ms);
        v
    };
    let got = sorted(s.rollups(length(M15)?, starts[1], starts[2]).await?);
    ensure_law!(got == stored[1..3], "15m in [1, 2]: {got:?}");
    let got = sorted(s.rollups(length(M15)?, starts[1] + 1, starts[3]).await?);
    ensure_law!(got == stored[2..], "15m from within window 1: {got:?}");
    let got = sorted(s.rollups(length(M15)?, T0 - M15, T0 + 4 * M15).await?);
    ensure_law!(got == stored, "15m over all: {got:?}");
    let got = s.rollups(length(4 * M15)?, T0, T0).await?;
    ensure_law!(got == [hour], "1h: {got:?}");
    let got = s
        .rollups(length(M15)?, starts[3] + 1, starts[3] + M15 - 1)
        .await?;
    ensure_law!(got.is_empty(), "15m in a range with no start: {got:?}");
    let got = s.rollups(length(2 * M15)?, T0, T0 + 4 * M15).await?;
    ensure_law!(got.is_empty(), "a length never stored: {got:?}");
    Ok(())
}

/// [`StateStore::put_rollups`] replaces the rollup of its window: the later one is read back,
/// alone, and the other windows' stay.
pub async fn put_rollups_replaces_the_rollup_of_its_window<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    let case = "rollups-replace";
    let base = T0 + 100 * M15;
    let partial = rollup(case, M15, base, base + M15 / 3, 2)?;
    let neighbour = rollup(case, M15, base + M15, base + 2 * M15, 4)?;
    s.put_rollups(&[partial, neighbour.clone()], T0).await?;
    let complete = rollup(case, M15, base, base + M15, 6)?;
    s.put_rollups(std::slice::from_ref(&complete), T0 + 60_000)
        .await?;
    let got = s.rollups(length(M15)?, base, base).await?;
    ensure_law!(got == [complete.clone()], "after the replacement: {got:?}");
    let shorter = rollup(case, M15, base, base + M15 / 2, 1)?;
    s.put_rollups(std::slice::from_ref(&shorter), T0 + 120_000)
        .await?;
    let got = s.rollups(length(M15)?, base, base).await?;
    ensure_law!(
        got == [shorter],
        "after replacing with a shorter one: {got:?}"
    );
    let got = s.rollups(length(M15)?, base + M15, base + M15).await?;
    ensure_law!(got == [neighbour], "the neighbour: {got:?}");
    Ok(())
}

fn meta(shard: &ShardId, through: u64, commits: u64) -> ShardMeta {
    ShardMeta {
        shard_id: shard.clone(),
        applied_through: Some(SequenceNumber::from_u64(through)),
        max_event_ms: Some(T0),
        commits,
        ..ShardMeta::default()
    }
}

/// A redrive's commit on top of a meta at `through` after `commits` commits: the commit count
/// moves, `applied_through` does not.
fn redrive(shard: &ShardId, through: u64, commits: u64) -> Commit {
    Commit {
        expected: Some(SequenceNumber::from_u64(through)),
        expected_commits: commits,
        closed_ms: None,
        meta: meta(shard, through, commits + 1),
        deltas: Vec::new(),
    }
}

/// A shard's first commit, applied through 10, nothing written but its meta.
fn first_commit(shard: &ShardId) -> Commit {
    Commit {
        expected: None,
        expected_commits: 0,
        closed_ms: None,
        meta: meta(shard, 10, 1),
        deltas: Vec::new(),
    }
}

fn mark(shard: &ShardId, id: u64, applied: u64) -> RedriveMark {
    RedriveMark {
        shard_id: shard.clone(),
        id,
        counts: RedriveCounts {
            applied,
            duplicate: 1,
            ..RedriveCounts::default()
        },
    }
}

/// [`StateStore::commit_redrive`] writes its mark with the meta: the mark reads back (for its
/// shard and failure record only), and a second redrive of the same record is
/// [`PortError::Conflict`], even against the current meta, leaving the meta alone; another
/// record's lands.
pub async fn redrive_mark_is_written_with_its_commit_and_only_once<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    let shard = &ShardId::from("contract-r1");
    s.commit(&first_commit(shard), T0).await?;
    let none = s.redrive_mark(shard, 7).await?;
    ensure_law!(none.is_none(), "a mark before any redrive: {none:?}");
    let m = mark(shard, 7, 3);
    let redriven = redrive(shard, 10, 1);
    s.commit_redrive(&redriven, &m, T0).await?;
    let got = s.redrive_mark(shard, 7).await?;
    ensure_law!(got.as_ref() == Some(&m), "the mark read {got:?}");
    for (other_shard, other_id) in [(&ShardId::from("contract-r1x"), 7), (shard, 8)] {
        let got = s.redrive_mark(other_shard, other_id).await?;
        ensure_law!(
            got.is_none(),
            "the mark of {other_shard} {other_id}: {got:?}"
        );
    }
    let again = redrive(shard, 10, 2);
    let r = s.commit_redrive(&again, &mark(shard, 7, 0), T0).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "the same failure record redriven twice: {r:?}"
    );
    let (stored, _) = s.load_shard(shard).await?;
    ensure_law!(
        stored.as_ref() == Some(&redriven.meta),
        "a refused redrive left {stored:?}"
    );
    let got = s.redrive_mark(shard, 7).await?;
    ensure_law!(
        got.as_ref() == Some(&m),
        "a refused redrive's mark: {got:?}"
    );
    s.commit_redrive(&again, &mark(shard, 8, 1), T0).await?;
    let got = s.redrive_mark(shard, 8).await?;
    ensure_law!(got.is_some(), "another record's redrive left no mark");
    Ok(())
}

/// A redrive refused by the meta's condition (as a commit is) writes no mark: the mark is in
/// the same atomic write as the meta.
pub async fn refused_redrive_writes_no_mark<S: StateStore + ?Sized>(s: &S) -> Outcome {
    let shard = &ShardId::from("contract-r2");
    let first = first_commit(shard);
    s.commit(&first, T0).await?;
    for (stale, what) in [
        (redrive(shard, 5, 1), "a stale applied_through"),
        (redrive(shard, 10, 0), "a stale commit count"),
    ] {
        let r = s.commit_redrive(&stale, &mark(shard, 9, 1), T0).await;
        ensure_law!(
            matches!(r, Err(PortError::Conflict(_))),
            "a redrive from {what}: {r:?}"
        );
        let got = s.redrive_mark(shard, 9).await?;
        ensure_law!(got.is_none(), "a redrive from {what} left its mark {got:?}");
    }
    s.advance_closed_mark(T0).await?;
    let r = s
        .commit_redrive(&redrive(shard, 10, 1), &mark(shard, 9, 1), T0)
        .await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a redrive against a moved closed mark: {r:?}"
    );
    let got = s.redrive_mark(shard, 9).await?;
    ensure_law!(
        got.is_none(),
        "a redrive against a moved mark left its mark {got:?}"
    );
    let (stored, _) = s.load_shard(shard).await?;
    ensure_law!(
        stored.as_ref() == Some(&first.meta),
        "refused redrives left {stored:?}"
    );
    Ok(())
}
