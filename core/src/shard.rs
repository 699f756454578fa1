//! A stream shard's id: Kinesis's (`shardId-000000000000`), or the local log's, numbered the
//! same way. Opaque: compared, ordered and shown, never parsed.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

/// A shard's id.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(String);

impl ShardId {
    /// The shard named `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for ShardId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ShardId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for ShardId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl PartialEq<str> for ShardId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ShardId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
