//! Lamp state transitions and the alarms they raise.
//!
//! Each light keeps the state of its three lamps and the event time of the reading that set
//! them. A reading no newer than that is a duplicate or out of order and changes nothing, so
//! replays and redeliveries raise no second alarm. A lamp going from ok to broken raises one
//! alarm; while it stays broken nothing more is raised; once a reading reports it ok again
//! (it was repaired), a later failure alarms again.

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

/// A lamp failure to report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The light.
    pub light: LightIndex,
    /// The broken lamp's colour.
    pub lamp: LampColour,
    /// Event time of the first reading that reported it broken, epoch ms.
    pub ts_ms: i64,
    /// Where the intersection is.
    pub position: Option<Position>,
}

impl Alarm {
    /// A stable identity: the same failure always gets the same id, so a retried batch can
    /// recognise an alarm it already raised.
    pub fn id(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            self.intersection_id,
            self.light,
            self.lamp.as_str(),
            self.ts_ms
        )
    }

    /// A one-line summary, short enough for an SMS.
    pub fn short_text(&self) -> String {
        format!(
            "Lamp failure: {} light {} {} lamp broken since {}",
            self.intersection_id,
            self.light,
            self.lamp.as_str(),
            format_rfc3339_ms(self.ts_ms)
        )
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
}
