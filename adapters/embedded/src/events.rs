//! [`ResultEvents`] into the `result_events` table: the local stand-in for the EventBridge bus.
//!
//! Events are appended in publishing order under a sequence number (publishing one twice
//! keeps both, as a bus delivers both); the newest [`KEPT_EVENTS`] are kept. Nothing shows
//! them but [`EmbeddedStore::result_events`] (tests, and whoever opens the store).

use crate::codec::{decode, encode};
use crate::{EmbeddedStore, RESULT_EVENTS};
use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata};
use traffic_core::events::ResultEvent;
use traffic_ports::{PortResult, ResultEvents};

/// Events kept: about a year of 15-minute windows and their retimings, a few MB.
pub const KEPT_EVENTS: u64 = 100_000;

impl EmbeddedStore {
    /// The result events published so far (the newest [`KEPT_EVENTS`]), oldest first.
    pub fn result_events(&self) -> PortResult<Vec<ResultEvent>> {
        self.read_all(RESULT_EVENTS, "reading result events", |v| {
            decode(v, "result event")
        })
    }
}

#[async_trait]
impl ResultEvents for EmbeddedStore {
    async fn publish_events(&self, events: &[ResultEvent]) -> PortResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let ctx = "publishing result events";
        self.write_table(RESULT_EVENTS, ctx, |t| {
            let next = match r!(t.last(), ctx)? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            for (seq, e) in (next..).zip(events) {
                r!(t.insert(seq, encode(e)?.as_slice()), ctx)?;
            }
            let excess = r!(t.len(), ctx)?.saturating_sub(KEPT_EVENTS);
            for _ in 0..excess {
                r!(t.pop_first(), ctx)?;
            }
            Ok(())
        })?;
        for e in events {
            tracing::info!(detail_type = e.detail_type(), window = %e.window(), "result event");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::events::TimingsChanged;

    #[tokio::test]
    async fn published_events_read_back_in_order_and_a_repeat_is_kept() -> anyhow::Result<()> {
        let (_dir, store) = crate::temp_store()?;
        let w: traffic_core::WindowKey = "15m@2026-01-05T08:00:00Z".parse()?;
        let a = ResultEvent::TimingsChanged(TimingsChanged::new(w, 3, 0));
        let b = ResultEvent::TimingsChanged(TimingsChanged::new(w, 2, 1));
        store.publish_events(&[a.clone(), b.clone()]).await?;
        store.publish_events(std::slice::from_ref(&a)).await?;
        assert_eq!(store.result_events()?, vec![a.clone(), b, a]);
        Ok(())
    }
}
