//! [`StatsStore`] on the `stats` table.

use crate::codec::{decode, encode};
use crate::{EmbeddedStore, STATS};
use async_trait::async_trait;
use redb::ReadableTable;
use traffic_ports::{PortResult, StatsSample, StatsStore};

#[async_trait]
impl StatsStore for EmbeddedStore {
    async fn add_stats(&self, sample: &StatsSample) -> PortResult<()> {
        let ctx = "recording statistics";
        self.write_table(STATS, ctx, |t| {
            let function = sample.function.to_string();
            let key = (sample.minute_ms, function.as_str());
            let mut total: StatsSample = match r!(t.get(key), ctx)? {
                Some(v) => decode(v.value(), "statistics")?,
                None => StatsSample::new(sample.function, sample.minute_ms),
            };
            total.add(sample);
            r!(t.insert(key, encode(&total)?.as_slice()), ctx)?;
            Ok(())
        })
    }

    async fn stats(&self, since_ms: i64) -> PortResult<Vec<StatsSample>> {
        let ctx = "reading statistics";
        let t = self.read_table(STATS, ctx)?;
        let mut out = Vec::new();
        for e in r!(t.range((since_ms, "")..), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "statistics")?);
        }
        Ok(out)
    }
}
