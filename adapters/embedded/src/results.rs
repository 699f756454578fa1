//! [`ResultStore`] on the `results` (postcard, keyed by window) and `network` tables.

use crate::codec::{decode, encode};
use crate::{EmbeddedStore, NETWORK, NETWORK_KEY, RESULTS};
use async_trait::async_trait;
use redb::ReadableTable;
use serde::Serialize;
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{PortResult, ResultPage, ResultStore};

/// A result as stored: postcard, so that floats come back bit for bit. The key is written
/// before the result (the layout of earlier versions, so existing stores read back).
#[derive(Serialize, serde::Deserialize)]
struct StoredResult {
    key: WindowKey,
    result: WindowResult,
}

#[async_trait]
impl ResultStore for EmbeddedStore {
    async fn put_results(&self, results: &[WindowResult]) -> PortResult<()> {
        let ctx = "storing results";
        self.write_table(RESULTS, ctx, |t| {
            for result in results {
                let key = result.window;
                let stored = StoredResult {
                    key,
                    result: result.clone(),
                };
                r!(
                    t.insert((key.length.ms(), key.start_ms), encode(&stored)?.as_slice()),
                    ctx
                )?;
            }
            Ok(())
        })
    }

    async fn results(&self) -> PortResult<Vec<WindowResult>> {
        Ok(self
            .stored_results()?
            .into_iter()
            .map(|s| s.result)
            .collect())
    }

    async fn closed_windows_from(
        &self,
        length: WindowLength,
        from_ms: i64,
    ) -> PortResult<Vec<WindowKey>> {
        let ctx = "reading closed windows";
        let len = length.ms();
        let mut out = Vec::new();
        for s in self.results_in(ctx, (len, from_ms)..=(len, i64::MAX), usize::MAX, false)? {
            if s.result.closed {
                out.push(s.key);
            }
        }
        Ok(out)
    }

    async fn recent_results(
        &self,
        length: WindowLength,
        limit: usize,
    ) -> PortResult<Vec<WindowResult>> {
        let len = length.ms();
        Ok(self
            .results_in(
                "reading results",
                (len, i64::MIN)..=(len, i64::MAX),
                limit,
                true,
            )?
            .into_iter()
            .map(|s| s.result)
            .collect())
    }

    async fn results_page(
        &self,
        length: WindowLength,
        before_ms: Option<i64>,
        limit: usize,
    ) -> PortResult<ResultPage> {
        let len = length.ms();
        let last = match before_ms {
            None => i64::MAX,
            Some(i64::MIN) => return Ok(ResultPage::default()),
            Some(b) => b - 1,
        };
        let read = self
            .results_in(
                "reading results",
                (len, i64::MIN)..=(len, last),
                limit.saturating_add(1),
                true,
            )?
            .into_iter()
            .map(|s| s.result)
            .collect();
        Ok(traffic_ports::result_page_of(read, limit))
    }

    async fn put_network(&self, state: &NetworkState) -> PortResult<()> {
        let ctx = "storing the network state";
        self.write_table(NETWORK, ctx, |t| {
            r!(t.insert(NETWORK_KEY, encode(state)?.as_slice()), ctx)?;
            Ok(())
        })
    }

    async fn network(&self) -> PortResult<Option<NetworkState>> {
        let ctx = "reading the network state";
        let t = self.read_table(NETWORK, ctx)?;
        match r!(t.get(NETWORK_KEY), ctx)? {
            Some(v) => Ok(Some(decode(v.value(), "network state")?)),
            None => Ok(None),
        }
    }
}

impl EmbeddedStore {
    /// Up to `limit` stored results with keys in `range`, in key order or newest first.
    fn results_in(
        &self,
        ctx: &str,
        range: std::ops::RangeInclusive<(i64, i64)>,
        limit: usize,
        newest_first: bool,
    ) -> PortResult<Vec<StoredResult>> {
        let t = self.read_table(RESULTS, ctx)?;
        let entries = r!(t.range(range), ctx)?;
        let mut out = Vec::new();
        let mut keep = |e: Result<_, redb::StorageError>| -> PortResult<()> {
            let (_, v): (_, redb::AccessGuard<'_, &[u8]>) = r!(e, ctx)?;
            out.push(decode(v.value(), "result")?);
            Ok(())
        };
        if newest_first {
            for e in entries.rev().take(limit) {
                keep(e)?;
            }
        } else {
            for e in entries.take(limit) {
                keep(e)?;
            }
        }
        Ok(out)
    }

    fn stored_results(&self) -> PortResult<Vec<StoredResult>> {
        let ctx = "reading results";
        let t = self.read_table(RESULTS, ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, v) = r!(e, ctx)?;
            let (len, _) = k.value();
            let s: StoredResult = decode(v.value(), "result")?;
            debug_assert_eq!(WindowLength::from_ms(len), Some(s.key.length));
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_are_read_by_length_newest_first_and_closed_from_a_start() -> anyhow::Result<()>
    {
        let (_dir, s) = crate::temp_store()?;
        let len = |ms| WindowLength::from_ms(ms).unwrap_or_else(|| panic!("length"));
        let (fifteen, hour) = (len(900_000), len(3_600_000));
        let t0 = 1_767_600_000_000;
        let keys = [
            fifteen.window_of(t0),
            fifteen.window_of(t0 + 900_000),
            fifteen.window_of(t0 + 1_800_000),
            hour.window_of(t0),
        ];
        let result = |k: WindowKey, closed| traffic_core::rollup::Rollup::new(k).finish(closed, 10);
        s.put_results(&[
            result(keys[0], true),
            result(keys[1], true),
            result(keys[2], false),
            result(keys[3], false),
        ])
        .await?;
        let starts = |rs: Vec<WindowResult>| rs.into_iter().map(|r| r.window).collect::<Vec<_>>();
        assert_eq!(
            starts(s.recent_results(fifteen, 2).await?),
            [keys[2], keys[1]]
        );
        assert_eq!(starts(s.recent_results(hour, 9).await?), [keys[3]]);
        assert!(s.recent_results(fifteen, 0).await?.is_empty());
        // Pages: newest first, continuing before the last start given, the last without one.
        let page = s.results_page(fifteen, None, 2).await?;
        assert_eq!(starts(page.windows), [keys[2], keys[1]]);
        assert_eq!(page.next, Some(keys[1].start_ms));
        let page = s.results_page(fifteen, page.next, 2).await?;
        assert_eq!((starts(page.windows), page.next), (vec![keys[0]], None));
        assert_eq!(
            s.results_page(hour, Some(i64::MIN), 2).await?,
            ResultPage::default()
        );
        assert_eq!(
            s.closed_windows_from(fifteen, keys[1].start_ms).await?,
            [keys[1]]
        );
        assert_eq!(
            s.closed_windows_from(fifteen, i64::MIN).await?,
            [keys[0], keys[1]]
        );
        assert!(s.closed_windows_from(hour, i64::MIN).await?.is_empty());
        Ok(())
    }
}
