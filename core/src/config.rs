//! The engine's parameters, read once from the environment by each function's `main` (the core
//! only takes a lookup function, it never reads the environment itself).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAFFIC_WINDOWS` | `15m,1h,24h` | window lengths; each a multiple of the shortest |
//! | `TRAFFIC_ALLOWED_LATENESS` | `2m` | watermark = greatest event time − this |
//! | `TRAFFIC_MAX_CLOCK_SKEW` | `5m` | a reading stamped more than this after its arrival in the stream is rejected as `future` |
//! | `TRAFFIC_MIN_READING_INTERVAL` | `5s` | a light's readings closer together than this are rejected as too frequent |
//! | `TRAFFIC_IDLE_TIMEOUT` | `5m` | a shard current with its stream that has accepted no reading this long stops holding the watermark |
//! | `TRAFFIC_SILENCE_AFTER` | `5m` | a light that sends no reading this long (event time, judged by the merge at the closed mark) raises a `sensor_silent` alarm (and Webster counts a phase none of whose lights is heard as loaded as the busiest heard one); `0` turns the judgment off; at most the shortest window (the default is capped at it) |
//! | `TRAFFIC_MERGE_MAX_PANES` | `16` | most panes (with readings) one merge run compacts; a merge behind by more (after a stall) catches up over several runs |
//! | `TRAFFIC_DIGEST_SIZE` | `200` ([`DEFAULT_DIGEST_SIZE`](crate::digest::DEFAULT_DIGEST_SIZE)) | t-digest compression |
//! | `TRAFFIC_TOP_K` | `10` | length of the speed ranking |
//! | `WEBSTER_LOST_TIME_S` | `4` | lost time per phase, s |
//! | `WEBSTER_YELLOW_S` | `4` | yellow (amber) time per phase, s |
//! | `WEBSTER_MIN_CYCLE_S` / `WEBSTER_MAX_CYCLE_S` | `30` / `120` | cycle clamp, s |
//! | `WEBSTER_SATURATED_Y` | `0.9` | at or above this total ratio the cycle is the maximum |
//! | `WEBSTER_MIN_GREEN_S` | `5` | shortest effective green, s |
//! | `DEMAND_ESTIMATE` | `off` | `on`: the retiming reads each light's estimated demand and sizes the cycle for a target degree of saturation ([`crate::demand`]); `off`: served counts and Webster's cycle |
//! | `DEMAND_SATURATED_X` | `0.9` | degree of saturation at or above which a light counts as at capacity |
//! | `DEMAND_OVERFLOW` | `0.25` | a light at capacity is estimated to ask for this fraction more than it served |
//! | `DEMAND_TARGET_X` | `0.9` | the degree of saturation the cycle is sized for (0 to 1) |
//! | `WEBSTER_MIN_CHANGE_S` | `3` | an adaptive intersection is retimed only when a phase's green or red moves by at least this, s; `0` applies every proposal |
//! | `PLAN_MIN_GREEN_S` | `5` | shortest minimum green of a plan for actuated controllers, s, 0 to 3600 ([`crate::plan`]) |
//! | `PLAN_MIN_GREEN_FACTOR` | `0.4` | a plan's minimum green as a fraction (0 to 1) of Webster's green |
//! | `PLAN_MAX_GREEN_FACTOR` | `3` | a plan's maximum green as a multiple (1 to 100) of Webster's green |

use crate::demand::DemandConfig;
use crate::digest::DEFAULT_DIGEST_SIZE;
use crate::plan::PlanConfig;
use crate::ranking::TOP_K;
use crate::webster::WebsterConfig;
use crate::window::{WindowLength, parse_duration_ms};
use std::str::FromStr;

/// Everything the engine's computations depend on.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Window lengths, ascending; each a multiple of the first (the pane length).
    windows: Vec<WindowLength>,
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: i64,
    /// Largest accepted distance of a reading's event time after its arrival, ms.
    pub max_clock_skew_ms: i64,
    /// Shortest accepted distance between two readings of one light, ms.
    pub min_reading_interval_ms: i64,
    /// How long a shard current with its stream may accept nothing before it stops holding the
    /// watermark, ms (processing time; `crate::lineage`).
    pub idle_timeout_ms: i64,
    /// How long a light may send nothing (event time) before the merge raises a sensor-silent
    /// alarm, ms; 0: never (`crate::silence`).
    pub silence_after_ms: i64,
    /// Most panes with readings one merge run compacts (at least 1): after a stall the merge
    /// catches up over several runs, each well within the function's time limit.
    pub merge_max_panes: usize,
    /// t-digest compression.
    pub digest_size: usize,
    /// Length of the speed ranking.
    pub top_k: usize,
    /// Webster's parameters.
    pub webster: WebsterConfig,
    /// How demand is estimated from served counts.
    pub demand: DemandConfig,
    /// How plans for actuated controllers are drawn from the timings (`PLAN_*`).
    pub plan: PlanConfig,
}

/// Default of [`EngineConfig::merge_max_panes`]: four hours of 15-minute panes a run. A pane of
/// 10,000 intersections is about 3 MB of deltas, read and compacted in well under a second, so
/// a run stays far inside the merge's 240 s limit, and a merge scheduled every 5 minutes
/// catches up on a day's stall in about half an hour.
pub const DEFAULT_MERGE_MAX_PANES: usize = 16;

/// A configuration value that is not valid; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            windows: [900_000, 3_600_000, 86_400_000]
                .into_iter()
                .filter_map(WindowLength::from_ms)
                .collect(),
            allowed_lateness_ms: 120_000,
            max_clock_skew_ms: 300_000,
            min_reading_interval_ms: 5_000,
            idle_timeout_ms: 300_000,
            silence_after_ms: 300_000,
            merge_max_panes: DEFAULT_MERGE_MAX_PANES,
            digest_size: DEFAULT_DIGEST_SIZE,
            top_k: TOP_K,
            webster: WebsterConfig::default(),
            demand: DemandConfig::default(),
            plan: PlanConfig::default(),
        }
    }
}

fn bad(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.into(),
        message: message.into(),
    }
}

impl EngineConfig {
    /// A configuration with other window lengths (validated as [`EngineConfig::set_windows`]).
    pub fn with_windows(mut self, windows: &[WindowLength]) -> Result<Self, ConfigError> {
        self.set_windows(windows)?;
        Ok(self)
    }

    /// Sets the window lengths: at least one; each a multiple of the shortest, so every
    /// window is a union of panes (windows of the shortest length).
    pub fn set_windows(&mut self, windows: &[WindowLength]) -> Result<(), ConfigError> {
        let mut w = windows.to_vec();
        w.sort();
        w.dedup();
        let Some(first) = w.first().copied() else {
            return Err(bad("TRAFFIC_WINDOWS", "needs at least one window length"));
        };
        if let Some(odd) = w.iter().find(|l| l.ms() % first.ms() != 0) {
            return Err(bad(
                "TRAFFIC_WINDOWS",
                format!("{odd} is not a multiple of the shortest window {first}"),
            ));
        }
        self.windows = w;
        Ok(())
    }

    /// The window lengths, ascending.
    pub fn windows(&self) -> &[WindowLength] {
        &self.windows
    }

    /// The pane length: the shortest window. Ingest keeps state per pane; longer windows are
    /// unions of panes. It is also the control window Webster's method reads flows from.
    pub fn pane(&self) -> WindowLength {
        self.windows[0]
    }

    /// Whether a reading stamped `ts_ms` that arrived in the stream at `arrival_ms` (when
    /// known) is *future*: stamped more than the allowed clock skew after its arrival.
    pub fn is_future(&self, ts_ms: i64, arrival_ms: Option<i64>) -> bool {
        arrival_ms.is_some_and(|a| ts_ms > a.saturating_add(self.max_clock_skew_ms))
    }

    /// The longest window.
    pub fn longest(&self) -> WindowLength {
        self.windows[self.windows.len() - 1]
    }

    /// Reads the configuration through `lookup` (such as `|k| std::env::var(k).ok()`);
    /// unset variables keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(v) = lookup("TRAFFIC_WINDOWS") {
            let lengths = v
                .split(',')
                .map(|s| WindowLength::from_str(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("TRAFFIC_WINDOWS", e.to_string()))?;
            c.set_windows(&lengths)?;
        }
        if let Some(v) = lookup("TRAFFIC_ALLOWED_LATENESS") {
            c.allowed_lateness_ms = parse_duration_ms(&v)
                .map_err(|e| bad("TRAFFIC_ALLOWED_LATENESS", e.to_string()))?;
        }
        for (name, slot) in [
            ("TRAFFIC_MAX_CLOCK_SKEW", &mut c.max_clock_skew_ms),
            (
                "TRAFFIC_MIN_READING_INTERVAL",
                &mut c.min_reading_interval_ms,
            ),
            ("TRAFFIC_IDLE_TIMEOUT", &mut c.idle_timeout_ms),
        ] {
            if let Some(v) = lookup(name) {
                *slot = parse_duration_ms(&v).map_err(|e| bad(name, e.to_string()))?;
            }
        }
        if let Some(v) = lookup("TRAFFIC_SILENCE_AFTER") {
            c.silence_after_ms = match v.trim() {
                "0" => 0,
                t => {
                    parse_duration_ms(t).map_err(|e| bad("TRAFFIC_SILENCE_AFTER", e.to_string()))?
                }
            };
            // The merge judges silences from the deltas it reads: the panes from the one
            // holding its previous closed mark on, so it sees back a pane at a pane boundary, no
            // further. (The default is capped at the pane by the merge, for short windows.)
            if c.silence_after_ms > c.pane().ms() {
                return Err(bad(
                    "TRAFFIC_SILENCE_AFTER",
                    format!(
                        "must be at most the shortest window ({}), got {}",
                        crate::window::format_duration_ms(c.pane().ms()),
                        crate::window::format_duration_ms(c.silence_after_ms)
                    ),
                ));
            }
        }
        let int = |name: &str, min: u64, max: u64| -> Result<Option<u64>, ConfigError> {
            lookup(name)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(bad(
                        name,
                        format!("must be an integer {min}..={max}, got {v:?}"),
                    )),
                })
                .transpose()
        };
        if let Some(n) = int("TRAFFIC_DIGEST_SIZE", 10, 10_000)? {
            c.digest_size = n as usize;
        }
        if let Some(n) = int("TRAFFIC_TOP_K", 1, 1000)? {
            c.top_k = n as usize;
        }
        if let Some(n) = int("TRAFFIC_MERGE_MAX_PANES", 1, 100_000)? {
            c.merge_max_panes = n as usize;
        }
        let num = |name: &str| -> Result<Option<f64>, ConfigError> {
            lookup(name)
                .map(|v| match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                    _ => Err(bad(
                        name,
                        format!("must be a non-negative number, got {v:?}"),
                    )),
                })
                .transpose()
        };
        let w = &mut c.webster;
        for (name, slot) in [
            ("WEBSTER_LOST_TIME_S", &mut w.lost_time_per_phase_s),
            ("WEBSTER_YELLOW_S", &mut w.yellow_s),
            ("WEBSTER_MIN_CYCLE_S", &mut w.min_cycle_s),
            ("WEBSTER_MAX_CYCLE_S", &mut w.max_cycle_s),
            ("WEBSTER_SATURATED_Y", &mut w.saturated_y),
            ("WEBSTER_MIN_GREEN_S", &mut w.min_green_s),
            ("WEBSTER_MIN_CHANGE_S", &mut w.min_change_s),
        ] {
            if let Some(x) = num(name)? {
                *slot = x;
            }
        }
        c.webster.validate().map_err(|m| bad("WEBSTER_*", m))?;
        if let Some(v) = lookup("DEMAND_ESTIMATE") {
            c.demand.estimate = match v.trim() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(bad(
                        "DEMAND_ESTIMATE",
                        format!("must be on or off, got {v:?}"),
                    ));
                }
            };
        }
        let d = &mut c.demand;
        for (name, slot) in [
            ("DEMAND_SATURATED_X", &mut d.saturated_x),
            ("DEMAND_OVERFLOW", &mut d.overflow),
            ("DEMAND_TARGET_X", &mut d.target_x),
        ] {
            if let Some(x) = num(name)? {
                *slot = x;
            }
        }
        c.demand.validate().map_err(|m| bad("DEMAND_*", m))?;
        c.plan = PlanConfig::from_lookup(&lookup).map_err(|m| {
            let name = m.split_whitespace().next().unwrap_or("PLAN_*").to_owned();
            bad(&name, m)
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<EngineConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EngineConfig::from_lookup(|k| m.get(k).cloned())
    }

    /// The error (`NAME: message`) of setting `name` alone to `value`, which must be refused.
    fn refused(name: &str, value: &str) -> String {
        match from(&[(name, value)]) {
            Ok(_) => panic!("{name}={value} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_the_assignments_windows() {
        let c = from(&[]).unwrap_or_else(|e| panic!("{e}"));
        let labels: Vec<String> = c.windows().iter().map(|w| w.to_string()).collect();
        assert_eq!(labels, ["15m", "1h", "24h"]);
        assert_eq!(c.allowed_lateness_ms, 120_000);
        assert_eq!(c.silence_after_ms, 300_000);
    }

    #[test]
    fn silence_after_takes_a_duration_or_zero_for_off() {
        let c = from(&[("TRAFFIC_SILENCE_AFTER", "10m")]);
        assert_eq!(c.map(|c| c.silence_after_ms), Ok(600_000));
        let c = from(&[("TRAFFIC_SILENCE_AFTER", "0")]);
        assert_eq!(c.map(|c| c.silence_after_ms), Ok(0));
        assert!(refused("TRAFFIC_SILENCE_AFTER", "soon").starts_with("TRAFFIC_SILENCE_AFTER: "));
        let e = refused("TRAFFIC_SILENCE_AFTER", "20m");
        assert!(e.contains("at most the shortest window (15m)"), "{e}");
    }

    #[test]
    fn windows_must_be_multiples_of_the_shortest() {
        assert!(refused("TRAFFIC_WINDOWS", "10m,15m").contains("not a multiple"));
        let c = from(&[("TRAFFIC_WINDOWS", "4m, 1m ,16m")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.pane().ms(), 60_000);
    }

    #[test]
    fn the_demand_estimator_is_off_by_default_and_its_variables_are_checked() {
        let c = from(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.demand, DemandConfig::default());
        assert!(!c.demand.estimate);
        let c = from(&[("DEMAND_ESTIMATE", "on"), ("DEMAND_OVERFLOW", "0.5")]);
        assert_eq!(c.as_ref().map(|c| c.demand.estimate), Ok(true));
        assert_eq!(c.map(|c| c.demand.overflow), Ok(0.5));
        assert!(refused("DEMAND_ESTIMATE", "maybe").starts_with("DEMAND_ESTIMATE: "));
        assert!(refused("DEMAND_TARGET_X", "1.5").contains("DEMAND_TARGET_X"));
    }

    #[test]
    fn the_plan_variables_set_the_plan_config_and_a_bad_one_is_named() {
        let c = from(&[("PLAN_MAX_GREEN_FACTOR", "2"), ("PLAN_MIN_GREEN_S", "3")]);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.plan.max_green_factor, 2.0);
        assert_eq!(c.plan.min_green_s, 3.0);
        assert_eq!(
            c.plan.min_green_factor,
            PlanConfig::default().min_green_factor
        );
        assert!(refused("PLAN_MIN_GREEN_FACTOR", "2").starts_with("PLAN_MIN_GREEN_FACTOR: "));
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        assert!(refused("WEBSTER_MAX_CYCLE_S", "lots").starts_with("WEBSTER_MAX_CYCLE_S: "));
        assert!(refused("WEBSTER_MIN_CYCLE_S", "200").contains("cycle"));
    }
}
