//! Exponential backoff with jitter, for retrying what DynamoDB and Kinesis leave unprocessed.

use std::time::Duration;

/// Tries of a batch call before unprocessed items are reported as an error (never dropped).
pub(crate) const MAX_TRIES: u32 = 10;

/// The wait before try `attempt + 1` (attempt counts from 0): 25 ms doubling to at most
/// `cap`, with "full jitter" (a uniform draw below the exponential value).
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let exp = Duration::from_millis(25u64.saturating_mul(1u64 << attempt.min(16)));
    let ceiling = exp.min(cap).as_millis() as u64;
    Duration::from_millis(ceiling / 2 + jitter(ceiling / 2 + 1))
}

/// A draw in `0..n` from the clock's nanoseconds (enough to spread retries apart).
fn jitter(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    // A multiplicative hash of the nanoseconds, so neighbouring calls draw apart.
    nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1)
}

/// Sleeps before the next try.
pub(crate) async fn pause(attempt: u32) {
    tokio::time::sleep(backoff(attempt, Duration::from_secs(2))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0, Duration::from_secs(2)) <= Duration::from_millis(25));
        assert!(backoff(3, Duration::from_secs(2)) >= Duration::from_millis(100));
        assert!(backoff(30, Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}
