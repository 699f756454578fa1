//! Lamp state transitions and the alarms they raise.
//!
//! Each light keeps the state of its three lamps and the event time of the reading that set
//! them. A reading no newer than that is a duplicate or out of order and changes nothing, so
//! replays and redeliveries raise no second alarm. A lamp going from ok to broken raises one
//! alarm; while it stays broken nothing more is raised; once a reading reports it ok again
//! (it was repaired), a later failure alarms again.

use crate::alarm_id::{AlarmId, AlarmSubject};
use crate::ids::{IntersectionId, LightIndex};
use crate::reading::{LampColour, LampState, Lamps, Position, Reading};
use crate::time::format_rfc3339_ms;
use serde::{Deserialize, Serialize};

/// The lamp state of one light as the fault function keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightLamps {
    /// The lamps' states.
    pub lamps: Lamps,
    /// Event time of the reading that set them, epoch ms.
    pub as_of_ms: Option<i64>,
}

/// An alarm to report: a lamp failure, or (with [`Alarm::silent`]) detectors that stopped
/// reporting (`crate::silence`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The intersection ([`CITY`] for a city-wide silence).
    pub intersection_id: IntersectionId,
    /// The light (0 for a silence of a whole intersection or of the city).
    pub light: LightIndex,
    /// The broken lamp's colour (a sensor-silent alarm has no lamp: `red` is stored and
    /// means nothing).
    pub lamp: LampColour,
    /// Event time of the first reading that reported it broken, epoch ms; for a silence, the
    /// instant since which nothing was heard (the closed mark − `silence_after`).
    pub ts_ms: i64,
    /// Where the intersection is.
    pub position: Option<Position>,
    /// For a sensor-silent alarm, what fell silent; `None` for a lamp failure (and in alarms
    /// stored before silences were alarmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<Silence>,
}

/// What fell silent: the scope of a sensor-silent alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Silence {
    /// One light of an intersection.
    Light,
    /// Every light of an intersection.
    Intersection,
    /// The city: at least half of the registered intersections, or every shard idle.
    City,
}

impl Silence {
    /// The name in the API and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Silence::Light => "light",
            Silence::Intersection => "intersection",
            Silence::City => "city",
        }
    }
}

/// The intersection id a city-wide alarm is filed under.
pub const CITY: &str = "_city";

impl Alarm {
    /// A stable identity: the same failure always gets the same id, so a retried batch can
    /// recognise an alarm it already raised ([`AlarmId`] says how it is written).
    pub fn id(&self) -> AlarmId {
        let subject = match self.silent {
            None => AlarmSubject::Lamp {
                light: self.light,
                lamp: self.lamp,
            },
            Some(Silence::Light) => AlarmSubject::SilentLight(self.light),
            Some(Silence::Intersection | Silence::City) => AlarmSubject::SilentAll,
        };
        AlarmId::new(self.intersection_id.clone(), subject, self.ts_ms)
    }

    /// A one-line summary, short enough for an SMS.
    pub fn short_text(&self) -> String {
        let since = format_rfc3339_ms(self.ts_ms);
        match self.silent {
            None => format!(
                "Lamp failure: {} light {} {} lamp broken since {since}",
                self.intersection_id,
                self.light,
                self.lamp.as_str(),
            ),
            Some(Silence::Light) => format!(
                "Sensor silent: {} light {} no reading since {since}",
                self.intersection_id, self.light
            ),
            Some(Silence::Intersection) => format!(
                "Sensor silent: {} all lights, no reading since {since}",
                self.intersection_id
            ),
            Some(Silence::City) => {
                format!("Sensor silent city-wide: most detectors silent since {since}")
            }
        }
    }
}

/// What one reading did to a light's lamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    /// The new state (unchanged for a stale reading).
    pub state: LightLamps,
    /// Lamps that went from ok to broken.
    pub failed: Vec<LampColour>,
    /// Lamps that went from broken to ok.
    pub repaired: Vec<LampColour>,
    /// Whether the reading was no newer than the state and so was ignored.
    pub stale: bool,
}

/// Applies `reading` to the light's previous lamp state.
pub fn transition(prev: &LightLamps, reading: &Reading) -> Transition {
    if prev.as_of_ms.is_some_and(|t| reading.ts_ms <= t) {
        return Transition {
            state: *prev,
            stale: true,
            ..Transition::default()
        };
    }
    let mut failed = Vec::new();
    let mut repaired = Vec::new();
    for c in LampColour::ALL {
        match (prev.lamps.get(c), reading.lamps.get(c)) {
            (LampState::Ok, LampState::Broken) => failed.push(c),
            (LampState::Broken, LampState::Ok) => repaired.push(c),
            _ => {}
        }
    }
    Transition {
        state: LightLamps {
            lamps: reading.lamps,
            as_of_ms: Some(reading.ts_ms),
        },
        failed,
        repaired,
        stale: false,
    }
}

/// What a store knows of one intersection's stored lamps without reading its item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LampSummary {
    /// Its lamps are being written, or were before the summary kept them: read the item.
    Unknown,
    /// The lamps of each light that has one not ok; every other light's are all ok.
    NotOk(std::collections::BTreeMap<LightIndex, Lamps>),
}

impl LampSummary {
    /// The stored lamps of `light`, when known.
    pub fn lamps(&self, light: LightIndex) -> Option<Lamps> {
        match self {
            LampSummary::Unknown => None,
            LampSummary::NotOk(lights) => Some(lights.get(&light).copied().unwrap_or_default()),
        }
    }

    /// The summary of an intersection whose lights' stored lamps are `lights`: `None` when
    /// they are all ok (an intersection all ok is left out of the summaries).
    pub fn of<'a>(lights: impl IntoIterator<Item = (LightIndex, &'a Lamps)>) -> Option<Self> {
        let not_ok: std::collections::BTreeMap<LightIndex, Lamps> = lights
            .into_iter()
            .filter(|(_, l)| !l.all_ok())
            .map(|(i, l)| (i, *l))
            .collect();
        (!not_ok.is_empty()).then_some(LampSummary::NotOk(not_ok))
    }

    /// A short text for the store: `?` when unknown, else `light:lamps` per light not all ok,
    /// `;` between, each broken lamp a letter (`r`, `y`, `g`): `0:g;2:ry`.
    pub fn encode(&self) -> String {
        match self {
            LampSummary::Unknown => "?".into(),
            LampSummary::NotOk(lights) => lights
                .iter()
                .map(|(i, l)| {
                    let mut s = format!("{}:", i.get());
                    for (c, letter) in [
                        (LampColour::Red, 'r'),
                        (LampColour::Yellow, 'y'),
                        (LampColour::Green, 'g'),
                    ] {
                        if l.get(c) == LampState::Broken {
                            s.push(letter);
                        }
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(";"),
        }
    }

    /// The summary [`LampSummary::encode`] wrote; `None` for text it cannot have written.
    pub fn decode(text: &str) -> Option<Self> {
        if text == "?" {
            return Some(LampSummary::Unknown);
        }
        let mut lights = std::collections::BTreeMap::new();
        for part in text.split(';') {
            let (light, letters) = part.split_once(':')?;
            let light = LightIndex::new(light.parse().ok()?).ok()?;
            let mut lamps = Lamps::default();
            for letter in letters.chars() {
                let colour = match letter {
                    'r' => LampColour::Red,
                    'y' => LampColour::Yellow,
                    'g' => LampColour::Green,
                    _ => return None,
                };
                lamps.set(colour, LampState::Broken);
            }
            if lamps.all_ok() || lights.insert(light, lamps).is_some() {
                return None;
            }
        }
        Some(LampSummary::NotOk(lights))
    }
}

/// The intersections among `readings` whose lamp states a batch must read (and may change),
/// given `summaries`: what the store knows of every intersection whose stored lamps are not all
/// ok, or is writing (`None` when it keeps none: all of them). A reading that repeats its
/// light's stored lamps changes nothing and raises nothing ([`transition`] keeps the lamps, and
/// only lamps that change are written), so an intersection whose readings in the batch all do
/// need not be read; an intersection left out of `summaries` is all ok. One reading that may
/// differ, and every reading of that intersection in the batch is applied, in order.
pub fn intersections_to_read<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
    summaries: Option<&std::collections::BTreeMap<IntersectionId, LampSummary>>,
) -> std::collections::BTreeSet<IntersectionId> {
    readings
        .into_iter()
        .filter(|r| {
            summaries.is_none_or(|known| {
                let stored = match known.get(&r.intersection_id) {
                    None => Some(Lamps::default()),
                    Some(summary) => summary.lamps(r.light),
                };
                stored != Some(r.lamps)
            })
        })
        .map(|r| r.intersection_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(ts_ms: i64, green: LampState) -> Reading {
        Reading {
            intersection_id: IntersectionId::parse("I-1").unwrap_or_else(|e| panic!("{e}")),
            light: LightIndex::new(2).unwrap_or_else(|e| panic!("{e}")),
            ts_ms,
            vehicles: 1,
            mean_speed_kmh: 30.0,
            lamps: Lamps {
                green,
                ..Lamps::default()
            },
            position: None,
        }
    }

    fn run(readings: &[Reading]) -> Vec<(i64, Vec<LampColour>)> {
        let mut s = LightLamps::default();
        let mut alarms = Vec::new();
        for r in readings {
            let t = transition(&s, r);
            if !t.failed.is_empty() {
                alarms.push((r.ts_ms, t.failed.clone()));
            }
            s = t.state;
        }
        alarms
    }

    #[test]
    fn a_broken_green_lamp_raises_one_alarm_while_it_stays_broken() {
        use LampState::*;
        let alarms = run(&[reading(1, Ok), reading(2, Broken), reading(3, Broken)]);
        assert_eq!(alarms, vec![(2, vec![LampColour::Green])]);
    }

    #[test]
    fn a_repaired_lamp_that_fails_again_alarms_again() {
        use LampState::*;
        let alarms = run(&[reading(1, Broken), reading(2, Ok), reading(3, Broken)]);
        assert_eq!(alarms.len(), 2);
    }

    #[test]
    fn duplicates_and_stale_readings_change_nothing() {
        use LampState::*;
        let alarms = run(&[
            reading(1, Broken),
            reading(1, Broken),
            reading(2, Ok),
            reading(1, Broken),
        ]);
        assert_eq!(alarms, vec![(1, vec![LampColour::Green])]);
    }

    #[test]
    fn a_summary_reads_back_and_text_it_cannot_have_written_is_refused() {
        let text = "0:g;2:ry";
        let s = LampSummary::decode(text).unwrap_or_else(|| panic!("decodes"));
        assert_eq!(s.encode(), text);
        let l = |i: i64| LightIndex::new(i).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.lamps(l(2)).map(|x| (x.red, x.yellow, x.green)),
            Some((LampState::Broken, LampState::Broken, LampState::Ok))
        );
        assert_eq!(
            s.lamps(l(1)),
            Some(Lamps::default()),
            "a light left out is all ok"
        );
        assert_eq!(LampSummary::Unknown.lamps(l(1)), None);
        for bad in ["", "0:", "0:x", "4:g", "0:g;0:r", "g", "0:g;", "?0"] {
            assert_eq!(LampSummary::decode(bad), None, "{bad:?}");
        }
    }

    mod selection {
        use super::*;
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};

        type Key = (IntersectionId, LightIndex);

        fn id(i: u8) -> IntersectionId {
            IntersectionId::parse(&format!("I-{i}")).unwrap_or_else(|e| panic!("{e}"))
        }

        fn state(code: u8, as_of: i64) -> LightLamps {
            let s = |bit: u8| {
                if code & bit == 0 {
                    LampState::Ok
                } else {
                    LampState::Broken
                }
            };
            LightLamps {
                lamps: Lamps {
                    red: s(1),
                    yellow: s(2),
                    green: s(4),
                },
                as_of_ms: (as_of > 0).then_some(as_of),
            }
        }

        /// Applies `readings` to `stored` for the intersections in `read` (all when `None`):
        /// the alarms raised, the lamps repaired, and the states that changed.
        fn fold(
            stored: &BTreeMap<Key, LightLamps>,
            readings: &[Reading],
            read: Option<&BTreeSet<IntersectionId>>,
        ) -> (Vec<(Key, LampColour)>, usize, BTreeMap<Key, LightLamps>) {
            let mut states = BTreeMap::new();
            let (mut alarms, mut repaired) = (Vec::new(), 0);
            for r in readings {
                if read.is_some_and(|set| !set.contains(&r.intersection_id)) {
                    continue;
                }
                let key = (r.intersection_id.clone(), r.light);
                let prev = states
                    .get(&key)
                    .or_else(|| stored.get(&key))
                    .copied()
                    .unwrap_or_default();
                let t = transition(&prev, r);
                alarms.extend(t.failed.iter().map(|c| (key.clone(), *c)));
                repaired += t.repaired.len();
                states.insert(key, t.state);
            }
            let changed = states
                .into_iter()
                .filter(|(k, s)| stored.get(k).copied().unwrap_or_default().lamps != s.lamps)
                .collect();
            (alarms, repaired, changed)
        }

        proptest! {
            /// Skipping the intersections outside the selection changes no alarm, no repair
            /// and no stored lamp, whatever the stored states and the batch; and a summary
            /// reads back as it was written.
            #[test]
            fn reading_only_the_selected_intersections_gives_the_same_alarms_and_states(
                stored in prop::collection::vec((0u8..6, 0u8..4, 0u8..8, 0i64..50), 0..20),
                batch in prop::collection::vec((0u8..6, 0u8..4, 0u8..8, 1i64..100), 0..40),
                extra in prop::collection::btree_set(0u8..6, 0..3),
            ) {
                let stored: BTreeMap<Key, LightLamps> = stored
                    .into_iter()
                    .map(|(i, l, code, as_of)| ((id(i), LightIndex::new(i64::from(l)).unwrap_or_else(|e| panic!("{e}"))), state(code, as_of)))
                    .collect();
                let readings: Vec<Reading> = batch
                    .into_iter()
                    .map(|(i, l, code, ts)| Reading {
                        intersection_id: id(i),
                        light: LightIndex::new(i64::from(l)).unwrap_or_else(|e| panic!("{e}")),
                        ts_ms: ts,
                        vehicles: 1,
                        mean_speed_kmh: 30.0,
                        lamps: state(code, 0).lamps,
                        position: None,
                    })
                    .collect();
                // A summary of every intersection not all ok, and of some marked unknown (being
                // written when the batch read the summaries).
                let mut summaries: BTreeMap<IntersectionId, LampSummary> = BTreeMap::new();
                for i in 0u8..6 {
                    let lights: Vec<(LightIndex, Lamps)> = stored
                        .iter()
                        .filter(|((x, _), _)| *x == id(i))
                        .map(|((_, l), s)| (*l, s.lamps))
                        .collect();
                    if let Some(s) = LampSummary::of(lights.iter().map(|(l, s)| (*l, s))) {
                        summaries.insert(id(i), s);
                    }
                }
                for i in extra {
                    summaries.insert(id(i), LampSummary::Unknown);
                }
                for s in summaries.values() {
                    let back = LampSummary::decode(&s.encode());
                    prop_assert_eq!(back.as_ref(), Some(s));
                }
                let read = intersections_to_read(&readings, Some(&summaries));
                prop_assert_eq!(fold(&stored, &readings, None), fold(&stored, &readings, Some(&read)));
            }
        }
    }
}
