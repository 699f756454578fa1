//! Laws of [`StateStore`] on deltas: what a commit writes is read back by key and listed by
//! pane, and [`StateStore::forget`] keeps what it does not drop.

use super::{Outcome, ensure_law, id};
use crate::StateStore;
use std::collections::BTreeMap;
use traffic_core::LightIndex;
use traffic_core::ShardId;
use traffic_core::delta::{Arrivals, Delta, DeltaKey, DeltaReading};
use traffic_core::pane::{Commit, DeltaRef, ShardMeta};
use traffic_core::rollup::Rollup;
use traffic_core::sequence::SequenceNumber;
use traffic_core::window::{WindowKey, WindowLength};

/// 2026-01-06T12:00:00Z, epoch ms: the first pane of the cases.
const T0: i64 = 1_767_700_800_000;

/// The panes' length.
const PANE: i64 = 60_000;

fn pane_length() -> anyhow::Result<WindowLength> {
    WindowLength::from_ms(PANE).ok_or_else(|| anyhow::anyhow!("pane length {PANE}"))
}

/// A delta of pane `start_ms`, shard, commit and part, with two readings of intersection
/// `C-<case>-<n>` per `n` in `ns`.
fn delta(
    case: &str,
    ns: &[usize],
    start_ms: i64,
    shard: &ShardId,
    commit: u64,
    part: u32,
) -> anyhow::Result<Delta> {
    let mut readings = BTreeMap::new();
    for &n in ns {
        readings.insert(
            id(case, n)?,
            vec![
                DeltaReading {
                    light: LightIndex::FIRST,
                    ts_ms: start_ms + 5_000,
                    vehicles: 7 + n as u32,
                    speed_milli: 41_300,
                },
                DeltaReading {
                    light: LightIndex::new(1)?,
                    ts_ms: start_ms + 12_345,
                    vehicles: 0,
                    speed_milli: 0,
                },
            ],
        );
    }
    Ok(Delta {
        key: DeltaKey {
            pane_start_ms: start_ms,
            shard_id: shard.clone(),
            commit,
            part,
        },
        pane: WindowKey {
            length: pane_length()?,
            start_ms,
        },
        readings,
        arrivals: Some(Arrivals {
            first_ms: start_ms + 6_000,
            last_ms: start_ms + 13_000,
            mean_ms: start_ms + 9_500,
        }),
    })
}

/// Commit number `n` (1, 2, ...) of `shard` from a fresh store's point of view: the meta
/// after it lists `deltas`.
fn commit(shard: &ShardId, n: u64, deltas: Vec<Delta>) -> Commit {
    let mut refs: Vec<DeltaRef> = Vec::new();
    for d in &deltas {
        match refs
            .iter_mut()
            .find(|r| r.pane_start_ms == d.key.pane_start_ms)
        {
            Some(r) => r.parts = r.parts.max(d.key.part + 1),
            None => refs.push(DeltaRef {
                pane_start_ms: d.key.pane_start_ms,
                commit: n,
                parts: d.key.part + 1,
            }),
        }
    }
    Commit {
        expected: (n > 1).then(|| SequenceNumber::from_u64(10 * (n - 1))),
        expected_commits: n - 1,
        closed_ms: None,
        meta: ShardMeta {
            shard_id: shard.clone(),
            applied_through: Some(SequenceNumber::from_u64(10 * n)),
            max_event_ms: Some(T0 + 30_000),
            commits: n,
            deltas: refs,
            ..ShardMeta::default()
        },
        deltas,
    }
}

/// What a commit writes is read back: [`StateStore::deltas`] returns those of the keys asked
/// that exist, in the order asked, as written, whether the read is consistent or not.
pub async fn committed_deltas_read_back_by_key_in_the_order_asked<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    let case = "deltas-read";
    let shard = &ShardId::from("contract-d1");
    let written = vec![
        delta(case, &[0, 1], T0, shard, 1, 0)?,
        delta(case, &[2], T0, shard, 1, 1)?,
    ];
    s.commit(&commit(shard, 1, written.clone()), T0).await?;
    let missing = DeltaKey {
        part: 2,
        ..written[0].key.clone()
    };
    let other_commit = DeltaKey {
        commit: 2,
        ..written[0].key.clone()
    };
    let keys = [
        written[1].key.clone(),
        missing.clone(),
        written[0].key.clone(),
        other_commit,
    ];
    for consistent in [true, false] {
        let got = s.deltas(&keys, consistent).await?;
        ensure_law!(
            got == [written[1].clone(), written[0].clone()],
            "read (consistent: {consistent}) {got:?}"
        );
    }
    let none = s.deltas(&[missing], true).await?;
    ensure_law!(none.is_empty(), "a key never written read {none:?}");
    let none = s.deltas(&[], true).await?;
    ensure_law!(none.is_empty(), "no keys read {none:?}");
    Ok(())
}

/// [`StateStore::delta_panes`] lists the start of every pane a commit wrote deltas to, once
/// however many shards and commits wrote there, ascending, from its argument on (inclusive).
pub async fn delta_panes_lists_each_pane_with_deltas_once_from_the_start_on<
    S: StateStore + ?Sized,
>(
    s: &S,
) -> Outcome {
    let case = "deltas-panes";
    let base = T0 + 100 * PANE;
    let panes = [base, base + PANE, base + 2 * PANE];
    let last = panes[2];
    let (a, b) = (
        &ShardId::from("contract-d2a"),
        &ShardId::from("contract-d2b"),
    );
    s.commit(
        &commit(
            a,
            1,
            vec![
                delta(case, &[0], panes[2], a, 1, 0)?,
                delta(case, &[0], panes[0], a, 1, 0)?,
            ],
        ),
        T0,
    )
    .await?;
    s.commit(
        &commit(a, 2, vec![delta(case, &[1], panes[2], a, 2, 0)?]),
        T0,
    )
    .await?;
    s.commit(
        &commit(b, 1, vec![delta(case, &[2], panes[1], b, 1, 0)?]),
        T0,
    )
    .await?;
    s.commit(
        &commit(b, 2, vec![delta(case, &[3], panes[2], b, 2, 0)?]),
        T0,
    )
    .await?;
    let ours = |v: Vec<i64>| -> Vec<i64> { v.into_iter().filter(|&p| p <= last).collect() };
    let all = ours(s.delta_panes(base - PANE).await?);
    ensure_law!(all == panes, "from before the first pane: {all:?}");
    let from = ours(s.delta_panes(panes[1]).await?);
    ensure_law!(from == panes[1..], "from the second pane: {from:?}");
    let within = ours(s.delta_panes(panes[1] + 1).await?);
    ensure_law!(
        within == panes[2..],
        "from within the second pane: {within:?}"
    );
    let after = s.delta_panes(last + 1).await?;
    ensure_law!(
        after.iter().all(|&p| p > last),
        "from after the last pane: {after:?}"
    );
    Ok(())
}

/// [`StateStore::forget`] drops at most what it says: the deltas of panes starting at or
/// after `panes_before_ms` stay listed and readable, and so do the rollups of windows ending
/// after `rollups_through_ms` (what it drops, a store may leave to expiry).
pub async fn forget_keeps_the_panes_and_rollups_it_does_not_drop<S: StateStore + ?Sized>(
    s: &S,
) -> Outcome {
    let case = "deltas-forget";
    let shard = &ShardId::from("contract-d3");
    let base = T0 + 200 * PANE;
    let (old, kept) = (base, base + PANE);
    let written = vec![
        delta(case, &[0], old, shard, 1, 0)?,
        delta(case, &[0], kept, shard, 1, 0)?,
    ];
    s.commit(&commit(shard, 1, written.clone()), T0).await?;
    let length = pane_length()?;
    let rollups: Vec<Rollup> = [old, kept]
        .into_iter()
        .map(|start_ms| Rollup::new(WindowKey { length, start_ms }))
        .collect();
    s.put_rollups(&rollups, T0).await?;
    // Panes starting before `kept`; rollups of windows ending at or before the last instant
    // of the kept one (so only the old one).
    s.forget(kept, kept + PANE - 1).await?;
    let panes = s.delta_panes(base).await?;
    ensure_law!(panes.contains(&kept), "a kept pane unlisted: {panes:?}");
    let got = s.deltas(&[written[1].key.clone()], true).await?;
    ensure_law!(got == written[1..], "a kept pane's delta read {got:?}");
    let got = s.rollups(length, kept, kept).await?;
    ensure_law!(got == rollups[1..], "a kept window's rollup read {got:?}");
    Ok(())
}
