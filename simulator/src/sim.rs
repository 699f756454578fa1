//! The simulator: per-light queues stepped one period at a time under the timings and repairs
//! that come in from outside.

use crate::demand::Demand;
use crate::error::SimError;
use crate::exact;
use crate::model::{self, Split};
use crate::rng::Rng;
pub use crate::settings::{Controls, SimConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use traffic_core::reading::{MAX_SPEED_KMH, MAX_VEHICLES, Position};
use traffic_core::{
    City, IntersectionId, LampColour, LampState, Lamps, LightIndex, Phase, Reading,
};

/// Seed offset of the stream that fills in demand a city file does not give, so that the
/// arrivals of a run do not depend on which intersections had their demand written down.
const DEMAND_STREAM: u64 = 0xA076_1D64_78BD_642F;

/// One light's state and its model inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LightState {
    light: LightIndex,
    #[serde(with = "exact")]
    saturation_veh_h: f64,
    /// Arrival rate when the profile and the demand scale are 1, veh/h.
    #[serde(with = "exact")]
    demand_veh_h: f64,
    /// Displayed green, s (0: the light is in no phase).
    #[serde(with = "exact")]
    green_s: f64,
    #[serde(with = "exact")]
    red_s: f64,
    /// Vehicles waiting at the end of the last period.
    queue: u64,
    /// Fractional capacity carried to the next period, 0..1 vehicles.
    #[serde(with = "exact")]
    carry: f64,
    lamps: Lamps,
    arrived: u64,
    served: u64,
    #[serde(with = "exact")]
    delay_veh_s: f64,
}

/// What one period did at one light.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Served {
    departures: u32,
    /// Degree of saturation: (queue at the start + arrivals) / capacity of the period.
    x: f64,
}

impl LightState {
    /// A light in no phase yet, nothing queued or counted, its lamps ok.
    fn new(light: LightIndex, saturation_veh_h: f64, demand_veh_h: f64) -> Self {
        LightState {
            light,
            saturation_veh_h,
            demand_veh_h,
            green_s: 0.0,
            red_s: 0.0,
            queue: 0,
            carry: 0.0,
            lamps: Lamps::default(),
            arrived: 0,
            served: 0,
            delay_veh_s: 0.0,
        }
    }

    /// Serves one period of `period_s` seconds in which `arrivals` vehicles arrived.
    fn advance(&mut self, arrivals: u32, period_s: f64, split: Split) -> Served {
        let lambda = split.green_ratio();
        let expected = model::capacity(self.saturation_veh_h, lambda, period_s);
        let total = expected + self.carry;
        let whole = total.floor();
        self.carry = total - whole;
        let capacity = whole.min(f64::from(MAX_VEHICLES)) as u64;
        let q0 = self.queue;
        let demand = q0 + u64::from(arrivals);
        let departures = demand.min(capacity);
        self.queue = demand - departures;
        let x = model::degree_of_saturation(demand as f64, expected);
        let d1 = model::webster_uniform_delay_s(split.cycle_s, lambda, x);
        self.delay_veh_s += 0.5 * (q0 + self.queue) as f64 * period_s + f64::from(arrivals) * d1;
        self.arrived += u64::from(arrivals);
        self.served += departures;
        Served {
            // At most MAX_VEHICLES, so it fits.
            departures: departures as u32,
            x,
        }
    }
}

/// One intersection's fixed data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct IntersectionState {
    id: IntersectionId,
    #[serde(with = "exact")]
    lat: f64,
    #[serde(with = "exact")]
    lon: f64,
    demand: Demand,
    /// Its lights are `lights[first_light .. first_light + n_lights]`.
    first_light: usize,
    n_lights: usize,
}

impl IntersectionState {
    fn range(&self) -> std::ops::Range<usize> {
        self.first_light..self.first_light + self.n_lights
    }
}

/// Everything that is saved and restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    config: SimConfig,
    /// Start of the next period, epoch ms.
    now_ms: i64,
    rng: Rng,
    intersections: Vec<IntersectionState>,
    lights: Vec<LightState>,
}

/// The state of one light, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightStatus {
    /// Vehicles waiting at the end of the last period.
    pub queue: u64,
    /// Lamp states.
    pub lamps: Lamps,
    /// Current displayed green, s (0 when the light is in no phase).
    pub green_s: f64,
    /// Current red, s.
    pub red_s: f64,
    /// Saturation flow, veh/h of green.
    pub saturation_veh_h: f64,
    /// Arrival rate when the time-of-day profile is 1, veh/h.
    pub demand_veh_h: f64,
    /// Vehicles arrived since the start.
    pub arrived: u64,
    /// Vehicles served (departed) since the start.
    pub served: u64,
    /// Total delay since the start, vehicle-seconds.
    pub delay_veh_s: f64,
}

/// Counts and delay summed over lights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Vehicles arrived.
    pub arrived: u64,
    /// Vehicles served.
    pub served: u64,
    /// Vehicles waiting now.
    pub queued: u64,
    /// Total delay, vehicle-seconds.
    pub delay_veh_s: f64,
}

impl Totals {
    /// Mean delay per served vehicle, s (0 before any is served).
    pub fn mean_delay_s_per_vehicle(&self) -> f64 {
        traffic_core::mean::mean(self.delay_veh_s, self.served)
    }

    fn add(&mut self, l: &LightState) {
        self.arrived += l.arrived;
        self.served += l.served;
        self.queued += l.queue;
        self.delay_veh_s += l.delay_veh_s;
    }
}

/// A simulated city. See the crate documentation for the model.
///
/// It serialises to its whole state (clock, queues, carried capacity, generator state, lamps,
/// delay accumulators, configuration), and deserialises to a simulator that continues exactly
/// where the saved one was.
#[derive(Clone, Debug)]
pub struct Simulator {
    state: State,
    /// Intersection id → position in `state.intersections`; rebuilt on restore.
    index: HashMap<IntersectionId, usize>,
}

impl Simulator {
    /// A simulator of `city` whose first period starts at `config.start_ms`, with the city's
    /// phases as its initial timings. Demand comes from each intersection's `extra` (see
    /// [`crate::demand`]); what is missing is drawn from the seed.
    pub fn new(city: &City, config: SimConfig) -> Result<Self, SimError> {
        city.validate()?;
        config.validate()?;
        let mut fill = Rng::seed_from_u64(config.seed ^ DEMAND_STREAM);
        let mut intersections = Vec::with_capacity(city.intersections.len());
        let mut lights = Vec::with_capacity(city.intersections.len() * 4);
        for (i, x) in city.intersections.iter().enumerate() {
            let drawn = Demand::draw(&mut fill);
            let demand = Demand::from_extra(
                &x.extra,
                drawn,
                &format!("intersections[{i}]."),
                config.min_speed_kmh,
            )?;
            let first_light = lights.len();
            for l in &x.lights {
                lights.push(LightState::new(
                    l.light,
                    l.saturation_veh_h,
                    demand.light_rate_veh_h(l.light),
                ));
            }
            intersections.push(IntersectionState {
                id: x.id.clone(),
                lat: x.lat,
                lon: x.lon,
                demand,
                first_light,
                n_lights: x.lights.len(),
            });
        }
        let mut sim = Self::from_state(State {
            now_ms: config.start_ms,
            rng: Rng::seed_from_u64(config.seed),
            config,
            intersections,
            lights,
        })?;
        for (i, x) in city.intersections.iter().enumerate() {
            sim.apply_timing(i, &x.phases)
                .map_err(|message| SimError::Timing {
                    id: x.id.clone(),
                    message,
                })?;
        }
        Ok(sim)
    }

    /// Checks a state (restored or new) and indexes it.
    fn from_state(state: State) -> Result<Self, SimError> {
        let bad = |m: String| Err(SimError::State(m));
        if let Err(e) = state.config.validate() {
            return bad(e.to_string());
        }
        if !state.rng.is_valid() {
            return bad("the generator state is all zero".into());
        }
        let mut next = 0;
        let mut index = HashMap::with_capacity(state.intersections.len());
        for (i, x) in state.intersections.iter().enumerate() {
            if x.first_light != next || x.n_lights > 4 {
                return bad(format!("{}: its lights are not in order", x.id));
            }
            next += x.n_lights;
            if index.insert(x.id.clone(), i).is_some() {
                return bad(format!("{} appears twice", x.id));
            }
        }
        if next != state.lights.len() {
            return bad(format!(
                "{} lights listed, {} present",
                next,
                state.lights.len()
            ));
        }
        Ok(Self { state, index })
    }

    /// Checks that every entry of `controls` names a known intersection and light and that
    /// its timings fit. [`Simulator::step`] skips entries that do not, so call this first when
    /// a bad control should be an error.
    pub fn check_controls(&self, controls: &Controls) -> Result<(), SimError> {
        for (id, phases) in &controls.timings {
            let i = *self
                .index
                .get(id)
                .ok_or_else(|| SimError::UnknownIntersection(id.clone()))?;
            self.check_timing(i, phases)
                .map_err(|message| SimError::Timing {
                    id: id.clone(),
                    message,
                })?;
        }
        for (id, light) in &controls.repairs {
            if self.slot(id, *light).is_none() {
                return Err(SimError::Timing {
                    id: id.clone(),
                    message: format!("a repair names light {light}, which it does not have"),
                });
            }
        }
        Ok(())
    }

    /// Simulates one period under `controls` and returns one reading per light, in city
    /// order, stamped with the end of the period.
    pub fn step(&mut self, controls: &Controls) -> Vec<Reading> {
        let mut out = Vec::with_capacity(self.state.lights.len());
        self.step_into(controls, &mut out);
        out
    }

    /// As [`Simulator::step`], appending the readings to `out` (whose allocation can then be
    /// reused from step to step).
    pub fn step_into(&mut self, controls: &Controls, out: &mut Vec<Reading>) {
        self.apply(controls);
        let State {
            config,
            now_ms,
            rng,
            intersections,
            lights,
        } = &mut self.state;
        let period_ms = i64::from(config.period_s) * 1000;
        let period_s = f64::from(config.period_s);
        let end_ms = *now_ms + period_ms;
        // The profile is evaluated once per step, at the middle of the period.
        let factor = config.profile.factor(*now_ms + period_ms / 2) * config.demand_scale;
        let to_mean = factor * period_s / 3600.0;
        let p_fail = config.lamp_failure_probability;
        out.reserve(lights.len());
        for x in intersections.iter() {
            let position = Some(Position {
                lat: x.lat,
                lon: x.lon,
            });
            for ls in &mut lights[x.range()] {
                let arrivals = rng.poisson(ls.demand_veh_h * to_mean);
                let split = Split::new(
                    ls.green_s,
                    ls.red_s,
                    config.yellow_s,
                    config.lost_time_per_phase_s,
                );
                let served = ls.advance(arrivals, period_s, split);
                let mean_speed_kmh = if served.departures == 0 {
                    0.0
                } else {
                    let v = model::bpr_speed_kmh(
                        x.demand.free_flow_kmh,
                        served.x,
                        config.min_speed_kmh,
                    );
                    ((v * 10.0).round() / 10.0).min(MAX_SPEED_KMH)
                };
                if rng.uniform() < p_fail {
                    let colour = LampColour::ALL[rng.below(3) as usize];
                    ls.lamps.set(colour, LampState::Broken);
                }
                out.push(Reading {
                    intersection_id: x.id.clone(),
                    light: ls.light,
                    ts_ms: end_ms,
                    vehicles: served.departures,
                    mean_speed_kmh,
                    lamps: ls.lamps,
                    position,
                });
            }
        }
        *now_ms = end_ms;
    }

    /// Applies the valid entries of `controls`; invalid ones are skipped.
    fn apply(&mut self, controls: &Controls) {
        for (id, phases) in &controls.timings {
            if let Some(&i) = self.index.get(id) {
                // An invalid timing leaves the last one in force.
                let _ = self.apply_timing(i, phases);
            }
        }
        for (id, light) in &controls.repairs {
            if let Some(k) = self.slot(id, *light) {
                self.state.lights[k].lamps = Lamps::default();
            }
        }
    }

    /// Checks that `phases` fit intersection `i`: positive green, non-negative red, its own
    /// lights only, each in one phase at most.
    fn check_timing(&self, i: usize, phases: &[Phase]) -> Result<(), String> {
        let x = &self.state.intersections[i];
        let lights = &self.state.lights[x.range()];
        if phases.is_empty() {
            return Err("needs at least one phase".into());
        }
        let mut seen = [false; 4];
        for (p, phase) in phases.iter().enumerate() {
            if !(phase.green_s.is_finite() && phase.green_s > 0.0) {
                return Err(format!("phases[{p}].green_s must be positive"));
            }
            if !(phase.red_s.is_finite() && phase.red_s >= 0.0) {
                return Err(format!("phases[{p}].red_s must be zero or more"));
            }
            for &l in &phase.lights {
                if !lights.iter().any(|s| s.light == l) {
                    return Err(format!(
                        "phases[{p}] names light {l}, which it does not have"
                    ));
                }
                if std::mem::replace(&mut seen[l.get()], true) {
                    return Err(format!("light {l} is in more than one phase"));
                }
            }
        }
        Ok(())
    }

    /// Sets intersection `i`'s timings from `phases` (checked first). A light in no phase
    /// gets no green.
    fn apply_timing(&mut self, i: usize, phases: &[Phase]) -> Result<(), String> {
        self.check_timing(i, phases)?;
        let range = self.state.intersections[i].range();
        for ls in &mut self.state.lights[range] {
            match phases.iter().find(|p| p.lights.contains(&ls.light)) {
                Some(p) => {
                    ls.green_s = p.green_s;
                    ls.red_s = p.red_s;
                }
                None => {
                    // All red, in a cycle as long as the first phase's.
                    ls.green_s = 0.0;
                    ls.red_s = phases[0].green_s + phases[0].red_s;
                }
            }
        }
        Ok(())
    }

    /// Position of light `light` of `id` in the light table.
    fn slot(&self, id: &IntersectionId, light: LightIndex) -> Option<usize> {
        let x = &self.state.intersections[*self.index.get(id)?];
        x.range().find(|&k| self.state.lights[k].light == light)
    }

    /// Breaks one lamp now (fault injection); it reads broken until a repair. Returns whether
    /// the light exists.
    pub fn break_lamp(
        &mut self,
        id: &IntersectionId,
        light: LightIndex,
        colour: LampColour,
    ) -> bool {
        match self.slot(id, light) {
            Some(k) => {
                self.state.lights[k].lamps.set(colour, LampState::Broken);
                true
            }
            None => false,
        }
    }

    /// The state of one light.
    pub fn light(&self, id: &IntersectionId, light: LightIndex) -> Option<LightStatus> {
        let l = &self.state.lights[self.slot(id, light)?];
        Some(LightStatus {
            queue: l.queue,
            lamps: l.lamps,
            green_s: l.green_s,
            red_s: l.red_s,
            saturation_veh_h: l.saturation_veh_h,
            demand_veh_h: l.demand_veh_h,
            arrived: l.arrived,
            served: l.served,
            delay_veh_s: l.delay_veh_s,
        })
    }

    /// The demand of intersection `id`.
    pub fn demand(&self, id: &IntersectionId) -> Option<Demand> {
        Some(self.state.intersections[*self.index.get(id)?].demand)
    }

    /// Totals over the whole city since the start.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for l in &self.state.lights {
            t.add(l);
        }
        t
    }

    /// Totals over one intersection's lights since the start.
    pub fn intersection_totals(&self, id: &IntersectionId) -> Option<Totals> {
        let x = &self.state.intersections[*self.index.get(id)?];
        let mut t = Totals::default();
        for l in &self.state.lights[x.range()] {
            t.add(l);
        }
        Some(t)
    }

    /// The model's mean delay per served vehicle over the whole city since the start, s.
    pub fn mean_delay_s_per_vehicle(&self) -> f64 {
        self.totals().mean_delay_s_per_vehicle()
    }

    /// Start of the next period (the end of the last one), epoch ms.
    pub fn now_ms(&self) -> i64 {
        self.state.now_ms
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// Number of intersections.
    pub fn len(&self) -> usize {
        self.state.intersections.len()
    }

    /// Whether the city has no intersections.
    pub fn is_empty(&self) -> bool {
        self.state.intersections.is_empty()
    }

    /// Readings per step (the number of lights).
    pub fn readings_per_step(&self) -> usize {
        self.state.lights.len()
    }

    /// The intersection ids, in city order.
    pub fn ids(&self) -> impl Iterator<Item = &IntersectionId> {
        self.state.intersections.iter().map(|x| &x.id)
    }
}

impl Serialize for Simulator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Simulator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let state = State::deserialize(d)?;
        Simulator::from_state(state).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for Simulator {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light(saturation_veh_h: f64) -> LightState {
        let first = LightIndex::all()
            .next()
            .unwrap_or_else(|| panic!("no light 0"));
        LightState {
            green_s: 30.0,
            red_s: 34.0,
            ..LightState::new(first, saturation_veh_h, 0.0)
        }
    }

    #[test]
    fn a_queue_grows_when_demand_exceeds_capacity_and_drains_when_it_does_not() {
        // s = 1800 veh/h, g/C = 30/68: capacity 1800 · 30/68 / 60 = 13.24 veh a minute.
        let split = Split::new(30.0, 34.0, 4.0, 4.0);
        let mut l = light(1800.0);
        let mut queues = Vec::new();
        for _ in 0..10 {
            l.advance(20, 60.0, split);
            queues.push(l.queue);
        }
        assert!(queues.windows(2).all(|w| w[1] > w[0]), "{queues:?}");
        // 10 minutes of 20 arrivals against 132.35 of capacity leave 67.65 → 67 or 68.
        assert!((67..=68).contains(&l.queue), "{}", l.queue);
        let peak = l.queue;
        let mut drained = Vec::new();
        for _ in 0..20 {
            l.advance(5, 60.0, split);
            drained.push(l.queue);
        }
        assert!(drained.windows(2).all(|w| w[1] <= w[0]), "{drained:?}");
        assert_eq!(l.queue, 0, "{drained:?}");
        assert!(peak > 0);
        // Nothing is lost: what arrived either left or waits.
        assert_eq!(l.arrived, l.served + l.queue);
    }

    #[test]
    fn fractional_capacity_is_carried_so_none_is_lost_to_rounding() {
        // 1800 · 30/68 / 60 = 13.235 veh per minute: over 68 minutes exactly 900.
        let split = Split::new(30.0, 34.0, 4.0, 4.0);
        let mut l = light(1800.0);
        let mut served = 0u64;
        for _ in 0..68 {
            served += u64::from(l.advance(100, 60.0, split).departures);
        }
        assert!((899..=900).contains(&served), "{served}");
    }

    #[test]
    fn delay_counts_the_waiting_queue_and_the_uniform_delay_of_arrivals() {
        let split = Split::new(30.0, 34.0, 4.0, 4.0);
        let mut l = light(1800.0);
        let s = l.advance(10, 60.0, split);
        // No queue before or after: only Webster's uniform delay.
        let d1 = model::webster_uniform_delay_s(68.0, 30.0 / 68.0, s.x);
        assert_eq!(l.queue, 0);
        assert!((l.delay_veh_s - 10.0 * d1).abs() < 1e-9);
        assert!((s.x - 10.0 / (1800.0 * 30.0 / 68.0 / 60.0)).abs() < 1e-12);
    }

    #[test]
    fn a_light_without_green_serves_nobody() {
        let split = Split::new(0.0, 64.0, 4.0, 4.0);
        let mut l = light(1800.0);
        let s = l.advance(7, 60.0, split);
        assert_eq!(s.departures, 0);
        assert_eq!(l.queue, 7);
        assert!(s.x.is_infinite());
    }
}
