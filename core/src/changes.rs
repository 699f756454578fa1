//! Who changed what, as rows of the archive's tables, one set per closed control window:
//!
//! | table | one row per |
//! |---|---|
//! | `plan_changes` | phase of a plan changed, by an operator (in the window) or by the merge's retiming round from the window |
//! | `alarm_events` | step of an alarm's lifecycle in the window: raised, acknowledged, closed |
//!
//! Each row is a function of the change alone (its time, its author, the phases), so a window
//! written again gives the same rows; `traffic_core::outputs` holds the window's results.

use crate::city::Phase;
use crate::ids::IntersectionId;
use crate::outputs::WindowPlans;
use crate::signal::cycle_s;
use crate::window::WindowKey;

/// One phase of a plan as a change left it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanChangeRow {
    /// When: an operator's edit's time; for a retiming, the end of the window it was computed
    /// from (it is in force from the round that follows), epoch ms.
    pub changed_at_ms: i64,
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// `operator` or `retiming`.
    pub changed_by: &'static str,
    /// The operator's identity, when the edit carried one.
    pub operator: Option<String>,
    /// The phase's index.
    pub phase: u32,
    /// Its green, s (a retiming: the plan's fixed-time green).
    pub green_s: f64,
    /// The plan's cycle, s.
    pub cycle_s: f64,
}

impl PlanChangeRow {
    /// The rows of an operator's edit of `id`'s phases at `at_ms`.
    pub fn edit(
        id: &IntersectionId,
        at_ms: i64,
        operator: Option<&str>,
        phases: &[Phase],
        yellow_s: f64,
    ) -> Vec<Self> {
        let cycle = cycle_s(phases, yellow_s);
        phases
            .iter()
            .zip(0..)
            .map(|(p, phase)| Self {
                changed_at_ms: at_ms,
                intersection_id: id.clone(),
                changed_by: "operator",
                operator: operator.map(str::to_owned),
                phase,
                green_s: p.green_s,
                cycle_s: cycle,
            })
            .collect()
    }

    /// The rows of the plans a retiming round changed (`retimed` rows of `plans`).
    pub fn retimings(plans: &WindowPlans) -> Vec<Self> {
        plans
            .rows
            .iter()
            .filter(|r| r.retimed)
            .map(|r| Self {
                changed_at_ms: plans.window.end_ms(),
                intersection_id: r.intersection_id.clone(),
                changed_by: "retiming",
                operator: None,
                phase: r.phase,
                green_s: r.green_s,
                cycle_s: r.cycle_s,
            })
            .collect()
    }
}

/// One step of an alarm's lifecycle.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmEventRow {
    /// When it happened, epoch ms.
    pub event_at_ms: i64,
    /// `raised`, `acknowledged` or `closed`.
    pub event: &'static str,
    /// The alarm's id (`I-0001#2#red#<ms>`): the rows of one alarm share it.
    pub alarm_id: String,
    /// The intersection (`_city` for the city's silence).
    pub intersection_id: IntersectionId,
    /// The light (0 for a silence of a whole intersection or of the city).
    pub light: u32,
    /// The broken lamp's colour; `None` for a sensor-silent alarm.
    pub lamp: Option<&'static str>,
    /// What fell silent (`light`, `intersection`, `city`); `None` for a lamp's alarm.
    pub silent: Option<&'static str>,
    /// When it was raised, epoch ms.
    pub raised_at_ms: i64,
    /// Whether it was held down (not paged at once: its lamp flapped).
    pub held_down: bool,
    /// `closed` by a recovery: why (the lamp reported ok, the light reported again); `None`
    /// for a repair or a deletion.
    pub why: Option<String>,
    /// `acknowledged`: who.
    pub by: Option<String>,
    /// `acknowledged`: what they noted.
    pub note: Option<String>,
}

/// What changed in one closed control window: operators' edits and alarms' steps.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowChanges {
    /// The control window.
    pub window: WindowKey,
    /// Operators' edits made in it, by time then intersection then phase.
    pub plan_changes: Vec<PlanChangeRow>,
    /// Alarms' steps in it, by time then alarm.
    pub alarm_events: Vec<AlarmEventRow>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::PlanRow;
    use crate::signal::ControlMode;

    fn phase(green_s: f64, red_s: f64) -> Phase {
        Phase {
            lights: Vec::new(),
            green_s,
            red_s,
            extra: Default::default(),
        }
    }

    #[test]
    fn an_edit_gives_a_row_per_phase_with_its_author_and_the_plans_cycle() {
        let id = IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e:?}"));
        let rows = PlanChangeRow::edit(
            &id,
            1_000,
            Some("op-1"),
            &[phase(30.0, 33.0), phase(27.0, 36.0)],
            3.0,
        );
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.cycle_s == 66.0 && r.changed_by == "operator")
        );
        assert_eq!(rows[1].phase, 1);
        assert_eq!(rows[1].green_s, 27.0);
        assert_eq!(rows[0].operator.as_deref(), Some("op-1"));
    }

    #[test]
    fn a_round_gives_rows_for_the_plans_it_changed_only_at_its_windows_end() {
        let window: WindowKey = "15m@2026-01-05T08:15:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let row = |id: &str, retimed| PlanRow {
            intersection_id: IntersectionId::parse(id).unwrap_or_else(|e| panic!("{e:?}")),
            mode: ControlMode::Adaptive,
            retimed,
            phase: 0,
            cycle_s: 60.0,
            offset_s: None,
            min_green_s: 10.0,
            green_s: 25.0,
            max_green_s: 40.0,
        };
        let plans = WindowPlans {
            window,
            rows: vec![row("I-0001", false), row("I-0002", true)],
        };
        let rows = PlanChangeRow::retimings(&plans);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].intersection_id.as_str(), "I-0002");
        assert_eq!(rows[0].changed_at_ms, window.end_ms());
        assert_eq!(rows[0].changed_by, "retiming");
    }
}
