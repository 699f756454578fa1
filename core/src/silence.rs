//! Detector health: which lights have fallen silent, judged in event time.
//!
//! The merge judges at its closed mark `C` (the global watermark: every shard that may still
//! deliver has progressed past it, idle shards aside). A registered light is *heard* when the
//! merge's run read a reading of it stamped at or after `C − silence_after`, in a closed or an
//! open pane (a light that has already reported past the mark is not silent); otherwise it is
//! *silent*. The judgment turns the silent lights into the alarms that should be open:
//!
//! - one [`Silence::Light`] alarm per silent light of an intersection some of whose lights
//!   are heard;
//! - one [`Silence::Intersection`] alarm for an intersection whose lights are all silent
//!   (not four);
//! - one [`Silence::City`] alarm, and no others raised, when at least half of the registered
//!   intersections (and at least two) are wholly silent, or when every shard is idle (a total
//!   outage stops event time: the shards' idleness is then the only sign of it).
//!
//! A registered intersection that never reported is silent like any other (it is expected to
//! report; an operator registering one before its detectors are wired sees it as silent).
//! Compared with the open sensor-silent alarms, that gives the alarms to raise (not already
//! open for the same scope, so a redone or later run raises nothing twice) and the open ones
//! to resolve: a light or intersection heard again, a light alarm taken over by its
//! intersection's, a city alarm whose condition no longer holds. While the city alarm is open
//! or raised, the alarms of smaller scopes are left as they are but for those heard again.

use crate::ids::{IntersectionId, LightIndex};
use crate::lamps::{Alarm, CITY, Silence};
use crate::reading::{LampColour, Position};
use std::collections::{BTreeMap, BTreeSet};

/// A registered intersection and the lights it should hear from.
#[derive(Clone, Debug, PartialEq)]
pub struct Watched {
    /// The intersection.
    pub id: IntersectionId,
    /// Its lights.
    pub lights: Vec<LightIndex>,
    /// Where it is (for the alarm).
    pub position: Option<Position>,
}

/// What a judgment knows.
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    /// The registered intersections, or `None` when the run did not read them (it then only
    /// resolves alarms whose lights were heard again, and raises nothing).
    pub registered: Option<&'a [Watched]>,
    /// The lights with a reading at or after `since_ms`.
    pub heard: &'a BTreeSet<(IntersectionId, LightIndex)>,
    /// Whether every shard is idle (a total outage).
    pub all_idle: bool,
    /// The closed mark − `silence_after`: a new alarm's time.
    pub since_ms: i64,
}

/// Why an alarm is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Its light (or one of its intersection's lights) reported again.
    Reported,
    /// A light's alarm, taken over by its intersection's (all its lights silent).
    TakenOver,
    /// The city-wide condition no longer holds.
    CityBack,
}

impl Resolution {
    /// The text kept with the closed alarm.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Reported => "reported again",
            Resolution::TakenOver => "all lights of the intersection silent: one alarm for it",
            Resolution::CityBack => "fewer than half of the intersections silent",
        }
    }
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// New alarms, to record and publish.
    pub raise: Vec<Alarm>,
    /// Open alarms to close, and why.
    pub resolve: Vec<(Alarm, Resolution)>,
}

type Scope = (Silence, IntersectionId, LightIndex);

fn scope(a: &Alarm) -> Option<Scope> {
    a.silent.map(|s| (s, a.intersection_id.clone(), a.light))
}

fn light0() -> LightIndex {
    LightIndex::FIRST
}

/// The alarms that should be open, by scope, and whether the city-wide one is among them.
fn wanted(
    registered: &[Watched],
    heard: &BTreeSet<(IntersectionId, LightIndex)>,
    all_idle: bool,
) -> (BTreeMap<Scope, Option<Position>>, bool) {
    let mut out = BTreeMap::new();
    let mut wholly = 0usize;
    let counted = registered.iter().filter(|w| !w.lights.is_empty()).count();
    for w in registered {
        let silent: Vec<LightIndex> = w
            .lights
            .iter()
            .copied()
            .filter(|l| !heard.contains(&(w.id.clone(), *l)))
            .collect();
        if silent.is_empty() {
            continue;
        }
        if silent.len() == w.lights.len() {
            wholly += 1;
            out.insert((Silence::Intersection, w.id.clone(), light0()), w.position);
        } else {
            for l in silent {
                out.insert((Silence::Light, w.id.clone(), l), w.position);
            }
        }
    }
    let city = all_idle || (counted >= 2 && 2 * wholly >= counted);
    if city {
        out.clear();
        if let Ok(id) = IntersectionId::parse_internal(CITY) {
            out.insert((Silence::City, id, light0()), None);
        }
    }
    (out, city)
}

/// Judges the silences (see the module documentation) against the open sensor-silent
/// alarms `open`.
pub fn judge(evidence: &Evidence<'_>, open: &[Alarm]) -> Plan {
    let mut plan = Plan::default();
    let heard_x: BTreeSet<&IntersectionId> = evidence.heard.iter().map(|(x, _)| x).collect();
    let heard_again = |a: &Alarm| match a.silent {
        Some(Silence::Light) => evidence
            .heard
            .contains(&(a.intersection_id.clone(), a.light)),
        Some(Silence::Intersection) => heard_x.contains(&a.intersection_id),
        _ => false,
    };
    let Some(registered) = evidence.registered else {
        plan.resolve = open
            .iter()
            .filter(|a| heard_again(a))
            .map(|a| (a.clone(), Resolution::Reported))
            .collect();
        return plan;
    };
    let (wanted, city) = wanted(registered, evidence.heard, evidence.all_idle);
    let mut open_scopes = BTreeSet::new();
    for a in open {
        let Some(s) = scope(a) else { continue };
        let keep = wanted.contains_key(&s) || (city && s.0 != Silence::City && !heard_again(a));
        if keep {
            open_scopes.insert(s);
            continue;
        }
        let why = match s.0 {
            Silence::City => Resolution::CityBack,
            Silence::Light
                if wanted.contains_key(&(Silence::Intersection, s.1.clone(), light0())) =>
            {
                Resolution::TakenOver
            }
            _ => Resolution::Reported,
        };
        plan.resolve.push((a.clone(), why));
    }
    for (s, position) in wanted {
        if open_scopes.contains(&s) {
            continue;
        }
        let (silent, intersection_id, light) = s;
        plan.raise.push(Alarm {
            intersection_id,
            light,
            lamp: LampColour::Red,
            ts_ms: evidence.since_ms,
            position,
            silent: Some(silent),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{id, light};

    const T: i64 = 1_767_600_000_000;

    fn city(n: usize) -> Vec<Watched> {
        (1..=n)
            .map(|i| Watched {
                id: id(&format!("I-{i}")),
                lights: (0..4).map(light).collect(),
                position: None,
            })
            .collect()
    }

    fn heard(lights: &[(&str, i64)]) -> BTreeSet<(IntersectionId, LightIndex)> {
        lights.iter().map(|(x, n)| (id(x), light(*n))).collect()
    }

    fn all_but(n: usize, silent: &[(&str, i64)]) -> BTreeSet<(IntersectionId, LightIndex)> {
        let mut h = BTreeSet::new();
        for i in 1..=n {
            for k in 0..4 {
                h.insert((id(&format!("I-{i}")), light(k)));
            }
        }
        for s in silent {
            h.remove(&(id(s.0), light(s.1)));
        }
        h
    }

    fn judge_with(
        reg: &[Watched],
        h: &BTreeSet<(IntersectionId, LightIndex)>,
        open: &[Alarm],
    ) -> Plan {
        judge(
            &Evidence {
                registered: Some(reg),
                heard: h,
                all_idle: false,
                since_ms: T,
            },
            open,
        )
    }

    fn ids(alarms: &[Alarm]) -> Vec<String> {
        alarms.iter().map(|a| a.id().to_string()).collect()
    }

    #[test]
    fn a_silent_light_is_one_alarm_and_a_second_judgment_raises_nothing() {
        let reg = city(4);
        let h = all_but(4, &[("I-2", 1)]);
        let plan = judge_with(&reg, &h, &[]);
        assert_eq!(ids(&plan.raise), [format!("I-2#1#silent#{T}")]);
        assert!(plan.resolve.is_empty());
        // Later, still silent, with the alarm open: nothing new (whatever the time).
        let later = judge(
            &Evidence {
                since_ms: T + 900_000,
                ..Evidence {
                    registered: Some(&reg),
                    heard: &h,
                    all_idle: false,
                    since_ms: 0,
                }
            },
            &plan.raise,
        );
        assert_eq!(later, Plan::default());
    }

    #[test]
    fn a_silent_light_that_reports_again_is_resolved_with_or_without_the_registry() {
        let reg = city(4);
        let open = judge_with(&reg, &all_but(4, &[("I-2", 1)]), &[]).raise;
        let back = all_but(4, &[]);
        let plan = judge_with(&reg, &back, &open);
        assert_eq!(plan.resolve, [(open[0].clone(), Resolution::Reported)]);
        assert!(plan.raise.is_empty());
        // Without the registry, hearing the silent light resolves its alarm; another does not.
        let unregistered = |light: i64| {
            let evidence = Evidence {
                registered: None,
                heard: &heard(&[("I-2", light)]),
                all_idle: false,
                since_ms: T,
            };
            judge(&evidence, &open)
        };
        let quick = unregistered(1);
        assert_eq!(quick.resolve, [(open[0].clone(), Resolution::Reported)]);
        assert_eq!(unregistered(0), Plan::default());
    }

    #[test]
    fn an_intersection_with_every_light_silent_is_one_alarm_that_takes_over_its_lights_alarms() {
        let reg = city(4);
        let open = judge_with(&reg, &all_but(4, &[("I-3", 0)]), &[]).raise;
        let dark = all_but(4, &[("I-3", 0), ("I-3", 1), ("I-3", 2), ("I-3", 3)]);
        let plan = judge_with(&reg, &dark, &open);
        assert_eq!(ids(&plan.raise), [format!("I-3#all#silent#{T}")]);
        assert_eq!(plan.resolve, [(open[0].clone(), Resolution::TakenOver)]);
    }

    #[test]
    fn half_the_city_silent_or_every_shard_idle_is_one_city_alarm() {
        let reg = city(4);
        let dark = all_but(
            4,
            &[
                (0..4).map(|k| ("I-1", k)).collect::<Vec<_>>(),
                (0..4).map(|k| ("I-2", k)).collect(),
            ]
            .concat(),
        );
        let plan = judge_with(&reg, &dark, &[]);
        assert_eq!(ids(&plan.raise), [format!("_city#all#silent#{T}")]);
        // One of four wholly silent is that intersection's alarm only.
        let one = all_but(4, &(0..4).map(|k| ("I-1", k)).collect::<Vec<_>>());
        assert_eq!(
            ids(&judge_with(&reg, &one, &[]).raise),
            [format!("I-1#all#silent#{T}")]
        );
        // Everything heard, but every shard idle: the city.
        let idle = judge(
            &Evidence {
                registered: Some(&reg),
                heard: &all_but(4, &[]),
                all_idle: true,
                since_ms: T,
            },
            &[],
        );
        assert_eq!(ids(&idle.raise), [format!("_city#all#silent#{T}")]);
        // Back: the city alarm is resolved, and the one intersection still dark is raised.
        let back = judge_with(&reg, &one, &plan.raise);
        assert_eq!(
            back.resolve,
            [(plan.raise[0].clone(), Resolution::CityBack)]
        );
        assert_eq!(ids(&back.raise), [format!("I-1#all#silent#{T}")]);
    }

    #[test]
    fn open_alarms_of_smaller_scopes_stay_during_a_city_outage_unless_heard() {
        let reg = city(2);
        let open = judge_with(&reg, &all_but(2, &[("I-1", 2)]), &[]).raise;
        let plan = judge_with(&reg, &BTreeSet::new(), &open);
        assert_eq!(ids(&plan.raise), [format!("_city#all#silent#{T}")]);
        assert!(plan.resolve.is_empty());
    }

    #[test]
    fn a_registered_intersection_that_never_reported_is_silent() {
        let mut reg = city(3);
        reg.push(Watched {
            id: id("I-new"),
            lights: vec![light(0)],
            position: Some(Position { lat: 1.0, lon: 2.0 }),
        });
        let plan = judge_with(&reg, &all_but(3, &[]), &[]);
        assert_eq!(ids(&plan.raise), [format!("I-new#all#silent#{T}")]);
        assert_eq!(
            plan.raise[0].position,
            Some(Position { lat: 1.0, lon: 2.0 })
        );
    }
}
