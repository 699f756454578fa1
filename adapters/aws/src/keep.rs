//! Keeping the state the merge still needs: DynamoDB's TTL deletes an item a retention after
//! it was written, whether or not the merge has compacted it, so state that is read again is
//! kept.
//!
//! Every state item (delta, pane index entry, rollup) expires `retention` (the longest window
//! plus two days) after its write. Normally the merge compacts a pane within minutes of its
//! end and never reads its deltas again. After a stall (a shard holding the watermark, a merge
//! that failed for days) the deltas of panes not yet compacted are still listed and read by
//! every run; the store then rewrites those it reads within half a retention of their expiry
//! with a new one ([`StoreOptions::refreshed_expiry`]). So what an uncompacted window needs
//! never expires while a merge runs at least once every half retention (36 hours by default).
//! Costs: one rewrite of each stalled item every half retention, nothing otherwise.

use crate::StoreOptions;

impl StoreOptions {
    /// The new expiry (epoch s) of an item read at `now_ms` (processing time) that expires at
    /// `expires_at_s`, when it must be kept: less than half a retention left. `None` when it
    /// has longer, and when it expired more than a retention ago (the clock that wrote it was
    /// not this one, such as a simulation's, and DynamoDB has deleted or will delete it
    /// anyway).
    pub fn refreshed_expiry(&self, expires_at_s: i64, now_ms: i64) -> Option<i64> {
        let left_ms = expires_at_s.saturating_mul(1000).saturating_sub(now_ms);
        (left_ms < self.retention_ms / 2 && left_ms > -self.retention_ms)
            .then(|| self.expires_at(now_ms))
    }
}

/// The processing time the store keeps items by (the wall clock: DynamoDB's TTL runs on it).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn an_item_read_within_half_a_retention_of_its_expiry_gets_a_new_one() {
        let o = StoreOptions::default();
        assert_eq!(o.retention_ms, 3 * DAY);
        let written = 1_767_600_000_000;
        let expires = o.expires_at(written);
        // Read while the merge keeps up: nothing to do.
        assert_eq!(o.refreshed_expiry(expires, written + DAY), None);
        // Read after a stall of more than a day and a half: kept for a whole retention more.
        let later = written + 3 * DAY / 2 + 60_000;
        assert_eq!(
            o.refreshed_expiry(expires, later),
            Some((later + 3 * DAY) / 1000)
        );
        // Past its expiry (the merge stopped for longer), but not yet deleted: kept.
        assert_eq!(
            o.refreshed_expiry(expires, written + 4 * DAY),
            Some((written + 7 * DAY) / 1000)
        );
        // Written by a clock far behind this one (a simulation): left alone.
        assert_eq!(o.refreshed_expiry(expires, written + 300 * DAY), None);
    }

    proptest::proptest! {
        #[test]
        fn an_item_read_at_least_every_half_retention_never_expires(
            gaps in proptest::collection::vec(0i64..3 * DAY / 2, 1..40),
        ) {
            // Read at the given gaps after its write (the merge runs at least every half
            // retention): at every read it has not expired.
            let o = StoreOptions::default();
            let mut now = 1_767_600_000_000;
            let mut expires = o.expires_at(now);
            for g in gaps {
                now += g;
                proptest::prop_assert!(expires * 1000 > now, "expired at {now}");
                if let Some(e) = o.refreshed_expiry(expires, now) {
                    proptest::prop_assert!(e > expires);
                    expires = e;
                }
            }
        }
    }
}
