//! Publishing recorded alarms exactly once where possible, at least once always.
//!
//! An alarm is recorded before it is published (`LampStore::record_alarm`), so a crash, or a
//! publisher failing past its retries, leaves it recorded and unpublished: *due*
//! (`LampStore::due_alarms`) until someone publishes it. Whoever publishes (the `fault` batch
//! that raised it, a later `fault` batch for an alarm whose hold-down ended, the merge's sweep)
//! first claims it (`LampStore::claim_publication`, a conditional write that one caller wins),
//! publishes, then marks it published; a failed publication releases the claim. Two sweeps, or
//! a sweep and a batch, therefore never page twice; only a caller that dies between its publish
//! and its mark lets the claim expire ([`CLAIM_MS`]) and the alarm be published again.

use traffic_core::AlarmId;
use traffic_core::lamps::Alarm;
use traffic_ports::{AlarmPublisher, AlarmRecord, Claim, LampStore, PortResult};

/// How long a claim holds before another caller may publish the alarm, ms: longer than a
/// publication with the SDK's retries takes, short enough that a page lost with its caller is
/// sent at the next sweep but one.
pub const CLAIM_MS: i64 = 2 * 60_000;

/// Publishes the recorded alarm `alarm_id` unless it is settled or someone else is publishing
/// it; `now_ms` is processing time (the claim's clock). Returns the alarm when this call
/// published it.
pub async fn publish_once(
    lamps: &dyn LampStore,
    publisher: &dyn AlarmPublisher,
    alarm_id: &AlarmId,
    now_ms: i64,
) -> PortResult<Option<Alarm>> {
    let until = now_ms.saturating_add(CLAIM_MS);
    let record = match lamps.claim_publication(alarm_id, now_ms, until).await? {
        Claim::Mine(record) => record,
        Claim::Taken | Claim::Settled => return Ok(None),
    };
    if let Err(e) = publisher.publish(&record.alarm).await {
        if let Err(release) = lamps.release_publication(alarm_id).await {
            tracing::warn!(alarm = %alarm_id, error = %release, "publication claim not released; it expires by itself");
        }
        return Err(e);
    }
    lamps.mark_published(alarm_id).await?;
    Ok(Some(record.alarm))
}

/// What [`publish_due`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DueReport {
    /// Alarms due that were read.
    pub due: usize,
    /// Ids of the alarms this call published.
    pub published: Vec<AlarmId>,
}

/// Publishes the alarms due by `due_by_ms` (event time) that `accept` takes, at most `limit`
/// read, soonest due first, each with [`publish_once`]; stops at the first error (a publisher
/// down is not asked again for every alarm: the next sweep tries again).
pub async fn publish_due(
    lamps: &dyn LampStore,
    publisher: &dyn AlarmPublisher,
    due_by_ms: i64,
    now_ms: i64,
    limit: usize,
    accept: &(dyn Fn(&AlarmRecord) -> bool + Send + Sync),
) -> PortResult<DueReport> {
    let due = lamps.due_alarms(due_by_ms, limit).await?;
    let mut report = DueReport {
        due: due.len(),
        ..DueReport::default()
    };
    for record in due.iter().filter(|r| accept(r)) {
        let id = record.alarm.id();
        if publish_once(lamps, publisher, &id, now_ms).await?.is_some() {
            tracing::info!(alarm = %id, held_down = record.held_down, "due alarm published");
            report.published.push(id);
        }
    }
    Ok(report)
}
