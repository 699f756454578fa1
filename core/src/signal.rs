//! What an intersection's signals are set to, as stored: its lights and phases, the control
//! an operator chose (mode and limits), and the proposal and plan kept beside them. Plain data,
//! with the checks of its own fields; what computes it sits above: [`crate::safe_timing`]
//! applies the limits, [`crate::webster`] proposes timings, [`crate::control`] decides what
//! the merge writes, [`crate::plan`] draws plans, and [`crate::city`] gathers it all into
//! intersections. Those modules re-export what they name here, so either path works.

use crate::ids::LightIndex;
use crate::window::WindowKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The smallest saturation flow of a light, vehicles per hour of green: below it the flow
/// ratios of Webster's method (arrivals over saturation) overflow to infinity (a saturation of
/// 5e-324 was accepted, and the retiming it led to stored a green of NaN).
pub const MIN_SATURATION_VEH_H: f64 = 1.0;

/// The longest green or red time of a phase, seconds (an hour): beyond any signal plan, and
/// small enough that a cycle's sum stays a finite number.
pub const MAX_PHASE_TIME_S: f64 = 3600.0;

/// One light (a signal head with red, yellow and green lamps) and its approach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Light {
    /// Which light, 0..=3.
    pub light: LightIndex,
    /// Saturation flow of its approach, vehicles per hour of green.
    pub saturation_veh_h: f64,
    /// Any other fields (a position, a name), kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One signal phase: its lights' green time and red time (yellow is the controller's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The lights that show green together in this phase.
    pub lights: Vec<LightIndex>,
    /// Green time, seconds.
    pub green_s: f64,
    /// Red time, seconds.
    pub red_s: f64,
    /// Any other fields, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The cycle of a signal plan, s: its first phase's green + yellow + red (0 without phases).
/// Webster's timings give every phase the same cycle, so any phase would do; the first is the
/// one formula `traffic replay` has always written (its output is a contract), and summing
/// another phase can differ from it in the last bit of the float. A hand-edited plan whose
/// phases disagree is shown by its first phase's cycle.
pub fn cycle_s(phases: &[Phase], yellow_s: f64) -> f64 {
    phases
        .first()
        .map_or(0.0, |p| p.green_s + yellow_s + p.red_s)
}

/// Why an intersection (or a city) is invalid; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CityError {
    /// The field at fault, as a path (`intersections[3].phases[0].lights`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The limits of one intersection; `None` is no limit. As JSON (each member optional, none
/// other accepted): `{"min_green_s": [25, null], "max_cycle_s": 90, "max_green_change": 0.2}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingLimits {
    /// Minimum green per phase, s (by phase position; missing entries: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min_green_s: Vec<Option<f64>>,
    /// Longest cycle, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cycle_s: Option<f64>,
    /// Largest change of any green per retiming, as a fraction of the current green (0.2: ±20 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_green_change: Option<f64>,
}

impl TimingLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.max_cycle_s.is_none()
            && self.max_green_change.is_none()
            && self.min_green_s.iter().all(Option::is_none)
    }

    /// Checks the limits of an intersection with `phases` phases; the error names the field,
    /// prefixed with `at`: a minimum green that is negative or not finite, more minimum greens
    /// than phases, a maximum cycle that is not positive, a change fraction outside (0, 1].
    pub fn validate(&self, phases: usize, at: &str) -> Result<(), CityError> {
        let bad = |field: String, message: &str| CityError {
            field: format!("{at}{field}"),
            message: message.to_owned(),
        };
        if self.min_green_s.len() > phases {
            return Err(bad(
                "min_green_s".into(),
                &format!("has more entries than the intersection's {phases} phases"),
            ));
        }
        for (i, m) in self.min_green_s.iter().enumerate() {
            // No green is longer than an hour: a longer minimum could never be met (and a
            // plan drawn within it overflowed to infinity).
            if let Some(m) = m
                && !(m.is_finite() && *m >= 0.0 && *m <= MAX_PHASE_TIME_S)
            {
                return Err(bad(
                    format!("min_green_s[{i}]"),
                    "must be a number of seconds from 0 to 3600 (no green is longer)",
                ));
            }
        }
        if let Some(c) = self.max_cycle_s
            && !(c.is_finite() && c > 0.0)
        {
            return Err(bad(
                "max_cycle_s".into(),
                "must be a finite positive number of seconds",
            ));
        }
        if let Some(f) = self.max_green_change
            && !(f.is_finite() && f > 0.0 && f <= 1.0)
        {
            return Err(bad(
                "max_green_change".into(),
                "must be a fraction in (0, 1] (0.2: at most ±20 % per retiming)",
            ));
        }
        Ok(())
    }
}

/// How an intersection's timings are set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlMode {
    /// Webster's proposal applies, within the limits.
    #[default]
    Adaptive,
    /// The timings are kept.
    Fixed,
    /// The operator's plan is kept; Webster's proposal is shown beside it.
    Manual,
}

impl ControlMode {
    /// Its name as in JSON (`adaptive`, `fixed`, `manual`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ControlMode::Adaptive => "adaptive",
            ControlMode::Fixed => "fixed",
            ControlMode::Manual => "manual",
        }
    }
}

/// An intersection's control: its mode and its limits, as stored on the intersection
/// (`"control": {"mode": "manual", "limits": {...}}`) and as `PUT .../control` takes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The mode.
    pub mode: ControlMode,
    /// The limits a retiming respects (adaptive mode), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TimingLimits>,
}

impl Control {
    /// Adaptive without limits: today's behaviour, not stored.
    pub fn is_default(&self) -> bool {
        self.mode == ControlMode::Adaptive
            && self.limits.as_ref().is_none_or(TimingLimits::is_empty)
    }

    /// The same control with limits that set nothing dropped (so that it compares and stores
    /// as the default when it is one).
    pub fn normalized(mut self) -> Self {
        if self.limits.as_ref().is_some_and(TimingLimits::is_empty) {
            self.limits = None;
        }
        self
    }
}

/// One light's input to a proposal: what it counted over the window, and its flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightFlow {
    /// The light.
    pub light: LightIndex,
    /// Vehicles it counted over the window.
    pub vehicles: u64,
    /// Its flow, veh/h (`vehicles · 3600 / window_s`).
    pub flow_veh_h: f64,
    /// Its approach's saturation flow, veh/h.
    pub saturation_veh_h: f64,
}

/// Webster's proposal for an intersection under manual control, with what it was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The control window the flows were counted in (`15m@2026-01-05T08:15:00Z`).
    #[serde(with = "crate::window::key_as_text")]
    pub from: WindowKey,
    /// That window's length, s.
    pub window_s: f64,
    /// The flows per light.
    pub flows: Vec<LightFlow>,
    /// The total flow ratio Y.
    pub flow_ratio: f64,
    /// The proposed cycle, s.
    pub cycle_s: f64,
    /// The proposed phases (green and red of each).
    pub phases: Vec<Phase>,
}

/// One phase of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhasePlan {
    /// Shortest green, s.
    pub min_green_s: f64,
    /// The green of a fixed-time controller (Webster's), s.
    pub green_s: f64,
    /// Longest green, s.
    pub max_green_s: f64,
}

/// One intersection's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Cycle of the fixed-time greens: every phase's green + yellow, s.
    pub cycle_s: f64,
    /// Where the intersection is coordinated ([`crate::coordination`]): when its coordinated
    /// phase's green starts, s in `[0, cycle_s)`: it starts at every instant `t` (seconds
    /// since the Unix epoch, UTC) with `(t - offset_s) mod cycle_s = 0`. `None`: not
    /// coordinated.
    pub offset_s: Option<f64>,
    /// The phase (index in `phases`) whose green starts at the offset, the one along the
    /// group's busiest direction; `None` when not coordinated.
    #[serde(default)]
    pub coordinated_phase: Option<usize>,
    /// Per phase, in the intersection's phase order.
    pub phases: Vec<PhasePlan>,
}
