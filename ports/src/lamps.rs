//! Lamp states and alarms: the alarm log's records, claims and queries ([`LampStore`]), and where
//! alarms are sent ([`AlarmPublisher`]).

#[cfg(doc)]
use crate::PortError;
use crate::PortResult;
use async_trait::async_trait;
use std::collections::BTreeMap;
use traffic_core::lamps::{Alarm, LampSummary, LightLamps};
use traffic_core::{AlarmId, IntersectionId, LampColour, LightIndex};

/// A stored alarm and what became of it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlarmRecord {
    /// The alarm.
    pub alarm: Alarm,
    /// Whether it has been handed to the publisher.
    pub published: bool,
    /// When it was closed, epoch ms (written `repaired_at`, RFC 3339): an operator repaired
    /// the lamp, a recovery resolved it, or the intersection or light was deleted. `None` while
    /// it is open.
    #[serde(
        default,
        rename = "repaired_at",
        with = "traffic_core::time::rfc3339_opt"
    )]
    pub repaired_at_ms: Option<i64>,
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
            repaired_at_ms: None,
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
        self.published || (self.held_down && self.repaired_at_ms.is_some())
    }
}

/// One step of an alarm's lifecycle, for history (`LampStore::alarm_events`).
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmEvent {
    /// When it happened, epoch ms: the alarm's own time for `Raised`, the closing's for
    /// `Closed`, the acknowledgement's for `Acknowledged`.
    pub at_ms: i64,
    /// The alarm.
    pub alarm: Alarm,
    /// Whether it was recorded held down (not paged at once: its lamp flapped).
    pub held_down: bool,
    /// What happened.
    pub kind: AlarmEventKind,
}

/// What happened to an alarm.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmEventKind {
    /// It was raised.
    Raised,
    /// It was closed: by a recovery (`why`: the lamp reported ok, the light reported again),
    /// or, with no `why`, by an operator's repair or the deletion of its intersection or light.
    Closed {
        /// Why a recovery closed it.
        why: Option<String>,
    },
    /// An operator acknowledged it.
    Acknowledged(Ack),
}

impl AlarmEventKind {
    /// Its name in the archive's `alarm_events`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmEventKind::Raised => "raised",
            AlarmEventKind::Closed { .. } => "closed",
            AlarmEventKind::Acknowledged(_) => "acknowledged",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            AlarmEventKind::Raised => 0,
            AlarmEventKind::Acknowledged(_) => 1,
            AlarmEventKind::Closed { .. } => 2,
        }
    }
}

/// The events of `records` (the alarm log) that happened in `[from_ms, to_ms)`, in the order
/// [`LampStore::alarm_events`] gives: what a store that reads its whole log answers.
pub fn alarm_events_of<'r>(
    records: impl IntoIterator<Item = &'r AlarmRecord>,
    from_ms: i64,
    to_ms: i64,
) -> Vec<AlarmEvent> {
    let within = |t: i64| (from_ms..to_ms).contains(&t);
    let mut out = Vec::new();
    for r in records {
        let event = |at_ms, kind| AlarmEvent {
            at_ms,
            alarm: r.alarm.clone(),
            held_down: r.held_down,
            kind,
        };
        if within(r.alarm.ts_ms) {
            out.push(event(r.alarm.ts_ms, AlarmEventKind::Raised));
        }
        if let Some(at) = r.repaired_at_ms.filter(|t| within(*t)) {
            let why = r.closed_why.clone();
            out.push(event(at, AlarmEventKind::Closed { why }));
        }
        if let Some(ack) = &r.ack
            && within(ack.at_ms)
        {
            out.push(event(ack.at_ms, AlarmEventKind::Acknowledged(ack.clone())));
        }
    }
    sort_alarm_events(&mut out);
    out
}

/// Sorts alarm events as [`LampStore::alarm_events`] returns them: by time, then alarm, then
/// raised before acknowledged before closed.
pub fn sort_alarm_events(events: &mut [AlarmEvent]) {
    events.sort_by(|a, b| {
        (a.at_ms, a.alarm.id(), a.kind.rank()).cmp(&(b.at_ms, b.alarm.id(), b.kind.rank()))
    });
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
    /// When, epoch ms (written `at`, RFC 3339).
    #[serde(rename = "at", with = "traffic_core::time::rfc3339")]
    pub at_ms: i64,
    /// What they noted, if anything.
    #[serde(default)]
    pub note: Option<String>,
}

/// Which of a light's open alarms [`LampStore::resolve_alarms`] closes, by alarm id.
pub type AlarmSelect<'s> = dyn Fn(&AlarmId) -> bool + Send + Sync + 's;

/// Which open alarms of an intersection [`LampStore::close_selected`] closes, and how: what
/// [`LampStore::close_alarms`] and [`LampStore::resolve_alarms`] each ask of it.
#[derive(Clone, Copy)]
pub struct CloseAlarms<'a> {
    /// The light, or every light of the intersection.
    pub light: Option<LightIndex>,
    /// Which of the open alarms, by id.
    pub select: &'a AlarmSelect<'a>,
    /// How the closing is recorded.
    pub closing: &'a Closing,
    /// Whether a repair order is queued for the field.
    pub order_repair: bool,
    /// Why, kept in each record ([`AlarmRecord::closed_why`]) for a recovery.
    pub why: Option<&'a str>,
}

/// How a closing is recorded: when, and when the closed alarm leaves the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing {
    /// When, epoch ms: the record's `repaired_at`.
    pub at_ms: i64,
    /// When the closed alarm expires from the log, epoch ms (DynamoDB's TTL deletes it; the
    /// embedded store deletes it at its next alarm write after that time). `None`: kept.
    pub expires_at_ms: Option<i64>,
}

impl Closing {
    /// Closed at `at_ms`, expiring `retention_ms` later.
    pub fn at(at_ms: i64, retention_ms: i64) -> Self {
        Self {
            at_ms,
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
    /// Continue after this alarm (the previous page's last), towards older alarms.
    pub after: Option<AlarmId>,
}

/// What [`LampStore::alarm_page`] read: exactly the alarms it returns, and the open count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmPage {
    /// The alarms, newest first.
    pub alarms: Vec<AlarmRecord>,
    /// The id to pass as [`AlarmQuery::after`] for the next page, when the page was full
    /// (the next page may then be empty, as with DynamoDB's `LastEvaluatedKey`).
    pub next: Option<AlarmId>,
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
    /// (`traffic_core::lamps::intersections_to_read`). Lamps are kept for registered
    /// intersections: a store that builds its summaries from its states (DynamoDB's, the first
    /// time, `adapters/aws/src/lamp_summary.rs`) drops the states of an intersection its
    /// registry does not have, as left over from a deleted one.
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
    async fn mark_published(&self, alarm_id: &AlarmId) -> PortResult<()>;

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
        alarm_id: &AlarmId,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim>;

    /// Gives up a claim (its publication failed), so that the next caller may publish at once.
    async fn release_publication(&self, alarm_id: &AlarmId) -> PortResult<()>;

    /// The event time of the last published alarm of a lamp, if any was.
    async fn last_published(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        lamp: LampColour,
    ) -> PortResult<Option<i64>>;

    /// Records an operator's acknowledgement of an alarm (open or closed; a second one
    /// replaces the first) and returns the record; [`PortError::NotFound`] for no such alarm.
    async fn ack_alarm(&self, alarm_id: &AlarmId, ack: &Ack) -> PortResult<AlarmRecord>;

    /// Every alarm in the log, oldest first (replays and tests: bounded inputs; the API pages
    /// with [`LampStore::alarm_page`]).
    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>>;

    /// One page of alarms, newest first, reading only the alarms it returns (and the open
    /// counter).
    async fn alarm_page(&self, q: &AlarmQuery) -> PortResult<AlarmPage>;

    /// What happened to alarms in `[from_ms, to_ms)`: raised (by the alarm's time), closed (by
    /// the closing's), acknowledged (by each acknowledgement's, a second one too), ordered as
    /// [`sort_alarm_events`] orders them, for the archive's `alarm_events`. Steps are found
    /// for at least a month (closed alarms: until their retention ends).
    async fn alarm_events(&self, from_ms: i64, to_ms: i64) -> PortResult<Vec<AlarmEvent>>;

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
    ) -> PortResult<Vec<AlarmRecord>> {
        let close = CloseAlarms {
            light,
            select: &|_| true,
            closing,
            order_repair,
            why: None,
        };
        self.close_selected(id, &close).await
    }

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
    ) -> PortResult<Vec<AlarmRecord>> {
        let close = CloseAlarms {
            light,
            select,
            closing,
            order_repair: false,
            why: Some(why),
        };
        self.close_selected(id, &close).await
    }

    /// Closes the open alarms of an intersection that `close` selects, as it says: what
    /// [`LampStore::close_alarms`] and [`LampStore::resolve_alarms`] do, each with its own
    /// selection. Returns the alarms it closed, oldest first.
    async fn close_selected(
        &self,
        id: &IntersectionId,
        close: &CloseAlarms<'_>,
    ) -> PortResult<Vec<AlarmRecord>>;

    /// An operator repaired the lamps of a light at `at_ms`: its open alarms are closed (kept
    /// [`DEFAULT_ALARM_RETENTION_MS`] after it) and a repair order is queued for the field (the
    /// simulator) to carry out. Returns the alarms it closed.
    async fn repair(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        at_ms: i64,
    ) -> PortResult<Vec<AlarmRecord>> {
        let closing = Closing::at(at_ms, DEFAULT_ALARM_RETENTION_MS);
        self.close_alarms(id, Some(light), &closing, true).await
    }

    /// Takes the queued repair orders (each is returned once).
    async fn take_repairs(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>>;
}

/// Sends alarms to the people who repair lamps (SNS in AWS).
#[async_trait]
pub trait AlarmPublisher: Send + Sync {
    /// Publishes one alarm.
    async fn publish(&self, alarm: &Alarm) -> PortResult<()>;
}
