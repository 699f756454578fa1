//! What runs the simulator: its settings ([`SimConfig`]) and what the outside world tells it
//! before each step ([`Controls`]: the timings in force, the lamps repaired).

use crate::error::{SimError, config};
use crate::exact;
use crate::model::DemandProfile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::{City, IntersectionId, LightIndex, Phase};

/// Latest accepted start, epoch ms (9999-12-31T23:59:59Z); earliest is its negative.
const MAX_START_MS: i64 = 253_402_300_799_000;

/// How the simulator runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Seed of the arrivals and lamp failures.
    pub seed: u64,
    /// Start of the first period, epoch ms UTC.
    pub start_ms: i64,
    /// Length of a period, s (1..=3600): each step simulates one and reads every light once.
    pub period_s: u32,
    /// Probability that a reading breaks one of its light's lamps (0..=1).
    #[serde(with = "exact")]
    pub lamp_failure_probability: f64,
    /// Multiplies every intersection's demand (1 = as the city says).
    #[serde(with = "exact")]
    pub demand_scale: f64,
    /// How demand varies over the day.
    pub profile: DemandProfile,
    /// Yellow time after each green, s.
    #[serde(with = "exact")]
    pub yellow_s: f64,
    /// Lost time per phase, s (effective green = green + yellow − lost time).
    #[serde(with = "exact")]
    pub lost_time_per_phase_s: f64,
    /// Lowest mean speed reported while vehicles move, km/h.
    #[serde(with = "exact")]
    pub min_speed_kmh: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            // 2026-01-05T00:00:00Z, a Monday.
            start_ms: 1_767_571_200_000,
            period_s: 60,
            lamp_failure_probability: 1e-5,
            demand_scale: 1.0,
            profile: DemandProfile::Daily,
            yellow_s: 4.0,
            lost_time_per_phase_s: 4.0,
            min_speed_kmh: 5.0,
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(-MAX_START_MS..=MAX_START_MS).contains(&self.start_ms) {
            return Err(config("start_ms", "must be within years -9999..=9999"));
        }
        if !(1..=3600).contains(&self.period_s) {
            return Err(config("period_s", "must be 1..=3600 seconds"));
        }
        if !(0.0..=1.0).contains(&self.lamp_failure_probability) {
            return Err(config("lamp_failure_probability", "must be 0..=1"));
        }
        if !(self.demand_scale.is_finite() && self.demand_scale >= 0.0) {
            return Err(config("demand_scale", "must be a number >= 0"));
        }
        if !(self.yellow_s.is_finite() && (0.0..=60.0).contains(&self.yellow_s)) {
            return Err(config("yellow_s", "must be 0..=60 seconds"));
        }
        if !(self.lost_time_per_phase_s.is_finite()
            && (0.0..=60.0).contains(&self.lost_time_per_phase_s))
        {
            return Err(config("lost_time_per_phase_s", "must be 0..=60 seconds"));
        }
        if !(self.min_speed_kmh.is_finite() && (0.1..=50.0).contains(&self.min_speed_kmh)) {
            return Err(config("min_speed_kmh", "must be 0.1..=50 km/h"));
        }
        Ok(())
    }
}

/// What the outside world tells the simulator before a step: the current timings and the
/// lamps repaired since the previous step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    /// Current phases per intersection. An intersection left out keeps its last timings.
    pub timings: BTreeMap<IntersectionId, Vec<Phase>>,
    /// Lights whose lamps were repaired since the last step: all their lamps read ok again.
    pub repairs: BTreeSet<(IntersectionId, LightIndex)>,
}

impl Controls {
    /// No new timings and no repairs: every intersection keeps its timings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The city's own phases for every intersection: passing these at every step runs the
    /// city on fixed timings.
    pub fn fixed(city: &City) -> Self {
        Self {
            timings: city
                .intersections
                .iter()
                .map(|x| (x.id.clone(), x.phases.clone()))
                .collect(),
            repairs: BTreeSet::new(),
        }
    }

    /// Sets the phases of intersection `id`.
    pub fn set_phases(&mut self, id: IntersectionId, phases: Vec<Phase>) -> &mut Self {
        self.timings.insert(id, phases);
        self
    }

    /// Records that the lamps of `light` at `id` were repaired.
    pub fn repair(&mut self, id: IntersectionId, light: LightIndex) -> &mut Self {
        self.repairs.insert((id, light));
        self
    }

    /// Forgets the repairs (once a step has applied them).
    pub fn clear_repairs(&mut self) {
        self.repairs.clear();
    }
}
