//! How alarms are handled once raised: how long a closed alarm is kept.
//!
//! The policy is configuration, not state: every function that closes alarms (`api` on a
//! repair or a deletion) is given the same one (`ALARM_RETENTION_DAYS`, the template's
//! `AlarmRetentionDays`).

/// A day, ms.
const DAY_MS: i64 = 86_400_000;

/// The alarm handling parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmPolicy {
    /// How long a closed alarm stays in the log, ms (default 90 days).
    pub retention_ms: i64,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            retention_ms: 90 * DAY_MS,
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
            Ok(d) if (1..=3650).contains(&d) => {
                let mut p = self;
                p.retention_ms = d * DAY_MS;
                Ok(p)
            }
            _ => Err(AlarmPolicyError {
                name: "ALARM_RETENTION_DAYS",
                message: format!("must be a whole number of days 1..=3650, got {days:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_alarms_are_kept_ninety_days_unless_configured() {
        assert_eq!(AlarmPolicy::default().retention_ms, 90 * DAY_MS);
        let p = AlarmPolicy::default().with_retention_days("7");
        assert_eq!(p.map(|p| p.retention_ms), Ok(7 * DAY_MS));
        for bad in ["0", "-1", "x", "3651", ""] {
            let e = AlarmPolicy::default().with_retention_days(bad);
            assert!(
                e.as_ref()
                    .is_err_and(|e| e.to_string().contains("ALARM_RETENTION_DAYS")),
                "{bad}: {e:?}"
            );
        }
    }
}
