//! The city file contract: the intersections, their lights and their signal phases.
//!
//! ```json
//! {"intersections":[{"id":"I-0001","lat":41.85,"lon":12.60,
//!   "lights":[{"light":0,"saturation_veh_h":1800},{"light":1,"saturation_veh_h":1800},
//!             {"light":2,"saturation_veh_h":1800},{"light":3,"saturation_veh_h":1800}],
//!   "phases":[{"lights":[0,2],"green_s":30,"red_s":34},{"lights":[1,3],"green_s":30,"red_s":34}]}]}
//! ```
//!
//! Fields beyond these (names, light positions, ...) are accepted and kept as written: they
//! round-trip through [`City`] untouched.

use crate::ids::{IntersectionId, LightIndex};
pub use crate::signal::{CityError, Light, MAX_PHASE_TIME_S, MIN_SATURATION_VEH_H, Phase, cycle_s};
use crate::signal::{Control, Plan, Proposal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A whole city: the content of a city file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct City {
    /// The intersections, in file order.
    pub intersections: Vec<Intersection>,
    /// Any other top-level fields, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One signalised intersection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intersection {
    /// Its id (the Kinesis partition key).
    pub id: IntersectionId,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Its lights (at most four: 0..=3).
    pub lights: Vec<Light>,
    /// Its signal phases; each phase gives green to a set of lights at once.
    pub phases: Vec<Phase>,
    /// Which window the current timings were computed from, when the merge retimed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retimed_from: Option<String>,
    /// How its timings are set (`crate::control`): omitted when adaptive without limits.
    #[serde(default, skip_serializing_if = "Control::is_default")]
    pub control: Control,
    /// Webster's latest proposal, kept beside the operator's plan while in manual mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
    /// The plan for an actuated controller the merge drew from the timings it wrote
    /// ([`crate::plan`]). Absent where the merge has not retimed the intersection since plans
    /// were stored, or an operator changed its phases or limits since: readers then draw it
    /// from the phases and limits ([`crate::plan::plan_of`]). Not the operator's to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Any other fields, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> CityError {
    CityError {
        field: field.into(),
        message: message.into(),
    }
}

impl Intersection {
    /// Checks the intersection's own consistency. `at` prefixes field names in errors.
    pub fn validate(&self, at: &str) -> Result<(), CityError> {
        self.id
            .reserved()
            .map_err(|e| err(format!("{at}id"), e.to_string()))?;
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(err(format!("{at}lat"), "must be -90..=90"));
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err(err(format!("{at}lon"), "must be -180..=180"));
        }
        if self.lights.is_empty() {
            return Err(err(format!("{at}lights"), "needs at least one light"));
        }
        let mut seen = BTreeSet::new();
        for (i, l) in self.lights.iter().enumerate() {
            if !seen.insert(l.light) {
                return Err(err(format!("{at}lights[{i}].light"), "appears twice"));
            }
            if !(l.saturation_veh_h.is_finite() && l.saturation_veh_h >= MIN_SATURATION_VEH_H) {
                return Err(err(
                    format!("{at}lights[{i}].saturation_veh_h"),
                    format!(
                        "must be a number of at least {MIN_SATURATION_VEH_H} vehicles per hour"
                    ),
                ));
            }
        }
        if self.phases.is_empty() {
            return Err(err(format!("{at}phases"), "needs at least one phase"));
        }
        let mut in_phase = BTreeSet::new();
        for (p, phase) in self.phases.iter().enumerate() {
            if phase.lights.is_empty() {
                return Err(err(
                    format!("{at}phases[{p}].lights"),
                    "needs at least one light",
                ));
            }
            for l in &phase.lights {
                if !seen.contains(l) {
                    return Err(err(
                        format!("{at}phases[{p}].lights"),
                        format!("light {l} is not one of the intersection's lights"),
                    ));
                }
                if !in_phase.insert(*l) {
                    return Err(err(
                        format!("{at}phases[{p}].lights"),
                        format!("light {l} is in more than one phase"),
                    ));
                }
            }
            if !(phase.green_s > 0.0 && phase.green_s <= MAX_PHASE_TIME_S) {
                return Err(err(
                    format!("{at}phases[{p}].green_s"),
                    format!("must be positive, at most {MAX_PHASE_TIME_S} s"),
                ));
            }
            if !(phase.red_s >= 0.0 && phase.red_s <= MAX_PHASE_TIME_S) {
                return Err(err(
                    format!("{at}phases[{p}].red_s"),
                    format!("must be zero or more, at most {MAX_PHASE_TIME_S} s"),
                ));
            }
        }
        if let Some(limits) = &self.control.limits {
            limits.validate(self.phases.len(), &format!("{at}control.limits."))?;
        }
        Ok(())
    }

    /// Whether the intersection has light `l`.
    pub fn has_light(&self, l: LightIndex) -> bool {
        self.lights.iter().any(|x| x.light == l)
    }

    /// Saturation flow of light `l`, veh/h.
    pub fn saturation(&self, l: LightIndex) -> Option<f64> {
        self.lights
            .iter()
            .find(|x| x.light == l)
            .map(|x| x.saturation_veh_h)
    }
}

impl City {
    /// Parses and validates a city file.
    pub fn parse(json: &str) -> Result<City, CityError> {
        let city: City = serde_json::from_str(json).map_err(|e| err("city", e.to_string()))?;
        city.validate()?;
        Ok(city)
    }

    /// Checks every intersection and that ids are unique.
    pub fn validate(&self) -> Result<(), CityError> {
        let mut ids = BTreeSet::new();
        for (i, x) in self.intersections.iter().enumerate() {
            x.validate(&format!("intersections[{i}]."))?;
            if !ids.insert(&x.id) {
                return Err(err(
                    format!("intersections[{i}].id"),
                    format!("{} appears twice", x.id),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"intersections":[{"id":"I-0001","lat":41.85,"lon":12.60,
      "lights":[{"light":0,"saturation_veh_h":1800},{"light":1,"saturation_veh_h":1800},
                {"light":2,"saturation_veh_h":1800},{"light":3,"saturation_veh_h":1800}],
      "phases":[{"lights":[0,2],"green_s":30,"red_s":34},{"lights":[1,3],"green_s":30,"red_s":34}]}]}"#;

    #[test]
    fn a_city_file_naming_an_intersection_by_an_internal_name_is_refused() {
        for name in ["_city", "not-ok", "_anything"] {
            let json = EXAMPLE.replace("I-0001", name);
            let e = City::parse(&json).map(|c| c.intersections.len());
            let e = e.err().unwrap_or_else(|| panic!("{name} loaded"));
            assert_eq!(e.field, "intersections[0].id", "{name}");
            assert!(e.message.contains("reserved"), "{name}: {e}");
        }
    }

    #[test]
    fn the_contract_example_parses() {
        let city = City::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(city.intersections.len(), 1);
        assert_eq!(city.intersections[0].phases[1].green_s, 30.0);
    }

    #[test]
    fn extra_fields_are_kept_as_written() {
        let with_name = EXAMPLE.replace(
            r#""id":"I-0001","#,
            r#""id":"I-0001","name":"Via Tuscolana","#,
        );
        let city = City::parse(&with_name).unwrap_or_else(|e| panic!("{e}"));
        let back = serde_json::to_string(&city).unwrap_or_default();
        assert!(back.contains(r#""name":"Via Tuscolana""#), "{back}");
    }

    #[test]
    fn a_phase_naming_a_missing_light_is_rejected_with_its_path() {
        let bad = EXAMPLE
            .replace(r#"{"light":3,"saturation_veh_h":1800}"#, "")
            .replace(
                r#"{"light":2,"saturation_veh_h":1800},"#,
                r#"{"light":2,"saturation_veh_h":1800}"#,
            );
        let e = City::parse(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("intersections[0].phases[1].lights"), "{e}");
    }

    #[test]
    fn a_green_or_red_over_an_hour_is_rejected_with_its_path() {
        for (from, to, field) in [
            (
                r#""green_s":30"#,
                r#""green_s":3600.5"#,
                "phases[0].green_s",
            ),
            (r#""red_s":34"#, r#""red_s":1e308"#, "phases[0].red_s"),
        ] {
            let e = City::parse(&EXAMPLE.replacen(from, to, 1))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(field), "{e}");
        }
        let hour = EXAMPLE.replacen(r#""green_s":30"#, r#""green_s":3600"#, 1);
        assert!(City::parse(&hour).is_ok(), "an hour is allowed");
    }

    #[test]
    fn a_saturation_below_one_vehicle_an_hour_is_rejected_with_its_path() {
        let tiny = EXAMPLE.replacen(
            r#""saturation_veh_h":1800"#,
            r#""saturation_veh_h":5e-324"#,
            1,
        );
        let e = City::parse(&tiny)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("lights[0].saturation_veh_h"), "{e}");
        let one = EXAMPLE.replacen(r#""saturation_veh_h":1800"#, r#""saturation_veh_h":1"#, 1);
        assert!(City::parse(&one).is_ok(), "one vehicle an hour is allowed");
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let one = &EXAMPLE[EXAMPLE.find('[').unwrap_or(0) + 1..EXAMPLE.rfind(']').unwrap_or(0)];
        let two = format!(r#"{{"intersections":[{one},{one}]}}"#);
        let e = City::parse(&two)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("appears twice"), "{e}");
    }
}
