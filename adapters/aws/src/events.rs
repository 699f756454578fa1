//! [`ResultEvents`] on an EventBridge bus (`EVENT_BUS_NAME`): `PutEvents`, source
//! `traffic.merge`, the detail types and details of `traffic_core::events`.
//!
//! `PutEvents` takes at most [`MAX_ENTRIES`] entries and [`MAX_REQUEST_BYTES`] per call,
//! counted as EventBridge counts an entry ("Calculating PutEvents event entry size": the
//! UTF-8 bytes of source, detail type and detail; no time or resources are sent), so the
//! events are cut into batches within both ([`batches`]). An answer with `FailedEntryCount`
//! above zero names the failed entries; those (only those) are sent again with backoff, up to
//! [`MAX_TRIES`] times, then the call fails ([`put_all`]): the merge then redoes its run, so
//! an event may arrive twice but is never dropped.
//!
//! With no bus configured, publishing does nothing and says so once in the log.

use crate::error::port_error;
use crate::retry::pause;
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use traffic_core::events::{ResultEvent, SOURCE};
use traffic_ports::{PortError, PortResult, ResultEvents};

/// Most entries in one `PutEvents` call.
pub const MAX_ENTRIES: usize = 10;
/// Largest total entry size of one `PutEvents` call, bytes (256 KB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Tries of an entry EventBridge reported failed before the publish fails.
pub const MAX_TRIES: u32 = 5;

/// One event as `PutEvents` sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventEntry {
    /// `DetailType`.
    pub detail_type: String,
    /// `Detail`, a JSON object.
    pub detail: String,
}

impl EventEntry {
    /// The entry of a result event.
    pub fn of(e: &ResultEvent) -> PortResult<Self> {
        Ok(Self {
            detail_type: e.detail_type().to_owned(),
            detail: e
                .detail()
                .map_err(|err| PortError::backend("encoding a result event", err))?,
        })
    }

    /// Its size as EventBridge counts it against [`MAX_REQUEST_BYTES`].
    pub fn size(&self) -> usize {
        SOURCE.len() + self.detail_type.len() + self.detail.len()
    }
}

/// Consecutive ranges of entries (of these sizes) that each fit one `PutEvents` call: at most
/// [`MAX_ENTRIES`] entries and [`MAX_REQUEST_BYTES`]. An entry larger than a call can take is
/// an error (it names the entry): EventBridge would refuse it however it is sent.
pub fn batches(sizes: &[usize]) -> PortResult<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &s) in sizes.iter().enumerate() {
        if s > MAX_REQUEST_BYTES {
            return Err(PortError::backend(
                "publishing result events",
                format!("event {i} is {s} bytes, more than PutEvents takes ({MAX_REQUEST_BYTES})"),
            ));
        }
        if i > start && (i - start == MAX_ENTRIES || bytes + s > MAX_REQUEST_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    Ok(out)
}

/// What sending the entries took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutStats {
    /// `PutEvents` calls.
    pub calls: u64,
    /// Entries sent again after EventBridge reported them failed.
    pub retried: u64,
}

/// Sends every entry through `put` (one `PutEvents` call: for each entry it was given, `None`
/// when accepted or the error code when not), batched by [`batches`]; entries reported failed
/// are sent again, alone with the others that failed, up to [`MAX_TRIES`] times.
pub async fn put_all<F, Fut>(entries: &[EventEntry], mut put: F) -> PortResult<PutStats>
where
    F: FnMut(Vec<EventEntry>) -> Fut,
    Fut: std::future::Future<Output = PortResult<Vec<Option<String>>>>,
{
    let mut stats = PutStats::default();
    let sizes: Vec<usize> = entries.iter().map(EventEntry::size).collect();
    for range in batches(&sizes)? {
        let mut pending: Vec<EventEntry> = entries[range].to_vec();
        let mut attempt = 0;
        loop {
            stats.calls += 1;
            let answers = put(pending.clone()).await?;
            if answers.len() != pending.len() {
                return Err(PortError::backend(
                    "publishing result events",
                    format!(
                        "PutEvents answered {} entries for {}",
                        answers.len(),
                        pending.len()
                    ),
                ));
            }
            let mut codes = Vec::new();
            let failed: Vec<EventEntry> = pending
                .into_iter()
                .zip(answers)
                .filter_map(|(e, a)| a.map(|code| (e, code)))
                .map(|(e, code)| {
                    codes.push(code);
                    e
                })
                .collect();
            if failed.is_empty() {
                break;
            }
            attempt += 1;
            if attempt >= MAX_TRIES {
                return Err(PortError::Unavailable {
                    context: format!(
                        "publishing result events: {} entries still failed after {MAX_TRIES} tries",
                        failed.len()
                    ),
                    source: codes.join(", ").into(),
                });
            }
            tracing::warn!(failed = failed.len(), codes = %codes.join(","), "PutEvents entries failed: retrying them");
            stats.retried += failed.len() as u64;
            pause(attempt).await;
            pending = failed;
        }
    }
    Ok(stats)
}

/// Publishes result events to an EventBridge bus.
#[derive(Debug)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: Option<String>,
    warned: AtomicBool,
    calls: AtomicU64,
}

impl EventBridgePublisher {
    /// A publisher to the bus `bus` (a name or an ARN); `None`: publishing does nothing (and
    /// logs once that `EVENT_BUS_NAME` is not set).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: Option<String>) -> Self {
        Self {
            client,
            bus,
            warned: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        }
    }

    /// `PutEvents` calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn put_events(
        &self,
        bus: &str,
        batch: Vec<EventEntry>,
    ) -> PortResult<Vec<Option<String>>> {
        let mut req = self.client.put_events();
        for e in &batch {
            req = req.entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(SOURCE)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .build(),
            );
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let out = req
            .send()
            .await
            .map_err(|e| port_error(format!("PutEvents to {bus}"), e))?;
        if out.failed_entry_count() == 0 {
            return Ok(vec![None; batch.len()]);
        }
        Ok(out
            .entries()
            .iter()
            .map(|r| {
                r.error_code()
                    .map(|c| format!("{c}: {}", r.error_message().unwrap_or("")))
            })
            .collect())
    }
}

#[async_trait]
impl ResultEvents for EventBridgePublisher {
    async fn publish_events(&self, events: &[ResultEvent]) -> PortResult<()> {
        let Some(bus) = self.bus.as_deref() else {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "EVENT_BUS_NAME is not set: result events (windows closed, timings changed) are not published"
                );
            }
            return Ok(());
        };
        let entries = events
            .iter()
            .map(EventEntry::of)
            .collect::<PortResult<Vec<_>>>()?;
        let stats = put_all(&entries, |batch| self.put_events(bus, batch)).await?;
        tracing::info!(
            events = entries.len(),
            calls = stats.calls,
            retried = stats.retried,
            bus,
            "result events published"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn entry(n: usize) -> EventEntry {
        EventEntry {
            detail_type: "Window closed".into(),
            detail: "x".repeat(n),
        }
    }

    #[test]
    fn batches_hold_at_most_ten_entries_and_256_kb() -> anyhow::Result<()> {
        assert_eq!(batches(&[])?, Vec::<Range<usize>>::new());
        assert_eq!(batches(&[1_000; 25])?, vec![0..10, 10..20, 20..25]);
        let big = 100 * 1024;
        assert_eq!(batches(&[big, big, big, 10])?, vec![0..2, 2..4]);
        assert_eq!(batches(&[MAX_REQUEST_BYTES, 1])?, vec![0..1, 1..2]);
        assert!(batches(&[10, MAX_REQUEST_BYTES + 1]).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn entries_reported_failed_are_sent_again_and_only_they() -> anyhow::Result<()> {
        let entries: Vec<EventEntry> = (1..=12).map(entry).collect();
        let sent: Mutex<Vec<Vec<usize>>> = Mutex::new(Vec::new());
        let stats = put_all(&entries, |batch| {
            let lens: Vec<usize> = batch.iter().map(|e| e.detail.len()).collect();
            let first_try = !sent
                .lock()
                .map(|s| s.iter().flatten().any(|&l| l == 3))
                .unwrap_or(true);
            if let Ok(mut s) = sent.lock() {
                s.push(lens.clone());
            }
            // Entry 3 fails on its first try (EventBridge's throttling of one entry).
            let answers = lens
                .iter()
                .map(|&l| (l == 3 && first_try).then(|| "ThrottlingException".to_owned()))
                .collect();
            async move { Ok(answers) }
        })
        .await?;
        let sent = sent.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(
            sent,
            vec![(1..=10).collect::<Vec<_>>(), vec![3], vec![11, 12]]
        );
        assert_eq!(
            stats,
            PutStats {
                calls: 3,
                retried: 1
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_entry_that_keeps_failing_fails_the_publish() -> anyhow::Result<()> {
        let entries = vec![entry(5)];
        let r = put_all(&entries, |batch| {
            let answers = vec![Some("InternalFailure".to_owned()); batch.len()];
            async move { Ok(answers) }
        })
        .await;
        assert!(matches!(r, Err(PortError::Unavailable { .. })), "{r:?}");
        Ok(())
    }
}
