//! Ports: the narrow async traits the traffic functions need from the outside world.
//!
//! Each has an embedded adapter (`traffic-embedded`, on redb) and an AWS adapter (DynamoDB,
//! SNS). Handlers take ports as `&dyn Trait`, so the same handler code runs in Lambda, in the
//! local runner, in `traffic replay` and in tests. No storage or cloud type appears here.
//!
//! - the traits below: state, registry, lamps and alarms, results, statistics, publisher, result
//!   events;
//! - [`Ports`] ([`bundle`]): every port a function may need, as shared trait objects;
//! - [`pages`]: what one bounded read of a public listing returns ([`ResultPage`]);
//! - [`source`]: the stream as the one event source mapping reads it ([`RecordSource`]) and
//!   where it keeps its positions ([`CheckpointStore`]).

pub mod bundle;
pub mod pages;
pub mod source;

pub use bundle::Ports;
pub use pages::{ResultPage, intersections_page_of, result_page_of};
pub use source::{
    CheckpointStore, MemoryCheckpoints, ReadBatch, RecordSource, SourceRecord, SourceShards,
    StartingPosition,
};

use async_trait::async_trait;
use std::collections::BTreeMap;
use traffic_core::city::{Intersection, Phase};
use traffic_core::control::Proposal;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::events::ResultEvent;
use traffic_core::lamps::{Alarm, LampSummary, LightLamps};
use traffic_core::lineage::ShardInfo;
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::Rollup;
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_core::{IntersectionId, LampColour, LightIndex};

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

/// The state `ingest` and `merge` keep (`docs/state.md`): per-shard metas, the deltas they
/// list, the merge's marks and progress, rollups of windows, and the merge's lease.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// A shard's meta and the merge's marks, read consistently.
    async fn load_shard(&self, shard_id: &str) -> PortResult<(Option<ShardMeta>, MergeMarks)>;

    /// Writes a commit: its deltas first, then its meta, the meta only if the stored meta's
    /// `applied_through` is still `commit.expected`, its commit count still
    /// `commit.expected_commits` and the merge's closed mark still `commit.closed_ms`;
    /// otherwise [`PortError::Conflict`] (the deltas already written stay, unlisted, until
    /// they expire). Items expire a retention after `now_ms`.
    async fn commit(&self, commit: &Commit, now_ms: i64) -> PortResult<()>;

    /// Writes a redrive's commit as [`StateStore::commit`] does, with its mark in the same
    /// atomic write as the meta; [`PortError::Conflict`] also when the mark exists already.
    async fn commit_redrive(
        &self,
        commit: &Commit,
        mark: &RedriveMark,
        now_ms: i64,
    ) -> PortResult<()>;

    /// The mark of failure record `id` of `shard_id`, if it was redriven (and has not expired).
    async fn redrive_mark(&self, shard_id: &str, id: u64) -> PortResult<Option<RedriveMark>>;

    /// The metas of all shards.
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>>;

    /// Starts of the panes with deltas, from `from_ms` on (inclusive), ascending.
    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>>;

    /// Those of `keys` (all of one pane) that exist, in the order of `keys`; `consistent`
    /// asks for a strongly consistent read (what a compaction needs).
    async fn deltas(&self, keys: &[DeltaKey], consistent: bool) -> PortResult<Vec<Delta>>;

    /// The stored rollups of windows of `length` starting in `from_ms..=to_ms`.
    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>>;

    /// Stores rollups, each replacing the one of its window. Items expire a retention after
    /// `now_ms`.
    async fn put_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()>;

    /// The merge's state (marks and idle bookkeeping), read consistently.
    async fn merge_state(&self) -> PortResult<MergeState>;

    /// Moves the closed mark forward to `closed_ms` (never back). The merge does it before it
    /// reads the panes it finalises: every commit is conditional on the mark.
    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()>;

    /// Records the merge's progress: its whole state (the compacted mark, when each caught-up
    /// shard was first seen so, what compaction has dropped so far). Only the merge writes it,
    /// under its lease; its closed mark is the one [`StateStore::advance_closed_mark`] set.
    async fn put_merge_progress(&self, state: &MergeState) -> PortResult<()>;

    /// Takes the merge's lease for `holder` until `until_ms`, if nobody else holds an
    /// unexpired one at `now_ms`; `false` when someone does.
    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool>;

    /// Releases the lease if `holder` still holds it.
    async fn release_lease(&self, holder: &str) -> PortResult<()>;

    /// Drops what the merge no longer needs: the deltas of panes starting before
    /// `panes_before_ms` and the rollups of windows ending at or before `rollups_through_ms`.
    /// A store whose items expire by themselves (DynamoDB's TTL) may leave them to that.
    async fn forget(&self, panes_before_ms: i64, rollups_through_ms: i64) -> PortResult<()>;
}

/// The intersection registry: intersections, their lights, phases and timings.
#[async_trait]
pub trait Registry: Send + Sync {
    /// All intersections, by id.
    async fn intersections(&self) -> PortResult<Vec<Intersection>>;

    /// A number that changes whenever an intersection is created, replaced or deleted (not
    /// when it is only retimed or given a proposal), read for much less than
    /// [`Registry::intersections`]: a cache of the intersections and their lights that saw
    /// this number when it loaded need not load again while it is the same. `None` (the default): the store has none, so a cache
    /// must reload to see a change.
    async fn directory_generation(&self) -> PortResult<Option<u64>> {
        Ok(None)
    }

    /// Up to `limit` intersections in id order, after `after` (from the first when `None`),
    /// and the id to continue after when more follow: the public listing. One bounded read:
    /// a store may return fewer than `limit` (its own page filled) with an id to continue
    /// after, and may read eventually consistently (a write of the last second may be
    /// missing).
    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)>;

    /// One intersection.
    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>>;

    /// Creates an intersection; [`PortError::AlreadyExists`] if the id is taken.
    async fn create_intersection(&self, x: &Intersection) -> PortResult<()>;

    /// Creates or replaces an intersection.
    async fn put_intersection(&self, x: &Intersection) -> PortResult<()>;

    /// Deletes an intersection; `false` if there was none.
    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool>;

    /// One intersection and its version: an opaque string that changes whenever the stored
    /// intersection does (an operator's edit, a retiming). The API's `ETag`.
    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, String)>>;

    /// Replaces an intersection if its stored version is still `expected`, atomically; returns
    /// the new version. [`PortError::Conflict`] if it changed, [`PortError::NotFound`] if it
    /// is gone.
    async fn replace_intersection_if(&self, x: &Intersection, expected: &str)
    -> PortResult<String>;

    /// Deletes an intersection if its stored version is still `expected`, atomically;
    /// [`PortError::Conflict`] if it changed, [`PortError::NotFound`] if it is gone.
    async fn delete_intersection_if(&self, id: &IntersectionId, expected: &str) -> PortResult<()>;

    /// Every intersection with its version (see [`Registry::intersection_versioned`]), by id:
    /// what the merge retimes from.
    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, String)>>;

    /// Sets new timings (the phases' green and red) of intersections and their plans, noting
    /// the window they were computed from, each only if the intersection is still at the version the timings
    /// were computed from: an operator's edit (or a deletion) in between wins, and the
    /// intersection is returned among the skipped ones, to be retimed by a later run. Each
    /// intersection's new timings and their history entry are one atomic change: a failure
    /// leaves both or neither. An intersection whose write still fails transiently after the
    /// store's retries (throttled, an internal error) is skipped too, with a warning, and
    /// keeps its timings until a later run.
    async fn set_timings(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>>;

    /// Records Webster's proposals beside the plans of intersections under manual control
    /// (their `proposal`, nothing else), each only if the intersection is still at the version
    /// the proposal was computed from, like [`Registry::set_timings`]; returns the skipped ones.
    /// The version changes; the [`Registry::directory_generation`] does not (a proposal
    /// changes no light or id).
    async fn set_proposals(&self, proposals: &[ProposalUpdate]) -> PortResult<Vec<IntersectionId>>;

    /// The timings an intersection has had, oldest first (each retiming appends one, and so
    /// does each operator's edit of the phases; the adapters keep at least the last
    /// [`TIMING_HISTORY`]).
    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>>;

    /// Replaces an intersection as [`Registry::replace_intersection_if`] does and appends
    /// `change` (an operator's edit of its timings) to its history, as one atomic change: both
    /// land or neither does, so no edit of the timings is ever missing from the history.
    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &str,
        change: &TimingChange,
    ) -> PortResult<String>;

    /// Appends a change that was not a retiming (an operator's edit of the phases) to the
    /// intersection's history, under [`TimingChange::history_key`].
    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()>;
}

/// New timings for one intersection, computed from it at `expected_version`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimingUpdate {
    /// The intersection.
    pub id: IntersectionId,
    /// Its phases with their new green and red times.
    pub phases: Vec<Phase>,
    /// The plan for actuated controllers drawn from them (`traffic_core::plan`), stored with
    /// them as the intersection's `plan`; `None`: stored without one (readers draw it).
    pub plan: Option<traffic_core::plan::Plan>,
    /// The version the timings were computed from.
    pub expected_version: String,
}

/// Webster's proposal for one intersection under manual control, computed from it at
/// `expected_version`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProposalUpdate {
    /// The intersection.
    pub id: IntersectionId,
    /// The proposal.
    pub proposal: Proposal,
    /// The version the proposal was computed from.
    pub expected_version: String,
}

/// Retimings kept per intersection: a day of 15-minute windows.
pub const TIMING_HISTORY: usize = 96;

/// Who or what changed an intersection's timings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangedBy {
    /// The merge's retiming (Webster, within the limits). Entries from before `by` existed
    /// read as this: only retimings were recorded then.
    #[default]
    Retiming,
    /// An operator's edit of the phases through the API.
    Operator,
}

impl ChangedBy {
    /// Its name in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangedBy::Retiming => "retiming",
            ChangedBy::Operator => "operator",
        }
    }

    fn is_retiming(&self) -> bool {
        *self == ChangedBy::Retiming
    }
}

/// One change of an intersection's timings. A retiming's entry is stored as before `by`
/// existed (`by` is left out when it is `retiming`), so it costs no more to write.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimingChange {
    /// A retiming: the window the timings were computed from (JSON:
    /// `15m@2026-01-05T08:15:00Z`). Any other change: the control window before the one it
    /// was made in, whose retiming it follows (it orders the history).
    #[serde(with = "traffic_core::window::key_as_text")]
    pub from: WindowKey,
    /// The phases with their new green and red times.
    pub phases: Vec<Phase>,
    /// Who or what made the change.
    #[serde(default, skip_serializing_if = "ChangedBy::is_retiming")]
    pub by: ChangedBy,
    /// When it was made (RFC 3339), for changes other than retimings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The operator's identity, when the request carried one (a JWT's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl TimingChange {
    /// The retiming computed from window `from`.
    pub fn retiming(from: WindowKey, phases: Vec<Phase>) -> Self {
        Self {
            from,
            phases,
            by: ChangedBy::Retiming,
            at: None,
            operator: None,
        }
    }

    /// An operator's edit at `at_ms`, windows of `control` being the retiming rounds: it
    /// follows the retiming from the window before the one `at_ms` falls in.
    pub fn by_operator(
        control: WindowLength,
        at_ms: i64,
        operator: Option<String>,
        phases: Vec<Phase>,
    ) -> Self {
        let current = control.window_of(at_ms);
        Self {
            from: control.window_of(current.start_ms.saturating_sub(1)),
            phases,
            by: ChangedBy::Operator,
            at: Some(traffic_core::time::format_rfc3339_ms(at_ms)),
            operator,
        }
    }

    /// Its key in the history, which sorts as the changes happened: a retiming's window
    /// (`15m@2026-01-05T08:15:00Z`), or that window followed by `#operator@<at>` (after the
    /// retiming it follows, before the next one).
    pub fn history_key(&self) -> String {
        match self.by {
            ChangedBy::Retiming => self.from.to_string(),
            ChangedBy::Operator => format!(
                "{}#operator@{}",
                self.from,
                self.at.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A stored alarm and what became of it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlarmRecord {
    /// The alarm.
    pub alarm: Alarm,
    /// Whether it has been handed to the publisher.
    pub published: bool,
    /// When it was closed (RFC 3339): an operator repaired the lamp, or the intersection or
    /// light was deleted. `None` while it is open.
    #[serde(default)]
    pub repaired_at: Option<String>,
    /// Who acknowledged it, when, and why, if anyone did.
    #[serde(default)]
    pub ack: Option<Ack>,
    /// Recorded but not published: the same lamp's previous alarm was published less than
    /// the hold-down before (a lamp that flaps).
    #[serde(default)]
    pub held_down: bool,
    /// Why it was resolved, when a recovery closed it ([`LampStore::resolve_alarms`]: the
    /// lamp reported ok again, the silent light reported); `None` while open, and for alarms
    /// closed by a repair or a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_why: Option<String>,
    /// For an alarm held down, when its hold-down ends (event time, epoch ms): if it is still
    /// open then, it is published ([`LampStore::due_alarms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until_ms: Option<i64>,
}

impl AlarmRecord {
    /// A new record of `alarm`, unpublished and open; held down until `held_until_ms` if given.
    pub fn new(alarm: &Alarm, held_until_ms: Option<i64>) -> Self {
        Self {
            alarm: alarm.clone(),
            published: false,
            repaired_at: None,
            ack: None,
            held_down: held_until_ms.is_some(),
            closed_why: None,
            held_until_ms,
        }
    }

    /// From when its publication is due, event time: at once (its own time), or when its
    /// hold-down ends.
    pub fn due_ms(&self) -> i64 {
        self.held_until_ms.unwrap_or(self.alarm.ts_ms)
    }

    /// Whether nothing is left to publish: published, or held down and closed before its
    /// hold-down ended (a flap, never paged). Any other alarm is published at least once, even
    /// one closed since it was recorded.
    pub fn publication_settled(&self) -> bool {
        self.published || (self.held_down && self.repaired_at.is_some())
    }
}

/// What [`LampStore::claim_publication`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// The caller holds the claim until the time it gave: it publishes, then marks the alarm
    /// published ([`LampStore::mark_published`]) or releases the claim
    /// ([`LampStore::release_publication`]).
    Mine(Box<AlarmRecord>),
    /// Another caller holds an unexpired claim: it publishes.
    Taken,
    /// Nothing to publish ([`AlarmRecord::publication_settled`], or no such alarm); it left the
    /// alarms due.
    Settled,
}

/// An operator's acknowledgement of an alarm: they have seen it and someone is on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    /// Who (the operator's name, or the token's subject).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// What they noted, if anything.
    #[serde(default)]
    pub note: Option<String>,
}

/// The parts of a lamp alarm's id (`<intersection>#<light>#<lamp>#<ts_ms>`), if it is one
/// (a sensor-silent alarm's id, `...#silent#<ts_ms>`, is not).
pub fn parse_alarm_id(alarm_id: &str) -> Option<(IntersectionId, LightIndex, LampColour, i64)> {
    let mut parts = alarm_id.rsplitn(4, '#');
    let ts = alarm_ts_of_id(alarm_id)?;
    parts.next()?;
    let lamp = match parts.next()? {
        "red" => LampColour::Red,
        "yellow" => LampColour::Yellow,
        "green" => LampColour::Green,
        _ => return None,
    };
    let light = LightIndex::new(parts.next()?.parse().ok()?).ok()?;
    let id = IntersectionId::parse(parts.next()?).ok()?;
    Some((id, light, lamp, ts))
}

/// The event time of an alarm from its id (`<intersection>#<light>#<lamp>#<ts_ms>`: the time
/// is the last part), which orders the alarm index; `None` for a string that is no alarm id.
pub fn alarm_ts_of_id(alarm_id: &str) -> Option<i64> {
    let (head, ts) = alarm_id.rsplit_once('#')?;
    if head.is_empty() || ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ts.parse().ok()
}

/// Which of a light's open alarms [`LampStore::resolve_alarms`] closes, by alarm id.
pub type AlarmSelect<'s> = dyn for<'a> Fn(&'a str) -> bool + Send + Sync + 's;

/// How a closing is recorded: when, and when the closed alarm leaves the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing {
    /// When (RFC 3339), stored as the record's `repaired_at`.
    pub at: String,
    /// When the closed alarm expires from the log, epoch ms (DynamoDB's TTL deletes it; the
    /// embedded store deletes it at its next alarm write after that time). `None`: kept.
    pub expires_at_ms: Option<i64>,
}

impl Closing {
    /// Closed at `at_ms`, expiring `retention_ms` later.
    pub fn at(at_ms: i64, retention_ms: i64) -> Self {
        Self {
            at: traffic_core::time::format_rfc3339_ms(at_ms),
            expires_at_ms: Some(at_ms.saturating_add(retention_ms)),
        }
    }
}

/// How long a closed alarm stays in the log by default: 90 days.
pub const DEFAULT_ALARM_RETENTION_MS: i64 = 90 * 86_400_000;

/// One page of `/api/alarms`: which alarms, how many, and where to continue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmQuery {
    /// Only open alarms (read from the open view), or the whole log.
    pub open_only: bool,
    /// At most this many alarms.
    pub limit: usize,
    /// Continue after this alarm id (the previous page's last), towards older alarms.
    pub after: Option<String>,
}

/// What [`LampStore::alarm_page`] read: exactly the alarms it returns, and the open count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmPage {
    /// The alarms, newest first.
    pub alarms: Vec<AlarmRecord>,
    /// The id to pass as [`AlarmQuery::after`] for the next page, when the page was full
    /// (the next page may then be empty, as with DynamoDB's `LastEvaluatedKey`).
    pub next: Option<String>,
    /// Open alarms now (a counter, not a count of the log).
    pub open: u64,
}

/// Lamp states per light, and the alarms: a time-ordered log, a view of the open ones, and
/// the open ones per light (so closing them reads nothing else).
#[async_trait]
pub trait LampStore: Send + Sync {
    /// The states of the given lights (default, all ok, for lights never seen).
    async fn lamp_states(
        &self,
        lights: &[(IntersectionId, LightIndex)],
    ) -> PortResult<BTreeMap<(IntersectionId, LightIndex), LightLamps>>;

    /// What the store knows of the lamps of every intersection whose stored states are not
    /// all ok, without reading their items: the lamps not ok of each (exact), or `Unknown`
    /// while they are being written; an intersection left out is all ok. `None` when the store
    /// keeps no summaries (every state must then be read); `fault` reads the states of only
    /// the intersections whose readings may change them
    /// (`traffic_core::lamps::intersections_to_read`).
    async fn lamp_summaries(&self) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
        Ok(None)
    }

    /// As [`LampStore::lamp_summaries`], of at least the intersections `ids` (a store whose
    /// summaries are split may read only the parts that hold them); the default reads them all.
    async fn lamp_summaries_for(
        &self,
        ids: &std::collections::BTreeSet<IntersectionId>,
    ) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
        let _ = ids;
        self.lamp_summaries().await
    }

    /// Stores new lamp states (and keeps [`LampStore::lamp_summaries`] true: an intersection
    /// is marked unknown before its states are written, and summarised, or left out when all
    /// ok, after).
    async fn put_lamp_states(
        &self,
        states: &[((IntersectionId, LightIndex), LightLamps)],
    ) -> PortResult<()>;

    /// Records an alarm unless one with its id exists (in the log and, open, in the open
    /// view); returns the stored record, so a retry can tell whether it was already published.
    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord>;

    /// Records an alarm held down until `held_until_ms` (event time), as
    /// [`LampStore::record_alarm`] records one: not published now (a retry then neither
    /// publishes it nor asks again), due for publication when its hold-down ends
    /// ([`LampStore::due_alarms`]) unless it is closed by then.
    async fn record_held_alarm(&self, alarm: &Alarm, held_until_ms: i64)
    -> PortResult<AlarmRecord>;

    /// Marks a recorded alarm as published (it leaves the alarms due), and remembers its time
    /// as its lamp's last published alarm ([`LampStore::last_published`]).
    async fn mark_published(&self, alarm_id: &str) -> PortResult<()>;

    /// Recorded alarms not yet published whose publication is due by `due_by_ms` (event time:
    /// [`AlarmRecord::due_ms`]), soonest due first, at most `limit`; a record may be settled
    /// meanwhile ([`LampStore::claim_publication`] tells). Reads only the alarms due, not the
    /// log.
    async fn due_alarms(&self, due_by_ms: i64, limit: usize) -> PortResult<Vec<AlarmRecord>>;

    /// Claims the publication of a recorded alarm until `until_ms` (processing time), a
    /// conditional write: granted to one caller at a time, and again only once a claim expired
    /// unmarked (its holder died between claim and mark). An alarm already settled leaves the
    /// alarms due here.
    async fn claim_publication(
        &self,
        alarm_id: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim>;

    /// Gives up a claim (its publication failed), so that the next caller may publish at once.
    async fn release_publication(&self, alarm_id: &str) -> PortResult<()>;

    /// The event time of the last published alarm of a lamp, if any was.
    async fn last_published(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        lamp: LampColour,
    ) -> PortResult<Option<i64>>;

    /// Records an operator's acknowledgement of an alarm (open or closed; a second one
    /// replaces the first) and returns the record; [`PortError::NotFound`] for no such alarm.
    async fn ack_alarm(&self, alarm_id: &str, ack: &Ack) -> PortResult<AlarmRecord>;

    /// Every alarm in the log, oldest first (replays and tests: bounded inputs; the API pages
    /// with [`LampStore::alarm_page`]).
    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>>;

    /// One page of alarms, newest first, reading only the alarms it returns (and the open
    /// counter).
    async fn alarm_page(&self, q: &AlarmQuery) -> PortResult<AlarmPage>;

    /// Closes the open alarms of an intersection's light (or of all its lights), found through
    /// the open alarms by light, not the log; with `order_repair` also queues a repair order
    /// for the field for `light` and for every light whose alarms it closed. Returns the
    /// alarms it closed, oldest first.
    async fn close_alarms(
        &self,
        id: &IntersectionId,
        light: Option<LightIndex>,
        closing: &Closing,
        order_repair: bool,
    ) -> PortResult<Vec<AlarmRecord>>;

    /// Resolves the open alarms of an intersection's light (or of all its lights) whose ids
    /// `select` accepts: a recovery (a lamp reported ok again, a silent light reported), so
    /// no repair order. Each is closed as `closing` says, with `why` kept
    /// ([`AlarmRecord::closed_why`]). Found through the open alarms by light, as
    /// [`LampStore::close_alarms`] finds them; returns those it closed, oldest first.
    async fn resolve_alarms(
        &self,
        id: &IntersectionId,
        light: Option<LightIndex>,
        select: &AlarmSelect<'_>,
        closing: &Closing,
        why: &str,
    ) -> PortResult<Vec<AlarmRecord>>;

    /// An operator repaired the lamps of a light at `at` (RFC 3339): its open alarms are closed
    /// (kept [`DEFAULT_ALARM_RETENTION_MS`] after `at`, for ever when `at` does not parse) and
    /// a repair order is queued for the field (the simulator) to carry out. Returns the
    /// alarms it closed.
    async fn repair(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        at: &str,
    ) -> PortResult<Vec<AlarmRecord>> {
        let closing = Closing {
            at: at.to_owned(),
            expires_at_ms: traffic_core::time::parse_rfc3339_ms(at)
                .map(|t| t.saturating_add(DEFAULT_ALARM_RETENTION_MS)),
        };
        self.close_alarms(id, Some(light), &closing, true).await
    }

    /// Takes the queued repair orders (each is returned once).
    async fn take_repairs(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>>;
}

/// Throughput and latency figures of one function over one minute (wall clock).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSample {
    /// `ingest`, `fault` or `merge`.
    pub function: String,
    /// Start of the minute, epoch ms.
    pub minute_ms: i64,
    /// Invocations.
    pub invocations: u64,
    /// Records handled.
    pub records: u64,
    /// Readings accepted (ingest) or alarms raised (fault).
    pub accepted: u64,
    /// Sum over records of (processed − arrived in the stream), ms.
    pub latency_ms_sum: u64,
    /// Largest such latency, ms.
    pub latency_ms_max: u64,
    /// DynamoDB read capacity units consumed (0 on the embedded store).
    #[serde(default)]
    pub read_units: f64,
    /// DynamoDB write capacity units consumed (0 on the embedded store).
    #[serde(default)]
    pub write_units: f64,
}

impl StatsSample {
    /// Adds another sample of the same function and minute.
    pub fn add(&mut self, o: &StatsSample) {
        self.invocations += o.invocations;
        self.records += o.records;
        self.accepted += o.accepted;
        self.latency_ms_sum += o.latency_ms_sum;
        self.latency_ms_max = self.latency_ms_max.max(o.latency_ms_max);
        self.read_units += o.read_units;
        self.write_units += o.write_units;
    }

    /// Mean latency, ms.
    pub fn mean_latency_ms(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.latency_ms_sum as f64 / self.records as f64
        }
    }
}

/// Figures the functions record as they run (throughput, latency), per function and minute.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Adds a sample to its function's minute.
    async fn add_stats(&self, sample: &StatsSample) -> PortResult<()>;

    /// Samples of minutes starting at or after `since_ms`, by minute then function.
    async fn stats(&self, since_ms: i64) -> PortResult<Vec<StatsSample>>;
}

/// Sends alarms to the people who repair lamps (SNS in AWS).
#[async_trait]
pub trait AlarmPublisher: Send + Sync {
    /// Publishes one alarm.
    async fn publish(&self, alarm: &Alarm) -> PortResult<()>;
}

/// Where the merge publishes the results others can subscribe to (an EventBridge bus on AWS,
/// the embedded store's `result_events` table locally): a window closed, timings changed
/// (`traffic_core::events`).
#[async_trait]
pub trait ResultEvents: Send + Sync {
    /// Publishes `events`, in order, all of them or an error: delivery is at least once (the
    /// merge publishes again what a failed call may have left out), so an adapter may send an
    /// event twice but never drops one and reports success.
    async fn publish_events(&self, events: &[ResultEvent]) -> PortResult<()>;
}

/// A [`ResultEvents`] that keeps nothing: the default of [`Ports::from_store`], for bundles
/// whose subscribers are not wired (the adapters' own bundles replace it).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResultEvents;

#[async_trait]
impl ResultEvents for NoResultEvents {
    async fn publish_events(&self, _events: &[ResultEvent]) -> PortResult<()> {
        Ok(())
    }
}

/// The merge's results per window.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Stores (or replaces) results, each under its window.
    async fn put_results(&self, results: &[WindowResult]) -> PortResult<()>;

    /// Windows of `length` starting at or after `from_ms` whose stored result is final (what
    /// a merge run needs: it reads no further back than its oldest pane).
    async fn closed_windows_from(
        &self,
        length: WindowLength,
        from_ms: i64,
    ) -> PortResult<Vec<WindowKey>>;

    /// All stored results, ordered by window length then start.
    async fn results(&self) -> PortResult<Vec<WindowResult>>;

    /// The newest `limit` results of windows of `length`, newest first (what the API serves:
    /// reading every result ever stored would grow without bound): all `limit` when as many
    /// exist, however many reads they take.
    async fn recent_results(
        &self,
        length: WindowLength,
        limit: usize,
    ) -> PortResult<Vec<WindowResult>>;

    /// One page of the results of windows of `length` starting before `before_ms` (from the
    /// newest when `None`), newest first: the public listing. One bounded read: up to `limit`
    /// windows, fewer when the store's page or byte budget filled, with where to continue
    /// whenever older windows exist; a store may read eventually consistently.
    async fn results_page(
        &self,
        length: WindowLength,
        before_ms: Option<i64>,
        limit: usize,
    ) -> PortResult<ResultPage>;

    /// Replaces the network state (every intersection over the newest window of the shortest
    /// length), for the operator's map.
    async fn put_network(&self, state: &NetworkState) -> PortResult<()>;

    /// The network state last stored, if any.
    async fn network(&self) -> PortResult<Option<NetworkState>>;
}

/// The stream's shards, as the merge sees them (see `traffic_core::lineage`): which closed
/// shards were read to their end, and which shards have nothing more to deliver for now.
#[async_trait]
pub trait StreamShards: Send + Sync {
    /// Every shard the stream lists: open ones, and closed ones within its retention.
    async fn shards(&self) -> PortResult<Vec<ShardInfo>>;

    /// Whether a consumer at `after` (its last record, or none) on `shard` has caught up:
    /// reading on finds nothing (Kinesis: no records and `MillisBehindLatest` 0).
    async fn caught_up(&self, shard: &str, after: Option<&SequenceNumber>) -> PortResult<bool>;

    /// Each shard's range of hash keys (`ListShards`), by shard id: `ingest` and `fault` reject
    /// a record that an explicit hash key put on a shard its partition key does not map to.
    /// Empty where nothing can misroute a record (the in-process streams route by the key
    /// themselves), and then nothing is checked.
    async fn hash_ranges(&self) -> PortResult<Vec<(String, HashKeyRange)>> {
        Ok(Vec::new())
    }
}

/// The time, as a port: the wall clock in Lambda and against AWS, the simulated clock where
/// the whole system runs on simulated time (`traffic local`, `traffic sumo`).
pub trait Clock: Send + Sync {
    /// Now, epoch ms.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock set by hand (the simulated clock of a run, or a test's).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now_ms))
    }

    /// Sets it to `now_ms`.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a backend has billed so far, in its own units (DynamoDB's capacity units and
/// requests), so that a function can record what each invocation cost.
pub trait UsageMeter: Send + Sync {
    /// The totals so far.
    fn usage(&self) -> Usage;
}

/// Capacity units and requests consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Read requests.
    pub read_requests: u64,
    /// Write requests.
    pub write_requests: u64,
}

impl Usage {
    /// What was consumed between `before` and `self`.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage {
            read_units: self.read_units - before.read_units,
            write_units: self.write_units - before.write_units,
            read_requests: self.read_requests.saturating_sub(before.read_requests),
            write_requests: self.write_requests.saturating_sub(before.write_requests),
        }
    }
}

/// A meter for backends that bill nothing (the embedded store).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUsage;

impl UsageMeter for NoUsage {
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_edit_sorts_between_the_retiming_in_force_and_the_next_one() {
        let control = WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m"));
        // 2026-01-05T08:00:00Z, then every 7 min 13.5 s for two hours.
        let start = 1_767_600_000_000_i64;
        for step in 0..17 {
            let at = start + step * 433_500;
            let edit = TimingChange::by_operator(control, at, None, Vec::new());
            let now = control.window_of(at);
            let before = control.window_of(now.start_ms - 1);
            let in_force = TimingChange::retiming(before, Vec::new()).history_key();
            let next = TimingChange::retiming(now, Vec::new()).history_key();
            let key = edit.history_key();
            assert!(in_force < key && key < next, "{in_force} < {key} < {next}");
        }
    }

    #[test]
    fn a_history_entry_from_before_by_existed_reads_as_a_retiming() {
        let old = r#"{"from":"15m@2026-01-05T08:00:00Z","phases":[]}"#;
        let c: TimingChange = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.by, ChangedBy::Retiming);
        assert_eq!(
            serde_json::to_string(&c).unwrap_or_default(),
            old,
            "and writes back the same"
        );
    }
}
