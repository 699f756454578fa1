//! [`AlarmPublisher`] into the `published_alarms` table: the local stand-in for SNS.

use crate::codec::{from_json, to_json};
use crate::{EmbeddedStore, OUTBOX};
use async_trait::async_trait;

use traffic_core::lamps::Alarm;
use traffic_ports::{AlarmPublisher, PortResult};

impl EmbeddedStore {
    /// Alarms handed to the embedded publisher, in id order (what SNS would have sent).
    pub fn published_alarms(&self) -> PortResult<Vec<Alarm>> {
        self.read_all(OUTBOX, "reading published alarms", |v| {
            from_json(v, "published alarm")
        })
    }
}

#[async_trait]
impl AlarmPublisher for EmbeddedStore {
    /// Stores the alarm in the `published_alarms` table (the local stand-in for SNS) and logs
    /// it; publishing the same alarm twice keeps one copy.
    async fn publish(&self, alarm: &Alarm) -> PortResult<()> {
        let ctx = "publishing an alarm";
        self.write_table(OUTBOX, ctx, |t| {
            r!(
                t.insert(alarm.id().to_string().as_str(), to_json(alarm)?.as_slice()),
                ctx
            )?;
            Ok(())
        })?;
        tracing::warn!(
            intersection = %alarm.intersection_id,
            light = %alarm.light,
            lamp = alarm.lamp.as_str(),
            silent = alarm.silent.map(|s| s.as_str()),
            "{}",
            alarm.short_text()
        );
        Ok(())
    }
}
