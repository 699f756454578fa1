//! An alarm's identity ([`AlarmId`]): which intersection, what about it (a lamp, a silent light,
//! the whole intersection or the city), and since when.
//!
//! The same failure always gets the same id, so a retried batch recognises an alarm it already
//! raised. Written out (stored keys, API bodies and paths, SNS attributes, events) it is one
//! string of four parts separated by `#`:
//!
//! - a lamp failure: `<intersection>#<light>#<lamp>#<ts_ms>` (`I-0001#2#red#1767600005000`);
//! - a silent light: `<intersection>#<light>#silent#<ts_ms>`;
//! - a whole silent intersection: `<intersection>#all#silent#<ts_ms>`;
//! - the city: `_city#all#silent#<ts_ms>` (`crate::lamps::CITY` files it as an intersection).
//!
//! [`AlarmId`]'s `Display` writes that string and its `FromStr` reads it back, refusing any
//! other (so every id that parses writes back to the same string); serde uses the same string.

use crate::ids::{IdError, IntersectionId, LightIndex};
use crate::reading::LampColour;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The identity of an alarm (see the [module](self) for its written form).
///
/// Ids order as the alarm stores key their logs, `(ts_ms, id as written)`: by time, then by
/// the written id (intersection, light before `all`, kind by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlarmId {
    intersection: IntersectionId,
    subject: AlarmSubject,
    ts_ms: i64,
}

/// What an alarm is about, within its intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmSubject {
    /// A broken lamp of a light: `<light>#<lamp>`.
    Lamp {
        /// The light.
        light: LightIndex,
        /// The broken lamp.
        lamp: LampColour,
    },
    /// A light whose detector fell silent: `<light>#silent`.
    SilentLight(LightIndex),
    /// Every light of the intersection (or the city, filed under `_city`) fell silent:
    /// `all#silent`.
    SilentAll,
}

/// Why a string is not an [`AlarmId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmIdError {
    /// Not four parts separated by `#`.
    #[error(
        "an alarm id is <intersection>#<light or all>#<red, yellow, green or silent>#<ts_ms>: {0} part(s) found"
    )]
    Parts(usize),
    /// The first part is no intersection id.
    #[error("an alarm id's intersection: {0}")]
    Intersection(IdError),
    /// The second part is neither a light (0..=3) nor `all`.
    #[error("an alarm id's light must be 0..=3 or all, got {0:?}")]
    Light(String),
    /// The third part is no lamp colour nor `silent`.
    #[error("an alarm id's kind must be red, yellow, green or silent, got {0:?}")]
    Kind(String),
    /// A lamp's alarm filed under `all` lights.
    #[error("a lamp's alarm id names its light, not all")]
    LampOfAll,
    /// The last part is not epoch milliseconds as an id writes them (an integer without a
    /// sign `+`, leading zeros or `-0`).
    #[error("an alarm id's time must be epoch milliseconds, got {0:?}")]
    Time(String),
}

impl AlarmId {
    /// The id of an alarm of `intersection` about `subject` since `ts_ms`.
    pub fn new(intersection: IntersectionId, subject: AlarmSubject, ts_ms: i64) -> Self {
        Self {
            intersection,
            subject,
            ts_ms,
        }
    }

    /// The intersection (`_city` for the city's silence).
    pub fn intersection(&self) -> &IntersectionId {
        &self.intersection
    }

    /// What the alarm is about.
    pub fn subject(&self) -> AlarmSubject {
        self.subject
    }

    /// The event time the alarm is filed under, epoch ms (the alarm's `ts_ms`).
    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    /// The light, unless the alarm is about all of them.
    pub fn light(&self) -> Option<LightIndex> {
        match self.subject {
            AlarmSubject::Lamp { light, .. } | AlarmSubject::SilentLight(light) => Some(light),
            AlarmSubject::SilentAll => None,
        }
    }

    /// The broken lamp, for a lamp's alarm.
    pub fn lamp(&self) -> Option<LampColour> {
        match self.subject {
            AlarmSubject::Lamp { lamp, .. } => Some(lamp),
            AlarmSubject::SilentLight(_) | AlarmSubject::SilentAll => None,
        }
    }

    /// Whether it is a sensor-silent alarm.
    pub fn is_silent(&self) -> bool {
        self.lamp().is_none()
    }

    /// The written id's second and third parts as they order: the light (`all` after the
    /// lights' digits), then the kind's name.
    fn subject_order(&self) -> (u8, &'static str) {
        let scope = self.light().map_or(u8::MAX, |l| l.get() as u8);
        (scope, self.lamp().map_or("silent", LampColour::as_str))
    }
}

impl Ord for AlarmId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ts_ms
            .cmp(&other.ts_ms)
            // '#' sorts before every character of an intersection id, so comparing the
            // intersections first compares the written ids.
            .then_with(|| self.intersection.cmp(&other.intersection))
            .then_with(|| self.subject_order().cmp(&other.subject_order()))
    }
}

impl PartialOrd for AlarmId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.intersection;
        let ts = self.ts_ms;
        match self.subject {
            AlarmSubject::Lamp { light, lamp } => write!(f, "{i}#{light}#{}#{ts}", lamp.as_str()),
            AlarmSubject::SilentLight(light) => write!(f, "{i}#{light}#silent#{ts}"),
            AlarmSubject::SilentAll => write!(f, "{i}#all#silent#{ts}"),
        }
    }
}

impl FromStr for AlarmId {
    type Err = AlarmIdError;

    /// Reads the written id back; an intersection the system keeps for itself (`_city`) reads
    /// too ([`IntersectionId::parse_internal`]).
    fn from_str(s: &str) -> Result<Self, AlarmIdError> {
        let parts: Vec<&str> = s.split('#').collect();
        let [intersection, light, kind, ts] = parts[..] else {
            return Err(AlarmIdError::Parts(parts.len()));
        };
        let intersection =
            IntersectionId::parse_internal(intersection).map_err(AlarmIdError::Intersection)?;
        let light = match light {
            "all" => None,
            // One digit: `00` or `+1` would not write back as they were read.
            l if l.len() == 1 => Some(
                l.parse::<i64>()
                    .ok()
                    .and_then(|i| LightIndex::new(i).ok())
                    .ok_or_else(|| AlarmIdError::Light(l.to_owned()))?,
            ),
            l => return Err(AlarmIdError::Light(l.to_owned())),
        };
        let lamp = match kind {
            "red" => Some(LampColour::Red),
            "yellow" => Some(LampColour::Yellow),
            "green" => Some(LampColour::Green),
            "silent" => None,
            k => return Err(AlarmIdError::Kind(k.to_owned())),
        };
        let subject = match (light, lamp) {
            (Some(light), Some(lamp)) => AlarmSubject::Lamp { light, lamp },
            (Some(light), None) => AlarmSubject::SilentLight(light),
            (None, None) => AlarmSubject::SilentAll,
            (None, Some(_)) => return Err(AlarmIdError::LampOfAll),
        };
        let ts_ms = parse_ts(ts).ok_or_else(|| AlarmIdError::Time(ts.to_owned()))?;
        Ok(Self::new(intersection, subject, ts_ms))
    }
}

/// An integer as `i64`'s `Display` writes it, and no other spelling.
fn parse_ts(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => digits.len() == s.len(),
        [first, ..] => *first != b'0' && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    if canonical { s.parse().ok() } else { None }
}

impl serde::Serialize for AlarmId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AlarmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AlarmId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an alarm id, <intersection>#<light or all>#<kind>#<ts_ms>")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AlarmId, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lamps::{Alarm, CITY, Silence};
    use crate::testing::light;
    use proptest::prelude::*;

    fn id(s: &str) -> IntersectionId {
        IntersectionId::parse_internal(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parsed(s: &str) -> AlarmId {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn each_form_reads_and_writes_back() {
        let lamp = parsed("I-0001#2#red#1767600005000");
        assert_eq!(lamp.intersection().as_str(), "I-0001");
        assert_eq!(lamp.light(), Some(light(2)));
        assert_eq!(lamp.lamp(), Some(LampColour::Red));
        assert_eq!(lamp.ts_ms(), 1_767_600_005_000);
        assert!(!lamp.is_silent());

        let silent_light = parsed("I-0001#3#silent#5");
        assert_eq!(silent_light.subject(), AlarmSubject::SilentLight(light(3)));
        assert!(silent_light.is_silent());

        let whole = parsed("I-0001#all#silent#0");
        assert_eq!(whole.subject(), AlarmSubject::SilentAll);
        assert_eq!(
            (whole.light(), whole.lamp(), whole.ts_ms()),
            (None, None, 0)
        );

        let city = parsed("_city#all#silent#1767600000000");
        assert_eq!(city.intersection().as_str(), CITY);
        assert_eq!(city.subject(), AlarmSubject::SilentAll);

        for s in [
            "I-0001#2#red#1767600005000",
            "I-0001#0#yellow#-5",
            "I-0001#1#green#7",
            "I-0001#3#silent#5",
            "I-0001#all#silent#0",
            "_city#all#silent#1767600000000",
        ] {
            assert_eq!(parsed(s).to_string(), s);
        }
    }

    #[test]
    fn alarm_ids_are_those_of_their_alarms() {
        let alarm = |intersection: &str, l: i64, silent: Option<Silence>| Alarm {
            intersection_id: id(intersection),
            light: light(l),
            lamp: LampColour::Green,
            ts_ms: 42,
            position: None,
            silent,
        };
        let cases = [
            (alarm("I-1", 2, None), "I-1#2#green#42"),
            (alarm("I-1", 2, Some(Silence::Light)), "I-1#2#silent#42"),
            (
                alarm("I-1", 0, Some(Silence::Intersection)),
                "I-1#all#silent#42",
            ),
            (alarm(CITY, 0, Some(Silence::City)), "_city#all#silent#42"),
        ];
        for (a, s) in cases {
            assert_eq!(a.id().to_string(), s);
            assert_eq!(a.id(), parsed(s));
            assert_eq!(a.id().intersection(), &a.intersection_id);
            assert_eq!(a.id().ts_ms(), a.ts_ms);
        }
    }

    #[test]
    fn strings_of_another_shape_are_refused() {
        use AlarmIdError::*;
        let refused = |s: &str| s.parse::<AlarmId>().err();
        // Missing or extra parts.
        assert_eq!(refused(""), Some(Parts(1)));
        assert_eq!(refused("I-1#2#red"), Some(Parts(3)));
        assert_eq!(refused("I-1#2#red#5#6"), Some(Parts(5)));
        assert_eq!(refused("I-1"), Some(Parts(1)));
        assert_eq!(refused("#2#red#5"), Some(Intersection(IdError::Empty)));
        assert_eq!(
            refused("I 1#2#red#5"),
            Some(Intersection(IdError::BadChar(' ')))
        );
        // The light.
        for l in ["4", "-1", "00", "+1", "", "x", "ALL"] {
            assert_eq!(
                refused(&format!("I-1#{l}#red#5")),
                Some(Light(l.into())),
                "{l:?}"
            );
        }
        // The kind.
        for k in ["blue", "Red", "", "silence"] {
            assert_eq!(
                refused(&format!("I-1#2#{k}#5")),
                Some(Kind(k.into())),
                "{k:?}"
            );
        }
        assert_eq!(refused("I-1#all#red#5"), Some(LampOfAll));
        // The time.
        for t in [
            "",
            "x",
            "1.5",
            "007",
            "+5",
            "-0",
            "-",
            "5 ",
            "99999999999999999999",
        ] {
            assert_eq!(
                refused(&format!("I-1#2#red#{t}")),
                Some(Time(t.into())),
                "{t:?}"
            );
        }
    }

    #[test]
    fn serde_writes_the_string() -> Result<(), serde_json::Error> {
        let s = "I-0001#all#silent#1767600000000";
        let json = serde_json::to_string(&parsed(s))?;
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<AlarmId>(&json)?, parsed(s));
        assert!(serde_json::from_str::<AlarmId>("\"I-1#all#red#5\"").is_err());
        assert!(serde_json::from_str::<AlarmId>("5").is_err());
        Ok(())
    }

    fn any_alarm() -> impl Strategy<Value = Alarm> {
        let silence = prop_oneof![
            Just(None),
            Just(Some(Silence::Light)),
            Just(Some(Silence::Intersection)),
            Just(Some(Silence::City)),
        ];
        (
            "[A-Za-z0-9._:-]{1,64}",
            0i64..4,
            prop_oneof![
                Just(LampColour::Red),
                Just(LampColour::Yellow),
                Just(LampColour::Green)
            ],
            any::<i64>(),
            silence,
        )
            .prop_map(|(i, l, lamp, ts_ms, silent)| Alarm {
                intersection_id: id(&i),
                light: light(l),
                lamp,
                ts_ms,
                position: None,
                silent,
            })
    }

    proptest! {
        #[test]
        fn any_alarms_id_reads_back(a in any_alarm()) {
            let written = a.id().to_string();
            let read: AlarmId = written.parse().map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
            prop_assert_eq!(&read, &a.id());
            prop_assert_eq!(read.to_string(), written);
        }

        #[test]
        fn a_string_that_parses_writes_back_to_itself(
            parts in (
                prop_oneof!["[A-Za-z0-9_.:-]{1,8}", "_city", "[A-Za-z #/]{0,3}"],
                prop_oneof!["[0-3]", "all", "[0-9+-]{0,2}", "[a-zA-Z]{1,3}"],
                prop_oneof!["red|yellow|green|silent", "[a-zA-Z]{0,6}"],
                prop_oneof!["-?[1-9][0-9]{0,18}", "0", "[-+]?[0-9]{0,21}", "[0-9a-z. ]{0,4}"],
                prop::collection::vec("[a-z0-9]{0,3}", 0..2),
            )
        ) {
            let (i, l, k, t, extra) = parts;
            let mut all = vec![i, l, k, t];
            all.extend(extra);
            let s = all.join("#");
            if let Ok(id) = s.parse::<AlarmId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }

        #[test]
        fn ids_order_as_the_stores_keys(a in any_alarm(), b in any_alarm()) {
            let key = |a: &Alarm| (a.ts_ms, a.id().to_string());
            prop_assert_eq!(a.id().cmp(&b.id()), key(&a).cmp(&key(&b)));
        }
    }
}
