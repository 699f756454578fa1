//! Ports: the narrow async traits the traffic functions need from the outside world.
//!
//! Each has an embedded adapter (`traffic-embedded`, on redb) and an AWS adapter (DynamoDB,
//! SNS). Handlers take ports as `&dyn Trait`, so the same handler code runs in Lambda, in the
//! local runner, in `traffic replay` and in tests. No storage or cloud type appears here.
//!
//! - the traits, a module each, re-exported here: [`state`], [`registry`], [`lamps`] (lamps and
//!   alarms, the publisher), [`results`] (results, result events), [`stats`], [`stream`],
//!   [`clock`], [`usage`];
//! - [`Ports`] ([`bundle`]): every port a function may need, as shared trait objects;
//! - [`pages`]: what one bounded read of a public listing returns ([`ResultPage`]);
//! - [`contract`] (feature `contract`): the port-contract suite, the same laws run against
//!   every adapter;
//! - [`source`]: the stream as the one event source mapping reads it ([`RecordSource`]) and
//!   where it keeps its positions ([`CheckpointStore`]).

pub mod archive;
pub mod bundle;
pub mod clock;
#[cfg(feature = "contract")]
pub mod contract;
pub mod lamps;
pub mod pages;
pub mod registry;
pub mod results;
pub mod source;
pub mod state;
pub mod stats;
pub mod stream;
pub mod usage;

pub use archive::{NoArchive, OutputArchive};
pub use bundle::Ports;
pub use clock::{Clock, ManualClock, SystemClock};
pub use lamps::{
    Ack, AlarmEvent, AlarmEventKind, AlarmPage, AlarmPublisher, AlarmQuery, AlarmRecord,
    AlarmSelect, Claim, CloseAlarms, Closing, DEFAULT_ALARM_RETENTION_MS, LampStore,
    alarm_events_of, sort_alarm_events,
};
pub use pages::{ResultPage, intersections_page_of, result_page_of};
pub use registry::{
    ChangedBy, ProposalUpdate, Registry, TIMING_HISTORY, TimingChange, TimingUpdate, Version,
    operator_edits_of,
};
pub use results::{NoResultEvents, ResultEvents, ResultStore};
pub use source::{
    CheckpointStore, MemoryCheckpoints, ReadBatch, ReadFrom, RecordSource, SourceRecord,
    SourceShards, StartingPosition,
};
pub use state::StateStore;
pub use stats::{Series, StatsSample, StatsStore};
pub use stream::StreamShards;
pub use usage::{NoUsage, Usage, UsageMeter};

/// An error from a port, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A conditional write found the stored state changed by someone else: reload and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The backend is unavailable or throttling: the same call may succeed later.
    #[error("temporarily unavailable: {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data that cannot be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PortError {
    /// Whether retrying the same work later may succeed (so a record should be retried, not
    /// skipped).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PortError::Conflict(_) | PortError::Unavailable { .. } | PortError::Backend { .. }
        )
    }

    /// A backend error with context.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;
