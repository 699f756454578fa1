//! [`AlarmPublisher`] on an SNS topic (`ALARM_TOPIC_ARN`).
//!
//! One `Publish` per alarm, with a message per protocol (`MessageStructure: json`): a short
//! line for SMS, a readable text for email (under a readable subject), and for everything
//! else (SQS, HTTP, Lambda) the line with the position. The subject starts with the alarm's
//! severity (`[critical] Lamp failure at ...`, `[minor] Sensor silent at ...`). The same facts
//! travel as message attributes (`kind`, `severity`, `intersection_id`, `light`, `lamp` for a
//! lamp, `scope` for a silence, `lat`, `lon`, `alarm_id`, `ts`), so a subscription can
//! filter, say, on critical alarms only, on one district's intersections or on green lamps. On a
//! FIFO topic (`….fifo`) the alarm id is the deduplication id, so SNS itself drops a repeat.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::lamps::{Alarm, Silence};
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::{AlarmPublisher, PortError, PortResult};

/// Publishes alarms to an SNS topic.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: Option<String>,
    policy: AlarmPolicy,
}

/// What one alarm becomes on SNS.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmMessage {
    /// The email subject (at most 100 characters, one line).
    pub subject: String,
    /// The JSON message with a text per protocol.
    pub message: String,
    /// The short text (SMS).
    pub sms: String,
    /// Message attributes: (name, data type, value).
    pub attributes: Vec<(&'static str, &'static str, String)>,
}

/// The SNS message of an alarm, its severity by the default policy.
pub fn alarm_message(alarm: &Alarm) -> AlarmMessage {
    alarm_message_as(alarm, &AlarmPolicy::default())
}

/// The SNS message of an alarm, its kind and severity by `policy` (`ALARM_SEVERITIES`).
pub fn alarm_message_as(alarm: &Alarm, policy: &AlarmPolicy) -> AlarmMessage {
    let since = format_rfc3339_ms(alarm.ts_ms);
    let kind = policy.kind(alarm).as_str();
    let severity = policy.severity(alarm).as_str();
    let what = match alarm.silent {
        None => format!(
            "Lamp failure at {}: light {} {} lamp",
            alarm.intersection_id,
            alarm.light,
            alarm.lamp.as_str()
        ),
        Some(Silence::Light) => format!(
            "Sensor silent at {}: light {}",
            alarm.intersection_id, alarm.light
        ),
        Some(Silence::Intersection) => {
            format!("Sensor silent at {}: all lights", alarm.intersection_id)
        }
        Some(Silence::City) => "Sensor silent city-wide".to_owned(),
    };
    let mut subject = format!("[{severity}] {what}");
    subject.truncate(100);
    let sms = alarm.short_text();
    let place = alarm
        .position
        .map(|p| format!(" at {:.5},{:.5}", p.lat, p.lon))
        .unwrap_or_default();
    let default = format!("{sms}{place}");
    let map = alarm
        .position
        .map(|p| {
            format!(
                "\nMap: https://www.openstreetmap.org/?mlat={:.5}&mlon={:.5}#map=18/{:.5}/{:.5}",
                p.lat, p.lon, p.lat, p.lon
            )
        })
        .unwrap_or_default();
    let position = alarm
        .position
        .map(|p| format!("{:.5}, {:.5}", p.lat, p.lon))
        .unwrap_or_else(|| "unknown".into());
    let email = match alarm.silent {
        None => format!(
            "The {} lamp of light {} at intersection {} is broken ({severity}).\n\n\
             First reported broken: {since}\nPosition: {position}{map}\nAlarm id: {}\n\n\
             Mark the lamp repaired in the dashboard once it has been replaced.",
            alarm.lamp.as_str(),
            alarm.light,
            alarm.intersection_id,
            alarm.id()
        ),
        Some(_) => format!(
            "{} ({severity}).\n\nNo reading since: {since}\nPosition: {position}{map}\n\
             Alarm id: {}\n\nThe alarm resolves itself when the detectors report again.",
            alarm.short_text(),
            alarm.id()
        ),
    };
    let message = serde_json::json!({
        "default": default,
        "sms": sms,
        "email": email,
    })
    .to_string();
    let mut attributes = vec![
        ("kind", "String", kind.to_owned()),
        ("severity", "String", severity.to_owned()),
        (
            "intersection_id",
            "String",
            alarm.intersection_id.to_string(),
        ),
        ("light", "Number", alarm.light.get().to_string()),
        ("alarm_id", "String", alarm.id().to_string()),
        ("ts", "String", since),
    ];
    match alarm.silent {
        None => attributes.push(("lamp", "String", alarm.lamp.as_str().to_owned())),
        Some(s) => attributes.push(("scope", "String", s.as_str().to_owned())),
    }
    if let Some(p) = alarm.position {
        attributes.push(("lat", "Number", p.lat.to_string()));
        attributes.push(("lon", "Number", p.lon.to_string()));
    }
    AlarmMessage {
        subject,
        message,
        sms,
        attributes,
    }
}

impl SnsPublisher {
    /// A publisher to `topic_arn` (`None`: every publish fails, saying `ALARM_TOPIC_ARN` is
    /// not set).
    pub fn new(client: aws_sdk_sns::Client, topic_arn: Option<String>) -> Self {
        Self {
            client,
            topic_arn,
            policy: AlarmPolicy::default(),
        }
    }

    /// The same publisher, naming severities by `policy` (`ALARM_SEVERITIES`).
    pub fn with_alarm_policy(mut self, policy: AlarmPolicy) -> Self {
        self.policy = policy;
        self
    }
}

#[async_trait]
impl AlarmPublisher for SnsPublisher {
    async fn publish(&self, alarm: &Alarm) -> PortResult<()> {
        let Some(topic) = self.topic_arn.as_deref() else {
            return Err(PortError::backend(
                "ALARM_TOPIC_ARN is not set",
                "the fault function needs the ALARM_TOPIC_ARN environment variable",
            ));
        };
        let m = alarm_message_as(alarm, &self.policy);
        let mut req = self
            .client
            .publish()
            .topic_arn(topic)
            .subject(&m.subject)
            .message(&m.message)
            .message_structure("json");
        for (name, kind, value) in &m.attributes {
            let v = MessageAttributeValue::builder()
                .data_type(*kind)
                .string_value(value)
                .build()
                .map_err(|e| PortError::backend("building a message attribute", e))?;
            req = req.message_attributes(*name, v);
        }
        if topic.ends_with(".fifo") {
            req = req
                .message_group_id(alarm.intersection_id.as_str())
                .message_deduplication_id(alarm.id().to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| port_error(format!("publishing alarm {}", alarm.id()), e))?;
        tracing::warn!(
            intersection = %alarm.intersection_id,
            light = %alarm.light,
            kind = self.policy.kind(alarm).as_str(),
            severity = self.policy.severity(alarm).as_str(),
            message_id = resp.message_id().unwrap_or(""),
            "{}",
            m.sms
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::reading::{LampColour, Position};
    use traffic_core::{IntersectionId, LightIndex};

    #[test]
    fn an_alarm_message_names_the_lamp_and_the_place_everywhere() -> anyhow::Result<()> {
        let alarm = Alarm {
            intersection_id: IntersectionId::parse("I-0003")?,
            light: LightIndex::new(0)?,
            lamp: LampColour::Green,
            ts_ms: 1_767_600_120_000,
            position: Some(Position {
                lat: 41.87,
                lon: 12.62,
            }),
            silent: None,
        };
        let m = alarm_message(&alarm);
        assert_eq!(
            m.subject,
            "[major] Lamp failure at I-0003: light 0 green lamp"
        );
        assert!(m.sms.len() <= 160, "{}", m.sms);
        let v: serde_json::Value = serde_json::from_str(&m.message)?;
        assert!(
            v["default"]
                .as_str()
                .is_some_and(|s| s.contains("I-0003") && s.contains("41.87000,12.62000"))
        );
        assert!(
            v["email"]
                .as_str()
                .is_some_and(|s| s.contains("openstreetmap"))
        );
        let names: Vec<_> = m.attributes.iter().map(|a| a.0).collect();
        for n in [
            "kind",
            "severity",
            "intersection_id",
            "light",
            "lamp",
            "lat",
            "lon",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        Ok(())
    }

    #[test]
    fn a_silence_message_says_kind_severity_and_scope_in_subject_and_attributes()
    -> anyhow::Result<()> {
        let alarm = Alarm {
            intersection_id: IntersectionId::parse("I-0003")?,
            light: LightIndex::new(0)?,
            lamp: LampColour::Red,
            ts_ms: 1_767_600_120_000,
            position: None,
            silent: Some(Silence::Intersection),
        };
        let m = alarm_message(&alarm);
        assert_eq!(m.subject, "[minor] Sensor silent at I-0003: all lights");
        let policy = AlarmPolicy::default().with_severities("sensor_silent=major")?;
        let m = alarm_message_as(&alarm, &policy);
        assert!(m.subject.starts_with("[major] "), "{}", m.subject);
        let attr = |n: &str| m.attributes.iter().find(|a| a.0 == n).map(|a| a.2.clone());
        assert_eq!(attr("kind").as_deref(), Some("sensor_silent"));
        assert_eq!(attr("severity").as_deref(), Some("major"));
        assert_eq!(attr("scope").as_deref(), Some("intersection"));
        assert_eq!(attr("lamp"), None);
        let v: serde_json::Value = serde_json::from_str(&m.message)?;
        assert!(v["email"].as_str().is_some_and(|s| s.contains("major")));
        Ok(())
    }
}
