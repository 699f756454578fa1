//! Laws of [`Registry`]: intersections created, read, listed, replaced and deleted, their
//! versions, conditional writes, timings and their history.

use super::{Outcome, ensure_law, id, intersection};
use crate::{PortError, ProposalUpdate, Registry, TimingChange, TimingUpdate, Version};
use traffic_core::IntersectionId;
use traffic_core::city::Phase;
use traffic_core::control::Proposal;
use traffic_core::window::{WindowKey, WindowLength};

fn window(text: &str) -> anyhow::Result<WindowKey> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("window {text}: {e:?}"))
}

fn phases(green_s: f64) -> anyhow::Result<Vec<Phase>> {
    Ok(intersection(&id("P", 0)?, green_s)?.phases)
}

async fn version<S: Registry + ?Sized>(s: &S, x: &IntersectionId) -> anyhow::Result<Version> {
    Ok(s.intersection_versioned(x)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{x} missing"))?
        .1)
}

fn is_conflict<T: std::fmt::Debug>(r: &crate::PortResult<T>) -> bool {
    matches!(r, Err(PortError::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: &crate::PortResult<T>) -> bool {
    matches!(r, Err(PortError::NotFound(_)))
}

/// A created intersection reads back as written (alone and among all), a second create of its
/// id is [`PortError::AlreadyExists`] and changes nothing, and an unknown id reads as none.
pub async fn create_then_read_and_refuse_a_second_create<S: Registry + ?Sized>(s: &S) -> Outcome {
    let x = intersection(&id("R1", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let got = s.intersection(&x.id).await?;
    ensure_law!(got.as_ref() == Some(&x), "read back {got:?}");
    let again = s.create_intersection(&intersection(&x.id, 50.0)?).await;
    ensure_law!(
        matches!(again, Err(PortError::AlreadyExists(_))),
        "second create: {again:?}"
    );
    let got = s.intersection(&x.id).await?;
    ensure_law!(got.as_ref() == Some(&x), "after a refused create: {got:?}");
    let all = s.intersections().await?;
    ensure_law!(
        all.iter().filter(|i| i.id == x.id).count() == 1,
        "listed {} times",
        all.iter().filter(|i| i.id == x.id).count()
    );
    let none = s.intersection(&id("R1", 9)?).await?;
    ensure_law!(none.is_none(), "unknown id read as {none:?}");
    Ok(())
}

/// Paging from the first with a small limit lists every intersection exactly once, in id
/// order, no page longer than the limit; `intersections` lists them in id order too.
pub async fn intersections_page_covers_every_intersection_once_in_id_order<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let mut want = Vec::new();
    for n in [3, 0, 4, 1, 2] {
        let x = intersection(&id("R2", n)?, 30.0)?;
        s.create_intersection(&x).await?;
        want.push(x.id);
    }
    want.sort();
    let mut got = Vec::new();
    let mut after: Option<IntersectionId> = None;
    for _ in 0..20 {
        let (page, next) = s.intersections_page(after.as_ref(), 2).await?;
        ensure_law!(page.len() <= 2, "a page of {}", page.len());
        got.extend(page.into_iter().map(|x| x.id));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mine: Vec<IntersectionId> = got
        .iter()
        .filter(|i| i.as_str().starts_with("C-R2-"))
        .cloned()
        .collect();
    ensure_law!(mine == want, "paged {mine:?}, stored {want:?}");
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    ensure_law!(sorted == got, "pages out of order or repeated: {got:?}");
    let all: Vec<IntersectionId> = s.intersections().await?.into_iter().map(|x| x.id).collect();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    ensure_law!(all == all_sorted, "intersections not by id: {all:?}");
    Ok(())
}

/// `put_intersection` creates or replaces; `delete_intersection` says whether there was one.
pub async fn put_replaces_and_delete_reports_whether_there_was_one<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R3", 0)?, 30.0)?;
    s.put_intersection(&x).await?;
    ensure_law!(
        s.intersection(&x.id).await?.as_ref() == Some(&x),
        "put did not create"
    );
    let y = intersection(&x.id, 41.0)?;
    s.put_intersection(&y).await?;
    let got = s.intersection(&x.id).await?;
    ensure_law!(got.as_ref() == Some(&y), "put did not replace: {got:?}");
    ensure_law!(s.delete_intersection(&x.id).await?, "delete found none");
    ensure_law!(
        s.intersection(&x.id).await?.is_none(),
        "still there after delete"
    );
    ensure_law!(
        !s.delete_intersection(&x.id).await?,
        "second delete found one"
    );
    Ok(())
}

/// Every write changes the version; a conditional replace or delete at a stale version is
/// [`PortError::Conflict`] and changes nothing; at the current one it lands.
pub async fn version_changes_on_write_and_a_stale_one_is_refused<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R4", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let v1 = version(s, &x.id).await?;
    let y = intersection(&x.id, 35.0)?;
    let v2 = s.replace_intersection_if(&y, &v1).await?;
    ensure_law!(v2 != v1, "version unchanged by a replace: {v1}");
    let got = s.intersection_versioned(&x.id).await?;
    ensure_law!(got == Some((y.clone(), v2.clone())), "read back {got:?}");
    let listed = s.intersections_versioned().await?;
    ensure_law!(
        listed.contains(&(y.clone(), v2.clone())),
        "intersections_versioned: {listed:?}"
    );
    let stale = s
        .replace_intersection_if(&intersection(&x.id, 50.0)?, &v1)
        .await;
    ensure_law!(is_conflict(&stale), "replace at a stale version: {stale:?}");
    let del = s.delete_intersection_if(&x.id, &v1).await;
    ensure_law!(is_conflict(&del), "delete at a stale version: {del:?}");
    ensure_law!(
        s.intersection_versioned(&x.id).await? == Some((y.clone(), v2.clone())),
        "a refused write changed it"
    );
    s.put_intersection(&intersection(&x.id, 36.0)?).await?;
    let v3 = version(s, &x.id).await?;
    ensure_law!(v3 != v2, "version unchanged by a put");
    s.delete_intersection_if(&x.id, &v3).await?;
    ensure_law!(s.intersection(&x.id).await?.is_none(), "deleted at v3");
    Ok(())
}

/// A conditional replace or delete of an intersection that is gone is
/// [`PortError::NotFound`], and recreates nothing.
pub async fn conditional_writes_on_a_deleted_intersection_are_not_found<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R5", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let v = version(s, &x.id).await?;
    s.delete_intersection(&x.id).await?;
    let r = s.replace_intersection_if(&x, &v).await;
    ensure_law!(is_not_found(&r), "replace of a deleted one: {r:?}");
    let d = s.delete_intersection_if(&x.id, &v).await;
    ensure_law!(is_not_found(&d), "delete of a deleted one: {d:?}");
    ensure_law!(s.intersection(&x.id).await?.is_none(), "recreated");
    Ok(())
}

/// New timings at the current version land with their history entry and a new version; at a
/// stale version (or for an intersection that is gone) they are skipped and change nothing.
pub async fn set_timings_records_history_and_skips_stale_versions<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R6", 0)?, 30.0)?;
    let gone = id("R6", 1)?;
    s.create_intersection(&x).await?;
    let v1 = version(s, &x.id).await?;
    let from = window("15m@2026-01-05T08:00:00Z")?;
    let new = phases(42.0)?;
    let skipped = s
        .set_timings(
            &[
                TimingUpdate {
                    id: x.id.clone(),
                    phases: new.clone(),
                    plan: None,
                    expected_version: v1.clone(),
                },
                TimingUpdate {
                    id: gone.clone(),
                    phases: new.clone(),
                    plan: None,
                    expected_version: v1.clone(),
                },
            ],
            &from,
        )
        .await?;
    ensure_law!(skipped == [gone.clone()], "skipped {skipped:?}");
    let (got, v2) = s
        .intersection_versioned(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    ensure_law!(
        got.phases == new,
        "phases after set_timings: {:?}",
        got.phases
    );
    ensure_law!(v2 != v1, "version unchanged by a retiming");
    ensure_law!(
        s.intersection(&gone).await?.is_none(),
        "set_timings created {gone}"
    );
    let history = s.timing_history(&x.id).await?;
    ensure_law!(
        history == [TimingChange::retiming(from, new.clone())],
        "history {history:?}"
    );
    let stale = s
        .set_timings(
            &[TimingUpdate {
                id: x.id.clone(),
                phases: phases(20.0)?,
                plan: None,
                expected_version: v1,
            }],
            &window("15m@2026-01-05T08:15:00Z")?,
        )
        .await?;
    ensure_law!(
        stale == [x.id.clone()],
        "stale retiming not skipped: {stale:?}"
    );
    let after = s.intersection(&x.id).await?.map(|x| x.phases);
    ensure_law!(after == Some(new), "a skipped retiming changed {after:?}");
    let n = s.timing_history(&x.id).await?.len();
    ensure_law!(n == 1, "a skipped retiming left history: {n} entries");
    Ok(())
}

/// A proposal at the current version is stored and changes the version (and not the
/// directory generation); at a stale version it is skipped.
pub async fn set_proposals_changes_the_version_not_the_directory<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R7", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let v1 = version(s, &x.id).await?;
    let generation = s.directory_generation().await?;
    let proposal = Proposal {
        from: window("15m@2026-01-05T08:00:00Z")?,
        window_s: 900.0,
        flows: Vec::new(),
        flow_ratio: 0.5,
        cycle_s: 70.0,
        phases: phases(31.0)?,
    };
    let update = |expected_version: Version| ProposalUpdate {
        id: x.id.clone(),
        proposal: proposal.clone(),
        expected_version,
    };
    let skipped = s.set_proposals(&[update(v1.clone())]).await?;
    ensure_law!(skipped.is_empty(), "skipped {skipped:?}");
    let (got, v2) = s
        .intersection_versioned(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    ensure_law!(
        got.proposal.as_ref() == Some(&proposal),
        "proposal {:?}",
        got.proposal
    );
    ensure_law!(got.phases == x.phases, "a proposal changed the phases");
    ensure_law!(v2 != v1, "version unchanged by a proposal");
    let after = s.directory_generation().await?;
    ensure_law!(
        after == generation,
        "directory generation {generation:?} -> {after:?} on a proposal"
    );
    let stale = s.set_proposals(&[update(v1)]).await?;
    ensure_law!(
        stale == [x.id.clone()],
        "stale proposal not skipped: {stale:?}"
    );
    Ok(())
}

/// Replacing with a recorded change appends exactly that change to the history with the new
/// version; at a stale version it is [`PortError::Conflict`] and appends nothing;
/// `record_timing_change` appends after it, in history-key order.
pub async fn replace_recording_appends_the_operators_change<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let x = intersection(&id("R8", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let v1 = version(s, &x.id).await?;
    let control = WindowLength::from_ms(900_000).ok_or_else(|| anyhow::anyhow!("15m"))?;
    let at = 1_767_600_000_000 + 1_000_000;
    let y = intersection(&x.id, 44.0)?;
    let change = TimingChange::by_operator(control, at, Some("op-1".into()), y.phases.clone());
    let v2 = s.replace_intersection_recording(&y, &v1, &change).await?;
    ensure_law!(v2 != v1, "version unchanged");
    ensure_law!(
        s.intersection_versioned(&x.id).await? == Some((y.clone(), v2.clone())),
        "not replaced"
    );
    let history = s.timing_history(&x.id).await?;
    ensure_law!(history == [change.clone()], "history {history:?}");
    let z = intersection(&x.id, 20.0)?;
    let later = TimingChange::by_operator(control, at + 60_000, None, z.phases.clone());
    let stale = s.replace_intersection_recording(&z, &v1, &later).await;
    ensure_law!(is_conflict(&stale), "stale: {stale:?}");
    ensure_law!(
        s.timing_history(&x.id).await?.len() == 1,
        "a refused change left history"
    );
    s.record_timing_change(&x.id, &later).await?;
    let history = s.timing_history(&x.id).await?;
    ensure_law!(
        history == [change, later],
        "after record_timing_change: {history:?}"
    );
    Ok(())
}

/// A store with a directory generation changes it when an intersection is created or
/// deleted, not when one is retimed; a store without one says `None` throughout.
pub async fn directory_generation_changes_on_create_and_delete<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let g0 = s.directory_generation().await?;
    let x = intersection(&id("R9", 0)?, 30.0)?;
    s.create_intersection(&x).await?;
    let g1 = s.directory_generation().await?;
    ensure_law!(g0.is_some() == g1.is_some(), "{g0:?} then {g1:?}");
    if g0.is_some() {
        ensure_law!(g1 != g0, "unchanged by a create: {g1:?}");
    }
    let v = version(s, &x.id).await?;
    s.set_timings(
        &[TimingUpdate {
            id: x.id.clone(),
            phases: phases(33.0)?,
            plan: None,
            expected_version: v,
        }],
        &window("15m@2026-01-05T08:00:00Z")?,
    )
    .await?;
    let g2 = s.directory_generation().await?;
    ensure_law!(g2 == g1, "changed by a retiming: {g1:?} -> {g2:?}");
    s.delete_intersection(&x.id).await?;
    let g3 = s.directory_generation().await?;
    if g0.is_some() {
        ensure_law!(g3 != g2, "unchanged by a delete: {g3:?}");
    } else {
        ensure_law!(g3.is_none(), "{g3:?} from a store without one");
    }
    Ok(())
}

/// Operators' edits are found by the time they were made, with their intersection and author,
/// oldest first, whichever way they were recorded; retimings are not edits, and an edit is
/// found in the range that holds its time only (one on a day's last millisecond too).
pub async fn operator_edits_are_found_by_their_time_with_their_author<S: Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let control = WindowLength::from_ms(900_000).ok_or_else(|| anyhow::anyhow!("15m"))?;
    // 2026-02-03T23:50:00Z: a quarter that ends at midnight.
    let t = 1_770_162_600_000_i64;
    let (a, b) = (id("E1", 0)?, id("E1", 1)?);
    let x = intersection(&a, 30.0)?;
    let y = intersection(&b, 30.0)?;
    s.create_intersection(&x).await?;
    s.create_intersection(&y).await?;
    let edited = intersection(&a, 41.0)?;
    let first = TimingChange::by_operator(
        control,
        t + 60_000,
        Some("op-1".into()),
        edited.phases.clone(),
    );
    s.replace_intersection_recording(&edited, &version(s, &a).await?, &first)
        .await?;
    let last_ms = t + 10 * 60_000 - 1;
    let second = TimingChange::by_operator(control, last_ms, None, phases(22.0)?);
    s.record_timing_change(&b, &second).await?;
    let retimed = TimingUpdate {
        id: b.clone(),
        phases: phases(25.0)?,
        plan: None,
        expected_version: version(s, &b).await?,
    };
    let skipped = s
        .set_timings(&[retimed], &window("15m@2026-02-03T23:30:00Z")?)
        .await?;
    ensure_law!(skipped.is_empty(), "retiming skipped {skipped:?}");

    let all = s.operator_edits(t, t + 15 * 60_000).await?;
    ensure_law!(
        all == [(a.clone(), first.clone()), (b.clone(), second.clone())],
        "the quarter's edits: {all:?}"
    );
    let before = s.operator_edits(t, t + 60_000).await?;
    ensure_law!(before.is_empty(), "before the first: {before:?}");
    let only_first = s.operator_edits(t + 60_000, last_ms).await?;
    ensure_law!(only_first == [(a, first)], "[first, last): {only_first:?}");
    let next_day = s.operator_edits(last_ms, last_ms + 86_400_000).await?;
    ensure_law!(next_day == [(b, second)], "from the last: {next_day:?}");
    Ok(())
}
