//! Laws of [`LampStore`]'s publication: alarms due (held down or not), claims on them, and
//! marking them published.

use super::lamps::{NOW, T0, alarm, closing, ids_of, light, record_of};
use super::{Outcome, ensure_law, id};
use crate::{Claim, LampStore};
use traffic_core::LampColour;

/// A held alarm is recorded held down, unpublished, and is due only from the end of its
/// hold-down; the alarms due come soonest due first, at most `limit`.
pub async fn held_alarm_is_due_only_when_its_hold_down_ends<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L5", 0)?;
    let held = alarm(&x, 0, LampColour::Green, T0)?;
    let until = T0 + 60_000;
    let rec = s.record_held_alarm(&held, until).await?;
    ensure_law!(
        rec.held_down && !rec.published && rec.held_until_ms == Some(until),
        "{rec:?}"
    );
    ensure_law!(rec.due_ms() == until, "due at {}", rec.due_ms());
    let plain = alarm(&x, 1, LampColour::Red, T0 + 1_000)?;
    s.record_alarm(&plain).await?;
    let before = s.due_alarms(until - 1, 10).await?;
    ensure_law!(
        ids_of(&before) == [plain.id()],
        "due before the hold-down ended: {before:?}"
    );
    let after = s.due_alarms(until, 10).await?;
    ensure_law!(
        ids_of(&after) == [plain.id(), held.id()],
        "due once it ended, soonest first: {:?}",
        ids_of(&after)
    );
    let one = s.due_alarms(until, 1).await?;
    ensure_law!(ids_of(&one) == [plain.id()], "limit 1: {:?}", ids_of(&one));
    Ok(())
}

/// A claim is granted to one caller at a time; released, it is granted again at once;
/// expired unmarked, it is granted to the next caller.
pub async fn claim_is_granted_once_until_released_or_expired<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L6", 0)?;
    let a = alarm(&x, 2, LampColour::Red, T0)?;
    s.record_alarm(&a).await?;
    let i = a.id();
    let first = s.claim_publication(&i, NOW, NOW + 10_000).await?;
    ensure_law!(
        matches!(&first, Claim::Mine(r) if r.alarm == a && !r.published),
        "first claim: {first:?}"
    );
    let second = s.claim_publication(&i, NOW + 1_000, NOW + 11_000).await?;
    ensure_law!(second == Claim::Taken, "claimed while held: {second:?}");
    s.release_publication(&i).await?;
    let third = s.claim_publication(&i, NOW + 2_000, NOW + 12_000).await?;
    ensure_law!(matches!(third, Claim::Mine(_)), "after release: {third:?}");
    let fourth = s.claim_publication(&i, NOW + 3_000, NOW + 13_000).await?;
    ensure_law!(fourth == Claim::Taken, "held again: {fourth:?}");
    let fifth = s.claim_publication(&i, NOW + 12_001, NOW + 22_000).await?;
    ensure_law!(
        matches!(fifth, Claim::Mine(_)),
        "after the claim expired: {fifth:?}"
    );
    Ok(())
}

/// A claim on a published alarm, or on an id never recorded, finds it settled, and the
/// published alarm is not among those due.
pub async fn claim_of_a_published_or_unknown_alarm_is_settled<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L7", 0)?;
    let unknown = alarm(&x, 3, LampColour::Red, T0 + 7)?.id();
    let c = s.claim_publication(&unknown, NOW, NOW + 10_000).await?;
    ensure_law!(c == Claim::Settled, "unknown alarm: {c:?}");
    let a = alarm(&x, 0, LampColour::Red, T0)?;
    s.record_alarm(&a).await?;
    s.mark_published(&a.id()).await?;
    let c = s.claim_publication(&a.id(), NOW, NOW + 10_000).await?;
    ensure_law!(c == Claim::Settled, "published alarm: {c:?}");
    let due = s.due_alarms(T0 + 86_400_000, 10).await?;
    ensure_law!(due.is_empty(), "a published alarm is due: {due:?}");
    Ok(())
}

/// Marking an alarm published stores it so, takes it from the alarms due, and makes its time
/// the lamp's last published alarm; an older alarm published later does not move that back.
pub async fn mark_published_settles_and_sets_last_published<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L8", 0)?;
    let l = light(1)?;
    let none = s.last_published(&x, l, LampColour::Yellow).await?;
    ensure_law!(none.is_none(), "last published before any: {none:?}");
    let newer = alarm(&x, 1, LampColour::Yellow, T0 + 5_000)?;
    let older = alarm(&x, 1, LampColour::Yellow, T0)?;
    let other_lamp = alarm(&x, 1, LampColour::Red, T0 + 9_000)?;
    for a in [&newer, &older, &other_lamp] {
        s.record_alarm(a).await?;
    }
    s.mark_published(&newer.id()).await?;
    let rec = record_of(s, &newer.id()).await?;
    ensure_law!(rec.published, "marked but stored unpublished: {rec:?}");
    let due = ids_of(&s.due_alarms(T0 + 86_400_000, 10).await?);
    ensure_law!(
        !due.contains(&newer.id()) && due.contains(&older.id()),
        "due after marking {}: {due:?}",
        newer.id()
    );
    let last = s.last_published(&x, l, LampColour::Yellow).await?;
    ensure_law!(last == Some(T0 + 5_000), "last published {last:?}");
    s.mark_published(&older.id()).await?;
    let last = s.last_published(&x, l, LampColour::Yellow).await?;
    ensure_law!(last == Some(T0 + 5_000), "moved back to {last:?}");
    let red = s.last_published(&x, l, LampColour::Red).await?;
    ensure_law!(red.is_none(), "another lamp's last published: {red:?}");
    Ok(())
}

/// A held alarm closed before its hold-down ended is settled (its claim finds it so);
/// an alarm not held that closed unpublished is still due (published at least once).
pub async fn held_alarm_closed_before_its_hold_down_is_settled<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let (x, y) = (id("L14", 0)?, id("L14", 1)?);
    let held = alarm(&x, 0, LampColour::Red, T0)?;
    let plain = alarm(&y, 0, LampColour::Red, T0)?;
    s.record_held_alarm(&held, T0 + 60_000).await?;
    s.record_alarm(&plain).await?;
    let c = closing(T0 + 30_000);
    s.close_alarms(&x, None, &c, false).await?;
    s.close_alarms(&y, None, &c, false).await?;
    let held_rec = record_of(s, &held.id()).await?;
    ensure_law!(held_rec.publication_settled(), "{held_rec:?}");
    // The flap may still be listed (a record may be settled meanwhile: the claim tells).
    let due = ids_of(&s.due_alarms(T0 + 120_000, 10).await?);
    ensure_law!(
        due.contains(&plain.id()),
        "due: {due:?} (the closed, unpublished alarm must be)"
    );
    let c = s.claim_publication(&held.id(), NOW, NOW + 10_000).await?;
    ensure_law!(c == Claim::Settled, "claim of the flap: {c:?}");
    let c = s.claim_publication(&plain.id(), NOW, NOW + 10_000).await?;
    ensure_law!(
        matches!(c, Claim::Mine(_)),
        "claim of the closed alarm: {c:?}"
    );
    Ok(())
}
