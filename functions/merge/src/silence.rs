//! Detector health in the merge: sensor-silent alarms raised and resolved at the closed mark
//! (`traffic_core::silence` judges; this module reads what the judgment needs and acts on it).
//!
//! Each scheduled run whose closed mark advanced, or in which every shard is idle (never at
//! the end of a replay, where nothing more comes):
//!
//! 1. the lights *heard*: those with a reading stamped at or after the closed mark −
//!    `TRAFFIC_SILENCE_AFTER`, from the deltas the run read anyway (the panes from the one
//!    holding the previous closed mark on, open ones included): no extra read;
//! 2. the open sensor-silent alarms: the open alarm view, paged (it holds the open lamp
//!    alarms too; it is small);
//! 3. the registry (every intersection and its lights: the list the run's retiming read, if it
//!    retimed), only when the closed mark crossed a
//!    pane boundary, or every shard is idle and no city alarm is open yet: the judgment then
//!    raises and resolves; otherwise it only resolves the alarms of lights heard again;
//! 4. new alarms recorded (their ids name the scope and the instant since which nothing was
//!    heard; the store keeps one per id) and published, open ones still unpublished (a run
//!    that died between the two) published, recovered ones resolved with the reason kept.
//!
//! A failure here is logged and leaves the run's results standing: the next run judges again.

use crate::CloseUpTo;
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::alarm::AlarmPolicy;
use traffic_core::city::Intersection;
use traffic_core::delta::Delta;
use traffic_core::lamps::{Alarm, Silence};
use traffic_core::reading::Position;
use traffic_core::silence::{Evidence, Watched, judge};
use traffic_core::{AlarmId, IntersectionId, LightIndex};
use traffic_functions::publication::publish_once;
use traffic_ports::{
    AlarmPublisher, AlarmQuery, AlarmRecord, Closing, LampStore, PortResult, Registry,
};

/// Open alarms read per page of the open view.
const PAGE: usize = 500;
/// At most this many pages (500,000 open alarms): a bound, not an expectation.
const MAX_PAGES: usize = 1000;

/// What the merge needs to raise and resolve sensor-silent alarms.
#[derive(Clone, Copy)]
pub(crate) struct Health<'a> {
    /// The alarm log and its open view.
    pub lamps: &'a dyn LampStore,
    /// Where alarms go (SNS).
    pub publisher: &'a dyn AlarmPublisher,
    /// How long a resolved alarm is kept.
    pub alarms: &'a AlarmPolicy,
}

/// What one judgment did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SilenceReport {
    /// Whether the registry was read (a judgment that may raise).
    pub judged: bool,
    /// Alarms raised and published (or published after an earlier run recorded them).
    pub raised: Vec<AlarmId>,
    /// Alarms resolved.
    pub resolved: Vec<AlarmId>,
}

/// The run's facts the judgment uses.
pub(crate) struct RunFacts<'r> {
    /// How windows closed in this run.
    pub closing: CloseUpTo,
    /// The closed mark before the run.
    pub before_ms: Option<i64>,
    /// The closed mark after the run.
    pub closed_ms: Option<i64>,
    /// The pane length, ms.
    pub pane_ms: i64,
    /// Whether every shard the merge counted is idle.
    pub all_idle: bool,
    /// The lights heard ([`heard`] at the closed mark − `silence_after`).
    pub heard: &'r BTreeSet<(IntersectionId, LightIndex)>,
    /// Now (processing time), epoch ms: when resolved alarms are marked closed.
    pub now_ms: i64,
    /// The intersections, when the run's retiming has just listed them (read again otherwise).
    pub listed: Option<&'r [Intersection]>,
}

/// The lights with a reading at or after `since_ms` among `panes`' deltas.
pub(crate) fn heard(
    panes: &BTreeMap<i64, Vec<Delta>>,
    since_ms: i64,
) -> BTreeSet<(IntersectionId, LightIndex)> {
    // A bit per light, so that a reading costs no id copy.
    let mut masks: BTreeMap<&IntersectionId, u8> = BTreeMap::new();
    for d in panes.values().flatten() {
        if d.pane.end_ms() <= since_ms {
            continue;
        }
        for (id, rs) in &d.readings {
            let m = rs
                .iter()
                .filter(|r| r.ts_ms >= since_ms)
                .fold(0u8, |m, r| m | 1 << r.light.get());
            if m != 0 {
                *masks.entry(id).or_default() |= m;
            }
        }
    }
    masks
        .into_iter()
        .flat_map(|(id, m)| {
            LightIndex::all()
                .filter(move |l| m & (1 << l.get()) != 0)
                .map(move |l| (id.clone(), l))
        })
        .collect()
}

/// Every open alarm, from the open view.
async fn open_alarms(lamps: &dyn LampStore) -> PortResult<Vec<AlarmRecord>> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..MAX_PAGES {
        let page = lamps
            .alarm_page(&AlarmQuery {
                open_only: true,
                limit: PAGE,
                after,
            })
            .await?;
        out.extend(page.alarms);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// What the judgment watches: `listed`, or the registry's intersections when not given.
async fn watched(
    registry: &dyn Registry,
    listed: Option<&[Intersection]>,
) -> PortResult<Vec<Watched>> {
    let read;
    let xs = match listed {
        Some(xs) => xs,
        None => {
            read = registry.intersections().await?;
            &read[..]
        }
    };
    Ok(xs
        .iter()
        .map(|x| Watched {
            lights: x.lights.iter().map(|l| l.light).collect(),
            position: Some(Position {
                lat: x.lat,
                lon: x.lon,
            }),
            id: x.id.clone(),
        })
        .collect())
}

/// Publishes a recorded alarm not yet published, and marks it, unless someone else is
/// publishing it (`traffic_functions::publication`); whether this call published it.
async fn publish(h: &Health<'_>, alarm: &Alarm, now_ms: i64) -> PortResult<bool> {
    Ok(publish_once(h.lamps, h.publisher, &alarm.id(), now_ms)
        .await?
        .is_some())
}

/// Judges the silences at this run's closed mark and acts on the judgment.
pub(crate) async fn run(
    h: &Health<'_>,
    registry: &dyn Registry,
    silence_after_ms: i64,
    facts: &RunFacts<'_>,
) -> PortResult<SilenceReport> {
    let mut report = SilenceReport::default();
    let Some(closed) = facts.closed_ms else {
        return Ok(report);
    };
    // Judged when the closed mark moves, or while every shard is idle (event time then stands
    // still: the outage itself is the news).
    let moved = facts.before_ms < Some(closed);
    if silence_after_ms <= 0 || facts.closing == CloseUpTo::All || !(moved || facts.all_idle) {
        return Ok(report);
    }
    let since_ms = closed.saturating_sub(silence_after_ms);
    let open: Vec<AlarmRecord> = open_alarms(h.lamps)
        .await?
        .into_iter()
        .filter(|r| r.alarm.silent.is_some())
        .collect();
    let city_open = open.iter().any(|r| r.alarm.silent == Some(Silence::City));
    let pane = |t: i64| t.div_euclid(facts.pane_ms.max(1));
    let crossed = facts.before_ms.is_none_or(|b| pane(b) != pane(closed));
    let registered = if crossed || (facts.all_idle && !city_open) {
        report.judged = true;
        Some(watched(registry, facts.listed).await?)
    } else {
        None
    };
    let alarms: Vec<Alarm> = open.iter().map(|r| r.alarm.clone()).collect();
    let plan = judge(
        &Evidence {
            registered: registered.as_deref(),
            heard: facts.heard,
            all_idle: facts.all_idle,
            since_ms,
        },
        &alarms,
    );
    let closing = Closing::at(facts.now_ms, h.alarms.retention_ms);
    let mut resolved = BTreeSet::new();
    for (a, why) in &plan.resolve {
        let id = a.id();
        let light = (a.silent == Some(Silence::Light)).then_some(a.light);
        let select = |x: &AlarmId| *x == id;
        let closed = h
            .lamps
            .resolve_alarms(&a.intersection_id, light, &select, &closing, why.as_str())
            .await?;
        if !closed.is_empty() {
            tracing::info!(alarm = %id, why = why.as_str(), "sensor-silent alarm resolved");
            report.resolved.push(id.clone());
        }
        resolved.insert(id);
    }
    // Open ones an earlier run recorded but did not publish (it died in between).
    for r in &open {
        let id = r.alarm.id();
        if !r.published
            && !r.held_down
            && !resolved.contains(&id)
            && publish(h, &r.alarm, facts.now_ms).await?
        {
            report.raised.push(id);
        }
    }
    for a in &plan.raise {
        let record = h.lamps.record_alarm(a).await?;
        if record.published || record.held_down || record.repaired_at_ms.is_some() {
            continue;
        }
        if publish(h, a, facts.now_ms).await? {
            tracing::info!(alarm = %a.id(), "sensor-silent alarm raised");
            report.raised.push(a.id());
        }
    }
    Ok(report)
}
