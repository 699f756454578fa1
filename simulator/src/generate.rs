//! A generated city: a grid of signalised intersections around a centre.
//!
//! Intersection `i` (0-based) sits in row `i / cols` and column `i % cols` of a grid of
//! `cols = ⌈√n⌉` columns, `spacing_m` apart, centred on the configured point; its id is
//! `I-0001`, `I-0002`, … (at least four digits). Every intersection has four lights (0 north
//! approach, 1 east, 2 south, 3 west) and two phases, `[0,2]` and `[1,3]`, with the same
//! initial timings.
//!
//! Every fourth row (an east–west arterial) and every fourth column (a north–south arterial),
//! counted from the central ones, carry more traffic:
//!
//! | crossing             | demand level, veh/h | major axis        | minor ratio | free flow, km/h |
//! |----------------------|---------------------|-------------------|-------------|-----------------|
//! | arterial × arterial  | 600–800             | either            | 0.55–0.75   | 50–60           |
//! | arterial × local     | 450–700             | along the arterial| 0.30–0.50   | 50–65           |
//! | local × local        | 120–350             | either            | 0.50–0.90   | 40–50           |
//!
//! and the level is scaled by 1.15 at the centre down to 0.85 at the farthest corner. All
//! values are rounded (integers for veh/h, 0.01 for ratios, 0.1 km/h, 1e-6 degrees) so that
//! they print short and parse back exactly.

use crate::demand::{Axis, Demand, approach, round_to};
use crate::error::{SimError, config};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use traffic_core::{City, Intersection, IntersectionId, Light, LightIndex, Phase};

/// Largest city the generator makes.
pub const MAX_INTERSECTIONS: usize = 1_000_000;

/// Metres per degree of latitude on a sphere of radius 6,371 km.
const M_PER_DEG: f64 = 6_371_000.0 * std::f64::consts::PI / 180.0;

/// What city to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CityConfig {
    /// Number of intersections, 1..=1,000,000.
    pub intersections: usize,
    /// Latitude of the grid's centre, degrees.
    pub centre_lat: f64,
    /// Longitude of the grid's centre, degrees.
    pub centre_lon: f64,
    /// Distance between neighbouring intersections, metres.
    pub spacing_m: f64,
    /// Seed of the city's random values (saturation flows, demand).
    pub seed: u64,
    /// Lowest saturation flow of a light, veh/h of green.
    pub saturation_min_veh_h: f64,
    /// Highest saturation flow of a light, veh/h of green.
    pub saturation_max_veh_h: f64,
    /// Initial green of every phase, s.
    pub green_s: f64,
    /// Initial red of every phase, s (the cycle is green + 4 s yellow + red).
    pub red_s: f64,
}

impl Default for CityConfig {
    fn default() -> Self {
        Self {
            intersections: 50,
            centre_lat: 41.8902,
            centre_lon: 12.4922,
            spacing_m: 300.0,
            seed: 1,
            saturation_min_veh_h: 1500.0,
            saturation_max_veh_h: 1900.0,
            green_s: 30.0,
            red_s: 34.0,
        }
    }
}

impl CityConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=MAX_INTERSECTIONS).contains(&self.intersections) {
            return Err(config(
                "intersections",
                format!("must be 1..={MAX_INTERSECTIONS}"),
            ));
        }
        if !(self.centre_lat.is_finite() && (-89.0..=89.0).contains(&self.centre_lat)) {
            return Err(config("centre_lat", "must be -89..=89"));
        }
        if !(self.centre_lon.is_finite() && (-180.0..=180.0).contains(&self.centre_lon)) {
            return Err(config("centre_lon", "must be -180..=180"));
        }
        if !(self.spacing_m.is_finite() && self.spacing_m > 0.0) {
            return Err(config("spacing_m", "must be a positive number of metres"));
        }
        let (lo, hi) = (self.saturation_min_veh_h, self.saturation_max_veh_h);
        if !(lo.is_finite() && hi.is_finite() && lo >= 1.0 && lo <= hi) {
            return Err(config(
                "saturation_min_veh_h",
                "need 1 <= saturation_min_veh_h <= saturation_max_veh_h",
            ));
        }
        if !(self.green_s.is_finite() && self.green_s > 0.0) {
            return Err(config("green_s", "must be positive"));
        }
        if !(self.red_s.is_finite() && self.red_s >= 0.0) {
            return Err(config("red_s", "must be zero or more"));
        }
        Ok(())
    }
}

/// Generates the city `cfg` describes. The same configuration gives the same city.
pub fn generate_city(cfg: &CityConfig) -> Result<City, SimError> {
    cfg.validate()?;
    let n = cfg.intersections;
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols);
    let (mid_r, mid_c) = ((rows - 1) as f64 / 2.0, (cols - 1) as f64 / 2.0);
    let (art_r, art_c) = (rows / 2, cols / 2);
    let max_dist = (mid_r * mid_r + mid_c * mid_c).sqrt().max(1.0);
    let cos_lat = cfg.centre_lat.to_radians().cos();
    let mut rng = Rng::seed_from_u64(cfg.seed);
    let mut intersections = Vec::with_capacity(n);
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        // Row 0 is the northernmost.
        let north_m = (mid_r - r as f64) * cfg.spacing_m;
        let east_m = (c as f64 - mid_c) * cfg.spacing_m;
        let lat = round_to(cfg.centre_lat + north_m / M_PER_DEG, 1e6);
        let lon = wrap_lon(round_to(
            cfg.centre_lon + east_m / (M_PER_DEG * cos_lat),
            1e6,
        ));
        if !(-90.0..=90.0).contains(&lat) {
            return Err(config(
                "spacing_m",
                "the grid reaches beyond a pole; use fewer intersections or a smaller spacing",
            ));
        }
        let id = IntersectionId::parse(&format!("I-{:04}", i + 1))
            .map_err(|e| config("intersections", e.to_string()))?;

        let lights = LightIndex::all()
            .map(|l| {
                let s = round_to(
                    rng.range(cfg.saturation_min_veh_h, cfg.saturation_max_veh_h),
                    1.0,
                );
                let mut extra = Map::new();
                extra.insert("approach".into(), Value::from(approach(l)));
                Light {
                    light: l,
                    saturation_veh_h: s,
                    extra,
                }
            })
            .collect();

        let ew_arterial = r.abs_diff(art_r) % 4 == 0;
        let ns_arterial = c.abs_diff(art_c) % 4 == 0;
        let dist = ((r as f64 - mid_r).powi(2) + (c as f64 - mid_c).powi(2)).sqrt();
        let centrality = 1.15 - 0.3 * dist / max_dist;
        let demand = draw_demand(&mut rng, ew_arterial, ns_arterial, centrality);

        let mut extra = Map::new();
        extra.insert(
            "name".into(),
            Value::from(format!("Grid {}/{}", r + 1, c + 1)),
        );
        demand.write_extra(&mut extra);
        intersections.push(Intersection {
            id,
            lat,
            lon,
            lights,
            phases: vec![
                phase(&[0, 2], cfg.green_s, cfg.red_s),
                phase(&[1, 3], cfg.green_s, cfg.red_s),
            ],
            retimed_from: None,
            control: Default::default(),
            proposal: None,
            plan: None,
            extra,
        });
    }
    let city = City {
        intersections,
        extra: Map::new(),
    };
    city.validate()?;
    Ok(city)
}

/// Draws one intersection's demand by its class; always four draws.
fn draw_demand(rng: &mut Rng, ew_arterial: bool, ns_arterial: bool, centrality: f64) -> Demand {
    let u_level = rng.uniform();
    let u_ratio = rng.uniform();
    let u_speed = rng.uniform();
    let u_axis = rng.below(2);
    let either = if u_axis == 0 {
        Axis::NorthSouth
    } else {
        Axis::EastWest
    };
    let lerp = |lo: f64, hi: f64, u: f64| lo + (hi - lo) * u;
    let (level, axis, ratio, speed) = match (ew_arterial, ns_arterial) {
        (true, true) => (
            lerp(600.0, 800.0, u_level),
            either,
            lerp(0.55, 0.75, u_ratio),
            lerp(50.0, 60.0, u_speed),
        ),
        (true, false) => (
            lerp(450.0, 700.0, u_level),
            Axis::EastWest,
            lerp(0.3, 0.5, u_ratio),
            lerp(50.0, 65.0, u_speed),
        ),
        (false, true) => (
            lerp(450.0, 700.0, u_level),
            Axis::NorthSouth,
            lerp(0.3, 0.5, u_ratio),
            lerp(50.0, 65.0, u_speed),
        ),
        (false, false) => (
            lerp(120.0, 350.0, u_level),
            either,
            lerp(0.5, 0.9, u_ratio),
            lerp(40.0, 50.0, u_speed),
        ),
    };
    Demand {
        level_veh_h: round_to(level * centrality, 1.0),
        major_axis: axis,
        minor_ratio: round_to(ratio, 100.0),
        free_flow_kmh: round_to(speed, 10.0),
    }
}

fn phase(lights: &[i64], green_s: f64, red_s: f64) -> Phase {
    Phase {
        lights: lights
            .iter()
            .filter_map(|&l| LightIndex::new(l).ok())
            .collect(),
        green_s,
        red_s,
        extra: Map::new(),
    }
}

fn wrap_lon(lon: f64) -> f64 {
    if (-180.0..=180.0).contains(&lon) {
        lon
    } else {
        round_to((lon + 180.0).rem_euclid(360.0) - 180.0, 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city(n: usize) -> City {
        generate_city(&CityConfig {
            intersections: n,
            ..CityConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_generated_city_is_valid_and_round_trips_through_json() {
        for n in [1, 2, 7, 50, 1000] {
            let c = city(n);
            assert_eq!(c.intersections.len(), n);
            assert_eq!(c.validate(), Ok(()));
            let json = serde_json::to_string(&c).unwrap_or_default();
            let back = City::parse(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, c);
        }
    }

    #[test]
    fn ids_are_zero_padded_to_four_digits_and_grow_beyond() {
        let c = city(10_001);
        assert_eq!(c.intersections[0].id.as_str(), "I-0001");
        assert_eq!(c.intersections[9_998].id.as_str(), "I-9999");
        assert_eq!(c.intersections[10_000].id.as_str(), "I-10001");
    }

    #[test]
    fn lights_name_their_approach_and_intersections_their_grid_cell() {
        let c = city(9);
        let x = &c.intersections[5];
        assert_eq!(x.extra.get("name"), Some(&Value::from("Grid 2/3")));
        let approaches: Vec<&Value> = x
            .lights
            .iter()
            .filter_map(|l| l.extra.get("approach"))
            .collect();
        assert_eq!(
            approaches,
            ["N", "E", "S", "W"]
                .map(Value::from)
                .iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(x.phases.len(), 2);
        assert_eq!(
            x.phases[0]
                .lights
                .iter()
                .map(|l| l.get())
                .collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!((x.phases[1].green_s, x.phases[1].red_s), (30.0, 34.0));
        for l in &x.lights {
            assert!((1500.0..=1900.0).contains(&l.saturation_veh_h));
        }
    }

    #[test]
    fn the_grid_is_centred_and_spaced_as_configured() {
        let c = city(9);
        let centre = &c.intersections[4];
        assert!((centre.lat - 41.8902).abs() < 1e-6 && (centre.lon - 12.4922).abs() < 1e-6);
        let north = &c.intersections[1];
        let east = &c.intersections[5];
        let dn = (north.lat - centre.lat) * M_PER_DEG;
        let de = (east.lon - centre.lon) * M_PER_DEG * 41.8902f64.to_radians().cos();
        assert!((dn - 300.0).abs() < 0.2, "{dn}");
        assert!((de - 300.0).abs() < 0.2, "{de}");
    }

    #[test]
    fn some_intersections_are_busy_and_some_quiet() {
        let c = city(400);
        let levels: Vec<f64> = c
            .intersections
            .iter()
            .filter_map(|x| x.extra.get("demand_level").and_then(Value::as_f64))
            .collect();
        assert_eq!(levels.len(), 400);
        assert!(levels.iter().any(|&l| l >= 550.0));
        assert!(levels.iter().any(|&l| l <= 250.0));
    }

    #[test]
    fn the_same_config_gives_the_same_city_and_another_seed_another() {
        let a = city(30);
        assert_eq!(a, city(30));
        let b = generate_city(&CityConfig {
            intersections: 30,
            seed: 2,
            ..CityConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
    }

    #[test]
    fn bad_configurations_name_their_field() {
        let e = generate_city(&CityConfig {
            intersections: 0,
            ..CityConfig::default()
        });
        assert!(matches!(
            e,
            Err(SimError::Config {
                field: "intersections",
                ..
            })
        ));
        let e = generate_city(&CityConfig {
            spacing_m: f64::NAN,
            ..CityConfig::default()
        });
        assert!(matches!(
            e,
            Err(SimError::Config {
                field: "spacing_m",
                ..
            })
        ));
    }
}
