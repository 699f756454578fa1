//! The intersection registry ([`Registry`]) and what a retiming or an operator writes to it: timing
//! updates, proposals, the timing history.

#[cfg(doc)]
use crate::PortError;
use crate::PortResult;
use async_trait::async_trait;
use traffic_core::IntersectionId;
use traffic_core::city::{Intersection, Phase};
use traffic_core::control::Proposal;
use traffic_core::window::{WindowKey, WindowLength};

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

    /// One intersection and its [`Version`], which changes whenever the stored intersection
    /// does (an operator's edit, a retiming). The API's `ETag`.
    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, Version)>>;

    /// Replaces an intersection if its stored version is still `expected`, atomically; returns
    /// the new version. [`PortError::Conflict`] if it changed, [`PortError::NotFound`] if it
    /// is gone.
    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &Version,
    ) -> PortResult<Version>;

    /// Deletes an intersection if its stored version is still `expected`, atomically;
    /// [`PortError::Conflict`] if it changed, [`PortError::NotFound`] if it is gone.
    async fn delete_intersection_if(
        &self,
        id: &IntersectionId,
        expected: &Version,
    ) -> PortResult<()>;

    /// Every intersection with its version (see [`Registry::intersection_versioned`]), by id:
    /// what the merge retimes from.
    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, Version)>>;

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
        expected: &Version,
        change: &TimingChange,
    ) -> PortResult<Version>;

    /// Operators' edits of timings made in `[from_ms, to_ms)` (by their `at`), with their
    /// intersections, oldest first (then by intersection): who changed which plan when, for
    /// the archive's `plan_changes`. Found as long as the history keeps them.
    async fn operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(IntersectionId, TimingChange)>>;

    /// Appends a change that was not a retiming (an operator's edit of the phases) to the
    /// intersection's history, under [`TimingChange::history_key`].
    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()>;
}

/// The version of a stored intersection: opaque (each store makes its own), different after
/// every write of the intersection, compared only for equality. What the API's `ETag` carries
/// and an `If-Match` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// A version as its store wrote it (or as a client sent it back).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
    pub expected_version: Version,
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
    pub expected_version: Version,
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
    /// When it was made, epoch ms (written `at`, RFC 3339), for changes other than retimings.
    #[serde(
        default,
        rename = "at",
        with = "traffic_core::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub at_ms: Option<i64>,
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
            at_ms: None,
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
            at_ms: Some(at_ms),
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
                self.at_ms
                    .map(traffic_core::time::format_rfc3339_ms)
                    .unwrap_or_default()
            ),
        }
    }
}

/// The operators' edits among `changes` made in `[from_ms, to_ms)`, in the order
/// [`Registry::operator_edits`] gives (by time, then intersection).
pub fn operator_edits_of(
    changes: impl IntoIterator<Item = (IntersectionId, TimingChange)>,
    from_ms: i64,
    to_ms: i64,
) -> Vec<(IntersectionId, TimingChange)> {
    let mut edits: Vec<(i64, IntersectionId, TimingChange)> = changes
        .into_iter()
        .filter(|(_, c)| c.by == ChangedBy::Operator)
        .filter_map(|(id, c)| c.at_ms.map(|t| (t, id, c)))
        .filter(|(t, _, _)| (from_ms..to_ms).contains(t))
        .collect();
    edits.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    edits.into_iter().map(|(_, id, c)| (id, c)).collect()
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
