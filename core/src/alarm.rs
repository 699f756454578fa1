//! How alarms are handled once raised: their kind and severity, the hold-down that keeps a
//! flapping lamp from paging twice, and how long a closed alarm is kept.
//!
//! The policy is configuration, not state: `fault` uses the hold-down, `api` the severities
//! and the retention (`ALARM_RETENTION_DAYS`, the template's `AlarmRetentionDays`;
//! `ALARM_HOLD_DOWN`; `ALARM_SEVERITIES`).

use crate::lamps::Alarm;
use crate::reading::LampColour;
use serde::{Deserialize, Serialize};

/// What an alarm is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// A lamp reported broken.
    Lamp,
    /// A detector that stopped reporting.
    SensorSilent,
}

impl AlarmKind {
    /// The name in the API and the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Lamp => "lamp",
            AlarmKind::SensorSilent => "sensor_silent",
        }
    }
}

/// How urgent an alarm is, most urgent last (so they order as they rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Look when convenient.
    Minor,
    /// Fix today.
    Major,
    /// Fix now (a dark red lamp is a safety hazard).
    Critical,
}

impl Severity {
    /// The name in the API and the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "minor" => Some(Severity::Minor),
            "major" => Some(Severity::Major),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// The severity of each kind of alarm (a lamp alarm's by its colour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Severities {
    /// A broken red lamp (default critical).
    pub red: Severity,
    /// A broken yellow lamp (default major).
    pub yellow: Severity,
    /// A broken green lamp (default major).
    pub green: Severity,
    /// A silent detector (default minor).
    pub sensor_silent: Severity,
}

impl Default for Severities {
    fn default() -> Self {
        Self {
            red: Severity::Critical,
            yellow: Severity::Major,
            green: Severity::Major,
            sensor_silent: Severity::Minor,
        }
    }
}

/// A day, ms.
const DAY_MS: i64 = 86_400_000;

/// The alarm handling parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmPolicy {
    /// How long a closed alarm stays in the log, ms (default 90 days).
    pub retention_ms: i64,
    /// After a lamp's alarm was published, how long a new alarm of the same lamp is recorded
    /// without being published (a lamp that flaps), ms (default 10 minutes).
    pub hold_down_ms: i64,
    /// The severity of each kind of alarm.
    pub severities: Severities,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            retention_ms: 90 * DAY_MS,
            hold_down_ms: 10 * 60_000,
            severities: Severities::default(),
        }
    }
}

/// A parameter out of range.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct AlarmPolicyError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl AlarmPolicy {
    /// The policy with a retention of `days` (1 to 3,650).
    pub fn with_retention_days(self, days: &str) -> Result<Self, AlarmPolicyError> {
        match days.trim().parse::<i64>() {
            Ok(d) if (1..=3650).contains(&d) => Ok(Self {
                retention_ms: d * DAY_MS,
                ..self
            }),
            _ => Err(AlarmPolicyError {
                name: "ALARM_RETENTION_DAYS",
                message: format!("must be a whole number of days 1..=3650, got {days:?}"),
            }),
        }
    }

    /// The policy with a hold-down of `text`: a whole number of seconds, minutes or hours
    /// (`90s`, `10m`, `1h`; `0` turns it off), at most a day.
    pub fn with_hold_down(self, text: &str) -> Result<Self, AlarmPolicyError> {
        let t = text.trim();
        let bad = || AlarmPolicyError {
            name: "ALARM_HOLD_DOWN",
            message: format!(
                "must be 0 or a duration such as 90s, 10m or 1h up to 24h, got {text:?}"
            ),
        };
        let ms = if t == "0" {
            0
        } else {
            let (n, unit) = t.split_at(t.len().saturating_sub(1));
            let n: i64 = n.parse().map_err(|_| bad())?;
            match unit {
                "s" => n * 1000,
                "m" => n * 60_000,
                "h" => n * 3_600_000,
                _ => return Err(bad()),
            }
        };
        if !(0..=DAY_MS).contains(&ms) {
            return Err(bad());
        }
        Ok(Self {
            hold_down_ms: ms,
            ..self
        })
    }

    /// The policy with severities overridden by `text`: comma-separated `name=severity`, names
    /// `red`, `yellow`, `green`, `sensor_silent`, severities `minor`, `major`, `critical`
    /// (`green=critical,sensor_silent=major`).
    pub fn with_severities(self, text: &str) -> Result<Self, AlarmPolicyError> {
        let mut s = self.severities;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || AlarmPolicyError {
                name: "ALARM_SEVERITIES",
                message: format!(
                    "{part:?}: expected red|yellow|green|sensor_silent=minor|major|critical"
                ),
            };
            let (name, level) = part.split_once('=').ok_or_else(bad)?;
            let level = Severity::parse(level.trim()).ok_or_else(bad)?;
            match name.trim() {
                "red" => s.red = level,
                "yellow" => s.yellow = level,
                "green" => s.green = level,
                "sensor_silent" => s.sensor_silent = level,
                _ => return Err(bad()),
            }
        }
        Ok(Self {
            severities: s,
            ..self
        })
    }

    /// The kind of an alarm.
    pub fn kind(&self, alarm: &Alarm) -> AlarmKind {
        if alarm.silent.is_some() {
            AlarmKind::SensorSilent
        } else {
            AlarmKind::Lamp
        }
    }

    /// The severity of an alarm.
    pub fn severity(&self, alarm: &Alarm) -> Severity {
        match (self.kind(alarm), alarm.lamp) {
            (AlarmKind::SensorSilent, _) => self.severities.sensor_silent,
            (AlarmKind::Lamp, LampColour::Red) => self.severities.red,
            (AlarmKind::Lamp, LampColour::Yellow) => self.severities.yellow,
            (AlarmKind::Lamp, LampColour::Green) => self.severities.green,
        }
    }

    /// Whether an alarm raised at `ts_ms` is held down: the same lamp's last published alarm
    /// (at `last_published_ms`, event time) is less than the hold-down before it. The alarm is
    /// still recorded; it is not published.
    pub fn held_down(&self, last_published_ms: Option<i64>, ts_ms: i64) -> bool {
        last_published_ms
            .is_some_and(|last| ts_ms >= last && ts_ms.saturating_sub(last) < self.hold_down_ms)
    }

    /// When the hold-down of an alarm raised at `ts_ms` ends (event time), if it is held down
    /// ([`AlarmPolicy::held_down`]): the same lamp's last published alarm plus the hold-down.
    /// If the lamp is still not ok then, the alarm is published (once).
    pub fn held_until(&self, last_published_ms: Option<i64>, ts_ms: i64) -> Option<i64> {
        last_published_ms
            .filter(|_| self.held_down(last_published_ms, ts_ms))
            .map(|last| last.saturating_add(self.hold_down_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{IntersectionId, LightIndex};

    /// Holds `set` to refusing each of `bads` with an error that names `variable`.
    fn refuses(
        set: impl Fn(AlarmPolicy, &str) -> Result<AlarmPolicy, AlarmPolicyError>,
        bads: &[&str],
        variable: &str,
    ) {
        for bad in bads {
            let e = set(AlarmPolicy::default(), bad);
            assert!(
                e.as_ref().is_err_and(|e| e.to_string().contains(variable)),
                "{bad}: {e:?}"
            );
        }
    }

    fn alarm(lamp: LampColour) -> Alarm {
        Alarm {
            intersection_id: IntersectionId::parse("I-1").unwrap_or_else(|e| panic!("{e}")),
            light: LightIndex::new(0).unwrap_or_else(|e| panic!("{e}")),
            lamp,
            ts_ms: 0,
            position: None,
            silent: None,
        }
    }

    #[test]
    fn a_broken_red_lamp_is_critical_and_green_or_yellow_major_unless_configured() {
        let p = AlarmPolicy::default();
        assert_eq!(p.severity(&alarm(LampColour::Red)), Severity::Critical);
        assert_eq!(p.severity(&alarm(LampColour::Yellow)), Severity::Major);
        assert_eq!(p.severity(&alarm(LampColour::Green)), Severity::Major);
        assert_eq!(p.severities.sensor_silent, Severity::Minor);
        assert_eq!(p.kind(&alarm(LampColour::Red)).as_str(), "lamp");
        let silent = Alarm {
            silent: Some(crate::lamps::Silence::Light),
            ..alarm(LampColour::Red)
        };
        assert_eq!(p.kind(&silent).as_str(), "sensor_silent");
        assert_eq!(p.severity(&silent), Severity::Minor);
        let q = AlarmPolicy::default().with_severities("green=critical, sensor_silent=major");
        let q = q.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.severity(&alarm(LampColour::Green)), Severity::Critical);
        assert_eq!(q.severities.sensor_silent, Severity::Major);
        refuses(
            AlarmPolicy::with_severities,
            &["green", "blue=major", "red=urgent"],
            "ALARM_SEVERITIES",
        );
    }

    #[test]
    fn a_lamp_alarm_inside_the_hold_down_of_its_last_published_one_is_held() {
        let p = AlarmPolicy::default();
        assert_eq!(p.hold_down_ms, 600_000);
        assert!(!p.held_down(None, 1_000));
        assert!(p.held_down(Some(0), 599_999));
        assert!(!p.held_down(Some(0), 600_000));
        // A replayed older alarm is not held by a newer publication.
        assert!(!p.held_down(Some(10_000), 5_000));
        assert_eq!(p.held_until(Some(0), 599_999), Some(600_000));
        assert_eq!(p.held_until(Some(0), 600_000), None);
        assert_eq!(p.held_until(None, 5), None);
        let off = AlarmPolicy::default().with_hold_down("0");
        assert!(off.is_ok_and(|p| !p.held_down(Some(0), 1)));
        for (text, ms) in [("90s", 90_000), ("10m", 600_000), ("1h", 3_600_000)] {
            let p = AlarmPolicy::default().with_hold_down(text);
            assert_eq!(p.map(|p| p.hold_down_ms), Ok(ms), "{text}");
        }
        refuses(
            AlarmPolicy::with_hold_down,
            &["10", "m", "-1m", "25h", "ten minutes"],
            "ALARM_HOLD_DOWN",
        );
    }

    #[test]
    fn closed_alarms_are_kept_ninety_days_unless_configured() {
        assert_eq!(AlarmPolicy::default().retention_ms, 90 * DAY_MS);
        let p = AlarmPolicy::default().with_retention_days("7");
        assert_eq!(p.map(|p| p.retention_ms), Ok(7 * DAY_MS));
        refuses(
            AlarmPolicy::with_retention_days,
            &["0", "-1", "x", "3651", ""],
            "ALARM_RETENTION_DAYS",
        );
    }
}
