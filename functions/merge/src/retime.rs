//! Step 3 of a merge run: Webster's retiming of every intersection with readings in the latest
//! control window closed in the run, as each one's control mode says (the `merge.retime` span).

use crate::{MergeHandler, MergeReport};
use std::collections::{BTreeMap, BTreeSet};
use tracing::{Instrument, info_span};
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::control::{ControlMode, Decision, Proposal, blind_phases, decide};
use traffic_core::demand::{IntersectionDemand, retime};
use traffic_core::merge_run::RunOutput;
use traffic_core::plan::{Plan, plan, plan_of};
use traffic_core::rollup::Rollup;
use traffic_core::webster::apply;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{PortResult, ProposalUpdate, TimingUpdate};

/// What the retiming step hands on to the steps after it.
#[derive(Debug, Default)]
pub(crate) struct Retimed {
    /// The control window retimed from, if any.
    pub window: Option<WindowKey>,
    /// The intersections as the round read them (detector health judges over the same list).
    pub listed: Option<Vec<Intersection>>,
    /// The plans stored with the timings of the intersections retimed from the window.
    pub plans: BTreeMap<IntersectionId, Plan>,
}

impl MergeHandler {
    /// Webster on the latest control window (of length `pane_len`) closed in this run, unless
    /// the run is catching up; its counts go into `report`.
    pub(crate) async fn retime_latest(
        &self,
        out: &RunOutput,
        pane_len: WindowLength,
        catching_up: bool,
        heard: Option<&BTreeSet<(IntersectionId, traffic_core::LightIndex)>>,
        report: &mut MergeReport,
    ) -> PortResult<Retimed> {
        let mut retimed = Retimed::default();
        let latest = out.finals.iter().rev().find(|(w, _)| w.length == pane_len);
        if let Some((w, r)) = latest.filter(|_| !catching_up) {
            let round = self
                .retime(r, heard)
                .instrument(info_span!(
                    "merge.retime",
                    intersections = r.intersections.len()
                ))
                .await?;
            retimed.listed = Some(round.listed);
            retimed.plans = round.plans;
            report.retimed = round.retimed;
            report.retiming_conflicts = round.conflicts;
            report.retiming_kept = round.kept;
            report.retiming_steady = round.steady;
            report.retiming_limited = round.limited;
            report.demand = round.demand;
            report.retiming_blind = round.blind;
            retimed.window = Some(*w);
        }
        Ok(retimed)
    }

    /// Retimes every intersection with readings in `window` by Webster's method, as its
    /// control mode says; returns what it did. `heard`: the lights detector health heard at
    /// the closed mark, when it judged (`None`: every phase counts as heard).
    async fn retime(
        &self,
        window: &Rollup,
        heard: Option<&BTreeSet<(traffic_core::IntersectionId, traffic_core::LightIndex)>>,
    ) -> PortResult<RetimingRound> {
        let seconds = window.window.length.seconds();
        let from = window.window.to_string();
        let yellow = self.cfg.webster.yellow_s;
        let mut round = RetimingRound::default();
        let mut updates = Vec::new();
        let mut limited = Vec::new();
        let mut proposals = Vec::new();
        let listed = self.registry.intersections_versioned().await?;
        for (x, version) in &listed {
            let Some(t) = window.intersections.get(&x.id) else {
                continue;
            };
            // Done by a run that crashed before recording its progress.
            match x.control.mode {
                ControlMode::Adaptive if x.retimed_from.as_deref() == Some(from.as_str()) => {
                    round.retimed += 1;
                    round
                        .plans
                        .insert(x.id.clone(), plan_of(x, yellow, &self.cfg.plan));
                    continue;
                }
                ControlMode::Manual
                    if x.proposal.as_ref().is_some_and(|p| p.from == window.window) =>
                {
                    round.kept += 1;
                    continue;
                }
                _ => {}
            }
            let blind = heard.map_or_else(Vec::new, |h| {
                blind_phases(x, |l| h.contains(&(x.id.clone(), l)))
            });
            if !blind.is_empty() && blind.len() == x.phases.len() {
                round.blind += 1;
                continue;
            }
            let (timing, demand) = retime(
                x,
                &t.vehicles,
                seconds,
                &self.cfg.webster,
                &self.cfg.demand,
                &blind,
            );
            round.demand.push(IntersectionDemand {
                intersection_id: x.id.clone(),
                window: window.window,
                lights: demand,
            });
            let proposed = apply(&x.phases, &timing);
            match decide(
                x,
                proposed,
                self.cfg.webster.yellow_s,
                self.cfg.webster.min_change_s,
            ) {
                Decision::Apply { phases, limited: l } => {
                    if l {
                        limited.push(x.id.clone());
                    }
                    // The plan of the timings written, within the intersection's limits.
                    let plan = plan(&phases, yellow, x.control.limits.as_ref(), &self.cfg.plan);
                    updates.push(TimingUpdate {
                        id: x.id.clone(),
                        phases,
                        plan: Some(plan),
                        expected_version: version.clone(),
                    });
                }
                Decision::Keep => round.kept += 1,
                Decision::Steady => round.steady += 1,
                Decision::Propose(phases) => {
                    round.kept += 1;
                    proposals.push(ProposalUpdate {
                        id: x.id.clone(),
                        proposal: Proposal::of(x, &t.vehicles, window.window, &timing, phases),
                        expected_version: version.clone(),
                    });
                }
            }
        }
        let skipped = self.registry.set_timings(&updates, &window.window).await?;
        if !skipped.is_empty() {
            tracing::info!(
                skipped = skipped.len(),
                "retiming skipped for intersections changed since they were read (or whose write kept failing: the store logs which)"
            );
        }
        round.retimed += updates.len() - skipped.len();
        for u in updates {
            if let Some(p) = u.plan.filter(|_| !skipped.contains(&u.id)) {
                round.plans.insert(u.id, p);
            }
        }
        round.conflicts = skipped.len();
        round.limited = limited.iter().filter(|id| !skipped.contains(id)).count();
        // Few (the manual ones): one conditional write each, like a retiming's.
        let unrecorded = self.registry.set_proposals(&proposals).await?;
        if !unrecorded.is_empty() {
            tracing::info!(
                skipped = unrecorded.len(),
                "proposals not recorded for intersections changed since they were read"
            );
        }
        round.listed = listed.into_iter().map(|(x, _)| x).collect();
        Ok(round)
    }
}

/// What one retiming round did.
#[derive(Debug, Default)]
struct RetimingRound {
    /// The intersections as the round read them (detector health judges over the same list).
    listed: Vec<traffic_core::city::Intersection>,
    /// The plans stored with the timings of the intersections retimed from the window.
    plans: BTreeMap<IntersectionId, Plan>,
    retimed: usize,
    steady: usize,
    conflicts: usize,
    kept: usize,
    limited: usize,
    demand: Vec<IntersectionDemand>,
    blind: usize,
}
