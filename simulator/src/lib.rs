//! A simulated city for the traffic monitoring system: a grid of signalised intersections, a
//! queueing model of each approach, and the sensor readings it produces. The control loop is
//! closed: every step takes the timings currently in force (fixed, or Webster's from the merge)
//! and the lamp repairs, so retiming changes the traffic the sensors then see.
//!
//! ```
//! use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, generate_city};
//!
//! let city = generate_city(&CityConfig { intersections: 9, ..CityConfig::default() })?;
//! let mut sim = Simulator::new(&city, SimConfig::default())?;
//! let controls = Controls::fixed(&city); // fixed timings: pass the city's own phases
//! let readings = sim.step(&controls);   // one period (60 s): one reading per light
//! assert_eq!(readings.len(), 36);
//! let saved = serde_json::to_string(&sim)?; // the whole state, to resume exactly
//! # let _ = saved;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The city
//!
//! [`generate_city`] lays `n` intersections on a grid around a centre (Rome's Colosseum by
//! default, 300 m apart), ids `I-0001`…, four lights each (0 north approach, 1 east, 2 south,
//! 3 west), saturation flows drawn in 1500–1900 veh/h, phases `[0,2]` and `[1,3]` at green
//! 30 s / red 34 s (cycle 68 s with 4 s yellow). Arterial rows and columns carry more traffic;
//! each intersection's demand ([`Demand`]: level, major axis, minor ratio, free-flow speed) is
//! written into its `extra` map, where [`Simulator::new`] reads it back (see [`generate`]).
//!
//! # The model, per light and per period of `T` seconds (default 60)
//!
//! **Arrivals** are Poisson with mean `q·T/3600`, where the hourly rate is
//! `q = level × light factor × profile(t) × demand_scale`: the light factor is 1 on the
//! intersection's major axis and its minor ratio on the other; `profile(t)` is the working-day
//! curve of [`model::daily_factor`] in UTC of the simulated clock (0.06 at night, ~1 at the
//! 08:00 and 17:30 peaks, ~0.6 at noon), evaluated at the middle of the period.
//!
//! **Capacity** is the saturation flow `s` times the light's effective green share:
//! `c = s · (g/C) · T/3600` vehicles, with cycle `C = G + Y + R` (displayed green, yellow, red)
//! and effective green `g = G + Y − l` (`l` the lost time per phase; with the defaults
//! `Y = l = 4 s` it equals the displayed green, the convention of the core's Webster). The
//! fractional part of `c` plus the previous carry is carried to the next period, so no
//! capacity is lost to rounding.
//!
//! **Departures** are `min(queue + arrivals, ⌊c + carry⌋)`; the rest waits in the queue for the
//! next period. A reading's `vehicles` is the departures of the period: what a stop-line
//! detector counts.
//!
//! **Speed** falls with the degree of saturation `x = (queue + arrivals) / c` by the Bureau of
//! Public Roads volume-delay function (BPR, *Traffic Assignment Manual*, US Department of
//! Commerce, 1964), `t = t0·(1 + 0.15·x⁴)`, so `v = v_f / (1 + 0.15·x⁴)`, floored at
//! [`SimConfig::min_speed_kmh`] and rounded to 0.1 km/h; `v_f` is the intersection's
//! free-flow speed (40–65 km/h). A period without departures reports speed 0.
//!
//! **Delay** is accumulated per light in vehicle-seconds: the overflow queue integrated over the
//! period (trapezoid, `½·(Q_start + Q_end)·T`) plus, for each arriving vehicle, Webster's uniform
//! delay (F. V. Webster, *Traffic Signal Settings*, Road Research Technical Paper No. 39, HMSO,
//! London, 1958): `d1 = 0.5·C·(1 − g/C)² / (1 − min(x, 1)·g/C)`. Divided by the vehicles served
//! it gives [`Simulator::mean_delay_s_per_vehicle`], the figure to compare fixed and adaptive
//! timings by.
//!
//! **Lamps**: at each reading, with probability [`SimConfig::lamp_failure_probability`], one of
//! the light's lamps (red, yellow or green, uniformly) breaks; it reads `broken` in every later
//! reading until a repair arrives in [`Controls::repairs`].
//!
//! # Control, determinism and resuming
//!
//! [`Simulator::step`] takes [`Controls`]: phases per intersection (those left out keep their
//! last timings) and the lights repaired since the previous step. [`Controls::fixed`] gives the
//! city's own phases, for a fixed-timing run.
//!
//! All randomness comes from one xoshiro256** generator ([`rng`]) seeded from
//! [`SimConfig::seed`]: the same city, seed and controls give the same readings bit for bit.
//! The draws do not depend on the timings, so a fixed and an adaptive run with the same seed
//! see the very same arrivals and lamp failures (common random numbers): their difference is
//! the control's alone. A [`Simulator`] serialises to its whole state, floats written so that
//! they parse back to the same bits ([`exact`]), and a restored simulator continues exactly
//! as the uninterrupted one.
//!
//! # Cost
//!
//! State lives in two flat vectors in city order (intersections, lights); ids are hashed only
//! to look up controls. A step allocates only its output and the id of each reading (the
//! reading type owns its id).

pub mod demand;
pub mod error;
pub mod exact;
pub mod generate;
pub mod model;
pub mod rng;
pub mod settings;
pub mod sim;

pub use demand::{Axis, Demand};
pub use error::SimError;
pub use generate::{CityConfig, generate_city};
pub use model::DemandProfile;
pub use sim::{Controls, LightStatus, SimConfig, Simulator, Totals};
