//! Kinesis sequence numbers, compared as the numbers they are.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A Kinesis sequence number: a decimal string of up to 128 digits, increasing within a shard.
///
/// It is longer than any machine integer, so it is kept as its digits and ordered by length,
/// then lexicographically (which is numeric order for digit strings without leading zeros).
#[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SequenceNumber(String);

impl Clone for SequenceNumber {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }

    /// Copies into the digits' buffer it has (the fold sets its last applied number once a
    /// record, without allocating).
    fn clone_from(&mut self, source: &Self) {
        self.0.clone_from(&source.0);
    }
}

/// A string that is not a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence number must be 1 to 128 decimal digits, got {0:?}")]
pub struct SequenceError(pub String);

impl SequenceNumber {
    /// Validates a sequence number.
    pub fn parse(s: &str) -> Result<Self, SequenceError> {
        let digits = s.trim_start_matches('0');
        let digits = if digits.is_empty() && !s.is_empty() {
            "0"
        } else {
            digits
        };
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceError(s.to_owned()));
        }
        Ok(Self(digits.to_owned()))
    }

    /// A sequence number from an integer (used by the in-process stream and in tests).
    pub fn from_u128(n: u128) -> Self {
        Self(n.to_string())
    }

    /// A sequence number from a 64-bit counter (the embedded log's).
    pub fn from_u64(n: u64) -> Self {
        Self(n.to_string())
    }

    /// The number as a 64-bit counter, when it fits (the embedded log's are such).
    pub fn to_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_numbers_are_greater_than_shorter_ones() {
        let a = SequenceNumber::parse("9").unwrap_or_else(|e| panic!("{e}"));
        let b = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a < b);
        assert_eq!(
            SequenceNumber::parse("007").ok(),
            SequenceNumber::parse("7").ok()
        );
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("").is_err());
        assert_eq!(SequenceNumber::from_u64(42).to_u64(), Some(42));
        assert_eq!(b.to_u64(), None);
    }
}
