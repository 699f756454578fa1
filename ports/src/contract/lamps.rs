//! Laws of [`LampStore`]: lamp states and their summaries, the alarm log, its open view,
//! publication claims, acknowledgements, closings and repair orders.

use super::{Outcome, ensure_law, id, intersection};
use crate::{Ack, AlarmQuery, AlarmRecord, Closing, LampStore, PortError, Registry};
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::lamps::{Alarm, LampSummary, LightLamps};
use traffic_core::reading::{LampState, Lamps};
use traffic_core::{AlarmId, IntersectionId, LampColour, LightIndex};

/// 2026-01-05T08:00:00Z, epoch ms: the event time the cases' alarms start from.
pub(super) const T0: i64 = 1_767_600_000_000;

/// Processing time the claims are made at, epoch ms.
pub(super) const NOW: i64 = 1_767_700_000_000;

pub(super) fn light(l: i64) -> anyhow::Result<LightIndex> {
    Ok(LightIndex::new(l)?)
}

pub(super) fn alarm(
    id: &IntersectionId,
    l: i64,
    lamp: LampColour,
    ts_ms: i64,
) -> anyhow::Result<Alarm> {
    Ok(Alarm {
        intersection_id: id.clone(),
        light: light(l)?,
        lamp,
        ts_ms,
        position: None,
        silent: None,
    })
}

/// Closed at `at_ms`, kept for ever (no case depends on expiry).
pub(super) fn closing(at_ms: i64) -> Closing {
    Closing {
        at_ms,
        expires_at_ms: None,
    }
}

/// An RFC 3339 time as epoch ms.
fn ms(text: &str) -> anyhow::Result<i64> {
    traffic_core::time::parse_rfc3339_ms(text).ok_or_else(|| anyhow::anyhow!("time {text}"))
}

fn broken(lamp: LampColour) -> Lamps {
    let mut l = Lamps::default();
    match lamp {
        LampColour::Red => l.red = LampState::Broken,
        LampColour::Yellow => l.yellow = LampState::Broken,
        LampColour::Green => l.green = LampState::Broken,
    }
    l
}

pub(super) fn ids_of(records: &[AlarmRecord]) -> Vec<AlarmId> {
    records.iter().map(|r| r.alarm.id()).collect()
}

pub(super) async fn record_of<S: LampStore + ?Sized>(
    s: &S,
    alarm_id: &AlarmId,
) -> anyhow::Result<AlarmRecord> {
    s.alarms()
        .await?
        .into_iter()
        .find(|r| r.alarm.id() == *alarm_id)
        .ok_or_else(|| anyhow::anyhow!("alarm {alarm_id} missing from the log"))
}

async fn open_ids<S: LampStore + ?Sized>(s: &S) -> anyhow::Result<(Vec<AlarmId>, u64)> {
    let page = s
        .alarm_page(&AlarmQuery {
            open_only: true,
            limit: 1000,
            after: None,
        })
        .await?;
    Ok((ids_of(&page.alarms), page.open))
}

/// Stored lamp states read back as written, per light; a light never written reads as all ok,
/// and writing one light leaves the intersection's other lights as they were.
pub async fn lamp_states_round_trip_and_default_to_all_ok<S: LampStore + ?Sized>(s: &S) -> Outcome {
    let (a, b) = (id("L1", 0)?, id("L1", 1)?);
    let red = LightLamps {
        lamps: broken(LampColour::Red),
        as_of_ms: Some(T0),
    };
    let ok = LightLamps {
        lamps: Lamps::default(),
        as_of_ms: Some(T0 + 1),
    };
    s.put_lamp_states(&[((a.clone(), light(0)?), red), ((a.clone(), light(1)?), ok)])
        .await?;
    let keys = [
        (a.clone(), light(0)?),
        (a.clone(), light(1)?),
        (a.clone(), light(2)?),
        (b.clone(), light(0)?),
    ];
    let got = s.lamp_states(&keys).await?;
    let want: BTreeMap<_, _> = [
        (keys[0].clone(), red),
        (keys[1].clone(), ok),
        (keys[2].clone(), LightLamps::default()),
        (keys[3].clone(), LightLamps::default()),
    ]
    .into();
    ensure_law!(got == want, "states read back {got:?}, written {want:?}");
    let later = LightLamps {
        lamps: Lamps::default(),
        as_of_ms: Some(T0 + 5),
    };
    s.put_lamp_states(&[((a.clone(), light(0)?), later)])
        .await?;
    let got = s.lamp_states(&keys[..2]).await?;
    ensure_law!(
        got.get(&keys[0]) == Some(&later) && got.get(&keys[1]) == Some(&ok),
        "after writing light 0 only: {got:?}"
    );
    Ok(())
}

/// A store that keeps summaries keeps them exact: the lamps not ok of each intersection with
/// any, and no entry for an intersection all ok (also once its lamps are ok again);
/// `lamp_summaries_for` says the same of the ids asked for. A store keeping none says `None`
/// to both.
///
/// The intersections are registered first: DynamoDB's first summary read of a table (one not
/// yet summarised) drops the stored lamps of intersections the registry does not have, as
/// stale entries of deleted ones (`adapters/aws/src/lamp_summary.rs`).
pub async fn lamp_summaries_when_kept_are_exact<S: LampStore + Registry + ?Sized>(
    s: &S,
) -> Outcome {
    let (a, b) = (id("L2", 0)?, id("L2", 1)?);
    for x in [&a, &b] {
        s.create_intersection(&intersection(x, 30.0)?).await?;
    }
    let green = broken(LampColour::Green);
    s.put_lamp_states(&[
        (
            (a.clone(), light(1)?),
            LightLamps {
                lamps: green,
                as_of_ms: Some(T0),
            },
        ),
        (
            (b.clone(), light(0)?),
            LightLamps {
                lamps: Lamps::default(),
                as_of_ms: Some(T0),
            },
        ),
    ])
    .await?;
    let both: BTreeSet<IntersectionId> = [a.clone(), b.clone()].into();
    let all = s.lamp_summaries().await?;
    let some = s.lamp_summaries_for(&both).await?;
    ensure_law!(
        all.is_some() == some.is_some(),
        "lamp_summaries kept: {}, lamp_summaries_for kept: {}",
        all.is_some(),
        some.is_some()
    );
    let want = LampSummary::NotOk([(light(1)?, green)].into());
    for (what, m) in [("lamp_summaries", all), ("lamp_summaries_for", some)] {
        let Some(m) = m else { continue };
        ensure_law!(m.get(&a) == Some(&want), "{what} of {a}: {:?}", m.get(&a));
        ensure_law!(!m.contains_key(&b), "{what}: {b} all ok but listed");
    }
    s.put_lamp_states(&[(
        (a.clone(), light(1)?),
        LightLamps {
            lamps: Lamps::default(),
            as_of_ms: Some(T0 + 1),
        },
    )])
    .await?;
    if let Some(m) = s.lamp_summaries_for(&both).await? {
        ensure_law!(!m.contains_key(&a), "{a} ok again but listed: {m:?}");
    }
    Ok(())
}

/// Recording the same alarm twice keeps one record, and the second call returns the stored
/// record (published once it was), so a retry can tell.
pub async fn record_alarm_is_idempotent_by_id<S: LampStore + ?Sized>(s: &S) -> Outcome {
    let x = id("L3", 0)?;
    let a = alarm(&x, 1, LampColour::Yellow, T0)?;
    let first = s.record_alarm(&a).await?;
    let second = s.record_alarm(&a).await?;
    ensure_law!(first == second, "{first:?} then {second:?}");
    s.mark_published(&a.id()).await?;
    let third = s.record_alarm(&a).await?;
    ensure_law!(third.published, "a retry after publication: {third:?}");
    let held = s.record_held_alarm(&a, T0 + 60_000).await?;
    ensure_law!(
        held.published && !held.held_down,
        "a held record of an existing alarm replaced it: {held:?}"
    );
    let n = s
        .alarms()
        .await?
        .iter()
        .filter(|r| r.alarm.id() == a.id())
        .count();
    ensure_law!(n == 1, "{n} records of {} in the log", a.id());
    let (open, count) = open_ids(s).await?;
    ensure_law!(
        open == [a.id()] && count == 1,
        "open view {open:?}, count {count}"
    );
    Ok(())
}

/// A recorded alarm is open, unpublished and not held down, in the log and the open view,
/// and due for publication from its own event time on.
pub async fn recorded_alarm_is_open_unpublished_and_due_at_its_time<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L4", 0)?;
    let a = alarm(&x, 0, LampColour::Red, T0)?;
    let rec = s.record_alarm(&a).await?;
    ensure_law!(
        rec == AlarmRecord::new(&a, None),
        "recorded as {rec:?}, not new, open and unpublished"
    );
    ensure_law!(
        record_of(s, &a.id()).await? == rec,
        "the log holds another record"
    );
    let (open, count) = open_ids(s).await?;
    ensure_law!(open == [a.id()] && count == 1, "open {open:?} ({count})");
    let early = s.due_alarms(T0 - 1, 10).await?;
    ensure_law!(early.is_empty(), "due before its time: {early:?}");
    let due = s.due_alarms(T0, 10).await?;
    ensure_law!(ids_of(&due) == [a.id()], "due at its time: {due:?}");
    Ok(())
}

/// An acknowledgement is stored on the record (in the log and the open view), a second one
/// replaces it, a closed alarm can be acknowledged, and an unknown id is
/// [`PortError::NotFound`].
pub async fn ack_is_recorded_replaced_and_refused_for_unknown_ids<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L9", 0)?;
    let a = alarm(&x, 0, LampColour::Red, T0)?;
    s.record_alarm(&a).await?;
    let first = Ack {
        by: "ana".into(),
        at_ms: ms("2026-01-05T08:10:00Z")?,
        note: Some("on it".into()),
    };
    let second = Ack {
        by: "bo".into(),
        at_ms: ms("2026-01-05T08:20:00Z")?,
        note: None,
    };
    let r = s.ack_alarm(&a.id(), &first).await?;
    ensure_law!(r.ack.as_ref() == Some(&first), "returned {r:?}");
    let r = s.ack_alarm(&a.id(), &second).await?;
    ensure_law!(r.ack.as_ref() == Some(&second), "second ack returned {r:?}");
    let logged = record_of(s, &a.id()).await?;
    ensure_law!(logged.ack == Some(second.clone()), "log: {logged:?}");
    let open = s
        .alarm_page(&AlarmQuery {
            open_only: true,
            limit: 10,
            after: None,
        })
        .await?;
    ensure_law!(
        open.alarms.iter().any(|r| r.ack == Some(second.clone())),
        "open view: {:?}",
        open.alarms
    );
    s.close_alarms(&x, None, &closing(T0 + 60_000), false)
        .await?;
    let r = s.ack_alarm(&a.id(), &first).await?;
    ensure_law!(
        r.ack == Some(first.clone()) && r.repaired_at_ms.is_some(),
        "ack of a closed alarm: {r:?}"
    );
    let unknown = alarm(&x, 3, LampColour::Green, T0 + 3)?.id();
    match s.ack_alarm(&unknown, &first).await {
        Err(PortError::NotFound(_)) => Ok(()),
        other => Err(anyhow::anyhow!("ack of an unknown alarm: {other:?}")),
    }
}

/// Closing a light's alarms closes exactly its open ones (returned oldest first, stamped with
/// the closing's time), takes them from the open view, keeps them in the log, orders no repair
/// unless asked, and closes nothing twice; `None` closes every light's.
pub async fn close_alarms_closes_the_lights_open_alarms_and_keeps_them_in_the_log<
    S: LampStore + ?Sized,
>(
    s: &S,
) -> Outcome {
    let (x, y) = (id("L10", 0)?, id("L10", 1)?);
    let a0 = alarm(&x, 0, LampColour::Green, T0 + 2)?;
    let a0b = alarm(&x, 0, LampColour::Red, T0)?;
    let a1 = alarm(&x, 1, LampColour::Red, T0 + 1)?;
    let other = alarm(&y, 0, LampColour::Red, T0)?;
    for a in [&a0, &a0b, &a1, &other] {
        s.record_alarm(a).await?;
    }
    let c = closing(T0 + 3_600_000);
    let closed = s.close_alarms(&x, Some(light(0)?), &c, false).await?;
    ensure_law!(
        ids_of(&closed) == [a0b.id(), a0.id()],
        "closed {:?}",
        ids_of(&closed)
    );
    ensure_law!(
        closed.iter().all(|r| r.repaired_at_ms == Some(c.at_ms)),
        "closed without the closing's time: {closed:?}"
    );
    let (open, count) = open_ids(s).await?;
    let open: BTreeSet<AlarmId> = open.into_iter().collect();
    ensure_law!(
        open == [a1.id(), other.id()].into() && count == 2,
        "open after closing light 0: {open:?} ({count})"
    );
    let log = s.alarms().await?;
    ensure_law!(log.len() == 4, "log holds {} alarms", log.len());
    let logged = record_of(s, &a0.id()).await?;
    ensure_law!(logged.repaired_at_ms == Some(c.at_ms), "log: {logged:?}");
    let again = s.close_alarms(&x, Some(light(0)?), &c, false).await?;
    ensure_law!(again.is_empty(), "closed twice: {again:?}");
    let rest = s.close_alarms(&x, None, &c, false).await?;
    ensure_law!(
        ids_of(&rest) == [a1.id()],
        "all lights: {:?}",
        ids_of(&rest)
    );
    let repairs = s.take_repairs().await?;
    ensure_law!(repairs.is_empty(), "repair orders unasked: {repairs:?}");
    let (open, count) = open_ids(s).await?;
    ensure_law!(
        open == [other.id()] && count == 1,
        "open at the end: {open:?} ({count})"
    );
    Ok(())
}

/// Resolving closes only the open alarms `select` accepts, keeps `why`, and orders no repair.
pub async fn resolve_alarms_closes_only_the_selected_and_orders_no_repair<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L11", 0)?;
    let red = alarm(&x, 2, LampColour::Red, T0)?;
    let green = alarm(&x, 2, LampColour::Green, T0 + 1)?;
    s.record_alarm(&red).await?;
    s.record_alarm(&green).await?;
    let select = |alarm_id: &AlarmId| alarm_id.lamp() == Some(LampColour::Red);
    let c = closing(T0 + 60_000);
    let closed = s
        .resolve_alarms(&x, Some(light(2)?), &select, &c, "lamp ok")
        .await?;
    ensure_law!(ids_of(&closed) == [red.id()], "resolved {closed:?}");
    ensure_law!(
        closed[0].closed_why.as_deref() == Some("lamp ok")
            && closed[0].repaired_at_ms == Some(c.at_ms),
        "{:?}",
        closed[0]
    );
    let logged = record_of(s, &red.id()).await?;
    ensure_law!(
        logged.closed_why.as_deref() == Some("lamp ok"),
        "log: {logged:?}"
    );
    let (open, _) = open_ids(s).await?;
    ensure_law!(open == [green.id()], "open: {open:?}");
    let repairs = s.take_repairs().await?;
    ensure_law!(
        repairs.is_empty(),
        "a recovery ordered repairs: {repairs:?}"
    );
    Ok(())
}

/// Paging the log (and the open view) with a small limit returns every alarm exactly once,
/// newest first, no page longer than the limit, with the open count on each page.
pub async fn alarm_page_pages_every_alarm_once_newest_first<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let (x, y) = (id("L12", 0)?, id("L12", 1)?);
    let mut all = Vec::new();
    for (n, (who, l, lamp)) in [
        (&x, 0, LampColour::Red),
        (&y, 1, LampColour::Green),
        (&x, 2, LampColour::Yellow),
        (&y, 0, LampColour::Red),
        (&x, 0, LampColour::Green),
    ]
    .into_iter()
    .enumerate()
    {
        let a = alarm(who, l, lamp, T0 + 1_000 * n as i64)?;
        s.record_alarm(&a).await?;
        all.push(a.id());
    }
    // The second oldest is closed: in the log, not in the open view.
    s.close_alarms(&y, Some(light(1)?), &closing(T0 + 60_000), false)
        .await?;
    all.reverse();
    let open_want: Vec<AlarmId> = all.iter().filter(|i| **i != all[3]).cloned().collect();
    for (open_only, want) in [(false, &all), (true, &open_want)] {
        let mut got = Vec::new();
        let mut after = None;
        for _ in 0..10 {
            let page = s
                .alarm_page(&AlarmQuery {
                    open_only,
                    limit: 2,
                    after: after.clone(),
                })
                .await?;
            ensure_law!(page.alarms.len() <= 2, "page of {}", page.alarms.len());
            ensure_law!(page.open == 4, "open count {} on a page", page.open);
            got.extend(ids_of(&page.alarms));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        ensure_law!(
            &got == want,
            "open_only {open_only}: paged {got:?}, stored {want:?}"
        );
    }
    Ok(())
}

/// A repair closes the light's open alarms and queues one repair order for the light (also
/// when it had none open), which `take_repairs` returns once.
pub async fn repair_closes_and_queues_one_order_taken_once<S: LampStore + ?Sized>(
    s: &S,
) -> Outcome {
    let x = id("L13", 0)?;
    let a = alarm(&x, 1, LampColour::Red, T0)?;
    s.record_alarm(&a).await?;
    let at = ms("2026-01-05T09:00:00Z")?;
    let closed = s.repair(&x, light(1)?, at).await?;
    ensure_law!(
        ids_of(&closed) == [a.id()] && closed[0].repaired_at_ms == Some(at),
        "repair closed {closed:?}"
    );
    let none = s.repair(&x, light(3)?, at).await?;
    ensure_law!(none.is_empty(), "nothing open on light 3, closed {none:?}");
    let mut orders = s.take_repairs().await?;
    orders.sort();
    let want = vec![(x.clone(), light(1)?), (x.clone(), light(3)?)];
    ensure_law!(orders == want, "repair orders {orders:?}, want {want:?}");
    let again = s.take_repairs().await?;
    ensure_law!(again.is_empty(), "orders taken twice: {again:?}");
    let (open, count) = open_ids(s).await?;
    ensure_law!(open.is_empty() && count == 0, "open {open:?} ({count})");
    Ok(())
}

/// Each step of an alarm's life is found at its time: raised (the alarm's time), every
/// acknowledgement (a second one too), closed (with a recovery's why); ranges are half-open
/// and ordered by time; another alarm's steps are its own.
pub async fn alarm_events_give_each_step_at_its_time<S: LampStore + ?Sized>(s: &S) -> Outcome {
    use crate::AlarmEventKind as K;
    let x = id("L12", 0)?;
    let min = |m: i64| T0 + m * 60_000;
    let a = alarm(&x, 1, LampColour::Red, min(2))?;
    let b = alarm(&x, 2, LampColour::Green, min(3))?;
    s.record_alarm(&a).await?;
    s.record_held_alarm(&b, min(13)).await?;
    let ack = |by: &str, m: i64| Ack {
        by: by.into(),
        at_ms: min(m),
        note: None,
    };
    s.ack_alarm(&a.id(), &ack("ana", 4)).await?;
    s.ack_alarm(&a.id(), &ack("bo", 5)).await?;
    s.resolve_alarms(
        &x,
        Some(light(1)?),
        &|_| true,
        &closing(min(20)),
        "lamp reported ok",
    )
    .await?;
    s.close_alarms(&x, Some(light(2)?), &closing(min(20)), true)
        .await?;

    let steps = |from: i64, to: i64| async move {
        Ok::<_, anyhow::Error>(
            s.alarm_events(from, to)
                .await?
                .into_iter()
                .map(|e| (e.at_ms, e.alarm.id(), e.held_down, e.kind))
                .collect::<Vec<_>>(),
        )
    };
    let all = steps(T0, min(30)).await?;
    let want = vec![
        (min(2), a.id(), false, K::Raised),
        (min(3), b.id(), true, K::Raised),
        (min(4), a.id(), false, K::Acknowledged(ack("ana", 4))),
        (min(5), a.id(), false, K::Acknowledged(ack("bo", 5))),
        (
            min(20),
            a.id(),
            false,
            K::Closed {
                why: Some("lamp reported ok".into()),
            },
        ),
        (min(20), b.id(), true, K::Closed { why: None }),
    ];
    ensure_law!(all == want, "every step: {all:?}");
    let first = steps(T0, min(4)).await?;
    ensure_law!(first == want[..2], "[0, 4 min): {first:?}");
    let middle = steps(min(4), min(20)).await?;
    ensure_law!(middle == want[2..4], "[4, 20 min): {middle:?}");
    let none = steps(min(21), min(60)).await?;
    ensure_law!(none.is_empty(), "after: {none:?}");
    Ok(())
}
