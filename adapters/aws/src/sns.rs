//! [`AlarmPublisher`] on an SNS topic (`ALARM_TOPIC_ARN`).
//!
//! One `Publish` per alarm, with a message per protocol (`MessageStructure: json`): a short
//! line for SMS, a readable text for email (under a readable subject), and for everything
//! else (SQS, HTTP, Lambda) the line with the position. The same facts travel as message
//! attributes (`intersection_id`, `light`, `lamp`, `lat`, `lon`, `alarm_id`, `ts`), so a
//! subscription can filter, say, on one district's intersections or on green lamps only. On a
//! FIFO topic (`….fifo`) the alarm id is the deduplication id, so SNS itself drops a repeat.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use traffic_core::lamps::Alarm;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::{AlarmPublisher, PortError, PortResult};

/// Publishes alarms to an SNS topic.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: Option<String>,
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

/// The SNS message of an alarm.
pub fn alarm_message(alarm: &Alarm) -> AlarmMessage {
    let since = format_rfc3339_ms(alarm.ts_ms);
    let mut subject = format!(
        "Lamp failure at {}: light {} {} lamp",
        alarm.intersection_id,
        alarm.light,
        alarm.lamp.as_str()
    );
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
    let email = format!(
        "The {} lamp of light {} at intersection {} is broken.\n\n\
         First reported broken: {since}\nPosition: {}{map}\nAlarm id: {}\n\n\
         Mark the lamp repaired in the dashboard once it has been replaced.",
        alarm.lamp.as_str(),
        alarm.light,
        alarm.intersection_id,
        alarm
            .position
            .map(|p| format!("{:.5}, {:.5}", p.lat, p.lon))
            .unwrap_or_else(|| "unknown".into()),
        alarm.id()
    );
    let message = serde_json::json!({
        "default": default,
        "sms": sms,
        "email": email,
    })
    .to_string();
    let mut attributes = vec![
        (
            "intersection_id",
            "String",
            alarm.intersection_id.to_string(),
        ),
        ("light", "Number", alarm.light.get().to_string()),
        ("lamp", "String", alarm.lamp.as_str().to_owned()),
        ("alarm_id", "String", alarm.id()),
        ("ts", "String", since),
    ];
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
        Self { client, topic_arn }
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
        let m = alarm_message(alarm);
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
                .message_deduplication_id(alarm.id());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| port_error(format!("publishing alarm {}", alarm.id()), e))?;
        tracing::warn!(
            intersection = %alarm.intersection_id,
            light = %alarm.light,
            lamp = alarm.lamp.as_str(),
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
        };
        let m = alarm_message(&alarm);
        assert_eq!(m.subject, "Lamp failure at I-0003: light 0 green lamp");
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
        for n in ["intersection_id", "light", "lamp", "lat", "lon"] {
            assert!(names.contains(&n), "{n}");
        }
        Ok(())
    }
}
