//! Laws of [`StateStore`]: the merge's lease, its closed mark and progress, and commits
//! conditional on the stored meta and the mark.

use super::{Outcome, ensure_law};
use crate::{PortError, StateStore};
use traffic_core::ShardId;
use traffic_core::pane::{Commit, MergeState, ShardMeta};
use traffic_core::sequence::SequenceNumber;

/// Processing time the cases start from, epoch ms.
const NOW: i64 = 1_767_700_000_000;

fn meta(shard: &ShardId, through: u64, commits: u64) -> ShardMeta {
    ShardMeta {
        shard_id: shard.clone(),
        applied_through: Some(SequenceNumber::from_u64(through)),
        max_event_ms: Some(NOW),
        commits,
        ..ShardMeta::default()
    }
}

fn commit(
    shard: &ShardId,
    expected: Option<u64>,
    expected_commits: u64,
    closed_ms: Option<i64>,
    through: u64,
) -> Commit {
    Commit {
        expected: expected.map(SequenceNumber::from_u64),
        expected_commits,
        closed_ms,
        meta: meta(shard, through, expected_commits + 1),
        deltas: Vec::new(),
    }
}

/// The lease is granted to one holder at a time: refused to another while unexpired, granted
/// once it expired; released only by its holder, after which anyone may take it.
pub async fn lease_is_held_by_one_holder_until_it_expires_or_is_released<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    ensure_law!(
        s.take_lease("a", NOW, NOW + 1_000).await?,
        "a free lease refused"
    );
    ensure_law!(
        !s.take_lease("b", NOW + 500, NOW + 1_500).await?,
        "granted to b while a holds it"
    );
    ensure_law!(
        s.take_lease("b", NOW + 1_001, NOW + 2_000).await?,
        "refused to b after a's expired"
    );
    s.release_lease("a").await?;
    ensure_law!(
        !s.take_lease("c", NOW + 1_100, NOW + 2_100).await?,
        "a released b's lease"
    );
    s.release_lease("b").await?;
    ensure_law!(
        s.take_lease("c", NOW + 1_200, NOW + 2_200).await?,
        "refused after its holder released it"
    );
    Ok(())
}

/// The closed mark moves forward, never back, and reads the same in the merge's state and
/// with a shard's meta; the merge's progress does not move it back either.
pub async fn closed_mark_only_moves_forward<S: StateStore + ?Sized>(s: &S) -> Outcome {
    let start = s.merge_state().await?.marks.closed_ms;
    ensure_law!(start.is_none(), "a fresh store's closed mark: {start:?}");
    s.advance_closed_mark(NOW).await?;
    s.advance_closed_mark(NOW - 900_000).await?;
    let m = s.merge_state().await?.marks.closed_ms;
    ensure_law!(m == Some(NOW), "moved back: {m:?}");
    s.advance_closed_mark(NOW + 900_000).await?;
    let mut progress = s.merge_state().await?;
    ensure_law!(
        progress.marks.closed_ms == Some(NOW + 900_000),
        "not moved forward: {:?}",
        progress.marks
    );
    progress.marks.closed_ms = Some(NOW);
    s.put_merge_progress(&progress).await?;
    let (_, marks) = s.load_shard(&"contract-s2".into()).await?;
    ensure_law!(
        marks.closed_ms == Some(NOW + 900_000),
        "after progress with an older mark: {marks:?}"
    );
    Ok(())
}

/// A commit lands only while the stored meta is the one it expects (its `applied_through` and
/// commit count): a second commit from the same start is [`PortError::Conflict`] and leaves
/// the meta as the first wrote it.
pub async fn commit_is_conditional_on_the_stored_meta<S: StateStore + ?Sized>(s: &S) -> Outcome {
    let shard = &ShardId::from("contract-s3");
    let (none, _) = s.load_shard(shard).await?;
    ensure_law!(none.is_none(), "a meta before any commit: {none:?}");
    let first = commit(shard, None, 0, None, 10);
    s.commit(&first, NOW).await?;
    let (stored, _) = s.load_shard(shard).await?;
    ensure_law!(stored.as_ref() == Some(&first.meta), "stored {stored:?}");
    let racing = commit(shard, None, 0, None, 20);
    let r = s.commit(&racing, NOW).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a commit from a stale meta: {r:?}"
    );
    let wrong_count = commit(shard, Some(10), 0, None, 20);
    let r = s.commit(&wrong_count, NOW).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a commit from a stale commit count: {r:?}"
    );
    let (stored, _) = s.load_shard(shard).await?;
    ensure_law!(
        stored.as_ref() == Some(&first.meta),
        "a refused commit wrote {stored:?}"
    );
    let next = commit(shard, Some(10), 1, None, 20);
    s.commit(&next, NOW).await?;
    let metas = s.shard_metas().await?;
    ensure_law!(
        metas
            .iter()
            .filter(|m| m.shard_id == *shard)
            .collect::<Vec<_>>()
            == [&next.meta],
        "shard metas {metas:?}"
    );
    Ok(())
}

/// A commit folded against a closed mark the merge has since moved is
/// [`PortError::Conflict`]; against the current mark it lands.
pub async fn commit_is_conditional_on_the_closed_mark<S: StateStore + ?Sized>(s: &S) -> Outcome {
    let shard = &ShardId::from("contract-s4");
    s.advance_closed_mark(NOW).await?;
    let before = commit(shard, None, 0, Some(NOW - 900_000), 5);
    let r = s.commit(&before, NOW).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a commit against a moved mark: {r:?}"
    );
    let unmarked = commit(shard, None, 0, None, 5);
    let r = s.commit(&unmarked, NOW).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a commit against no mark when one is set: {r:?}"
    );
    let (none, _) = s.load_shard(shard).await?;
    ensure_law!(none.is_none(), "a refused commit wrote {none:?}");
    let current = commit(shard, None, 0, Some(NOW), 5);
    s.commit(&current, NOW).await?;
    let (stored, marks) = s.load_shard(shard).await?;
    ensure_law!(
        stored.as_ref() == Some(&current.meta) && marks.closed_ms == Some(NOW),
        "stored {stored:?} with {marks:?}"
    );
    Ok(())
}

/// The merge's progress reads back as written (with the closed mark it advanced).
pub async fn merge_progress_round_trips<S: StateStore + ?Sized>(s: &S) -> Outcome {
    s.advance_closed_mark(NOW).await?;
    let mut progress = MergeState::default();
    progress.marks.closed_ms = Some(NOW);
    progress.marks.compacted_ms = Some(NOW - 900_000);
    progress
        .caught_up_since
        .insert("contract-s5".into(), NOW - 5);
    progress.compaction.duplicates = 3;
    progress.compaction.too_frequent = 2;
    s.put_merge_progress(&progress).await?;
    let got = s.merge_state().await?;
    ensure_law!(got == progress, "stored {progress:?}, read {got:?}");
    let (_, marks) = s.load_shard(&"contract-s5".into()).await?;
    ensure_law!(marks == progress.marks, "marks with a shard: {marks:?}");
    Ok(())
}

/// Only [`StateStore::advance_closed_mark`] moves the closed mark: progress written with
/// another mark (ahead or behind) leaves it where the merge advanced it, and stores the rest.
pub async fn merge_progress_does_not_move_the_closed_mark<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    s.advance_closed_mark(NOW).await?;
    for mark in [NOW + 900_000, NOW - 900_000] {
        let mut progress = MergeState::default();
        progress.marks.closed_ms = Some(mark);
        progress.caught_up_since.insert("contract-s6".into(), mark);
        s.put_merge_progress(&progress).await?;
        let got = s.merge_state().await?;
        ensure_law!(
            got.marks.closed_ms == Some(NOW),
            "progress with mark {mark} moved it to {:?}",
            got.marks.closed_ms
        );
        ensure_law!(
            got.caught_up_since == progress.caught_up_since,
            "progress not stored: {got:?}"
        );
    }
    Ok(())
}

/// [`StateStore::shard_metas`] holds the meta of every shard committed, each as
/// [`StateStore::load_shard`] reads it, once; a shard whose only commit was refused has none.
pub async fn shard_metas_hold_every_committed_shard_once<S: StateStore + ?Sized>(s: &S) -> Outcome {
    let shards = ["contract-s7a", "contract-s7b", "contract-s7c"].map(ShardId::from);
    for (k, shard) in shards.iter().enumerate() {
        s.commit(&commit(shard, None, 0, None, 10 + k as u64), NOW)
            .await?;
    }
    s.commit(&commit(&shards[1], Some(11), 1, None, 30), NOW)
        .await?;
    let refused = ShardId::from("contract-s7d");
    let r = s.commit(&commit(&refused, Some(1), 0, None, 5), NOW).await;
    ensure_law!(
        matches!(r, Err(PortError::Conflict(_))),
        "a first commit expecting a meta: {r:?}"
    );
    let metas = s.shard_metas().await?;
    for shard in &shards {
        let (stored, _) = s.load_shard(shard).await?;
        let listed: Vec<_> = metas.iter().filter(|m| m.shard_id == *shard).collect();
        ensure_law!(
            stored.is_some() && listed == [stored.as_ref().unwrap_or(&ShardMeta::default())],
            "{shard}: loaded {stored:?}, listed {listed:?}"
        );
    }
    let (stored, _) = s.load_shard(&shards[1]).await?;
    ensure_law!(
        stored.map(|m| m.commits) == Some(2),
        "the second commit of {} not stored",
        shards[1]
    );
    ensure_law!(
        metas.iter().all(|m| m.shard_id != refused),
        "a refused shard listed: {metas:?}"
    );
    Ok(())
}
