//! Creating the system's resources, idempotently (an existing resource is left as it is): the
//! three tables (partition key `pk`, sort key `sk`, on demand, TTL on `expires_at`), the
//! stream, the alarm topic, and SQS queues (an on-failure destination, or a subscription that
//! reads alarms back). `traffic aws-setup` and the tests use these; in AWS the SAM template
//! creates the same resources.

use crate::AwsClients;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_kinesis::types::StreamStatus;
use std::time::Duration;

/// A resource could not be created.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct SetupError {
    /// What was being created.
    pub what: String,
    /// Why it failed.
    pub message: String,
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> SetupError {
    SetupError {
        what: what.into(),
        message: e.to_string(),
    }
}

/// Creates a table (`pk`/`sk` strings, on demand, TTL on `expires_at`) unless it exists,
/// and waits until it is active.
pub async fn ensure_table(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    let what = format!("table {name}");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| err(&what, e))
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| err(&what, e))
    };
    let created = c
        .dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if crate::error::code_of(&e) == Some("ResourceInUseException") => {}
        Err(e) => {
            return Err(err(&what, aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
        }
    }
    for _ in 0..600 {
        let d = c
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| err(&what, aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        if d.table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| s.as_str() == "ACTIVE")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("expires_at")
        .build()
        .map_err(|e| err(&what, e))?;
    match c
        .dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // "TimeToLive is already enabled".
        Err(e) if crate::error::code_of(&e) == Some("ValidationException") => Ok(()),
        Err(e) => Err(err(
            format!("TTL of {what}"),
            aws_sdk_dynamodb::error::DisplayErrorContext(&e),
        )),
    }
}

/// Deletes a table (for tests cleaning up); a missing table is fine.
pub async fn delete_table(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    match c.dynamodb.delete_table().table_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(err(
            format!("deleting table {name}"),
            aws_sdk_dynamodb::error::DisplayErrorContext(&e),
        )),
    }
}

/// Creates a provisioned stream of `shards` shards unless it exists; waits until it is
/// active and returns its ARN.
pub async fn ensure_stream(c: &AwsClients, name: &str, shards: i32) -> Result<String, SetupError> {
    let what = format!("stream {name}");
    match c
        .kinesis
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if crate::error::code_of(&e) == Some("ResourceInUseException") => {}
        Err(e) => return Err(err(&what, aws_sdk_kinesis::error::DisplayErrorContext(&e))),
    }
    for _ in 0..600 {
        let d = c
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| err(&what, aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
        if let Some(s) = d.stream_description_summary()
            && *s.stream_status() == StreamStatus::Active
        {
            return Ok(s.stream_arn().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(err(&what, "not active after 2 minutes"))
}

/// Deletes a stream; a missing stream is fine.
pub async fn delete_stream(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    match c
        .kinesis
        .delete_stream()
        .stream_name(name)
        .enforce_consumer_deletion(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(err(
            format!("deleting stream {name}"),
            aws_sdk_kinesis::error::DisplayErrorContext(&e),
        )),
    }
}

/// Creates a topic (idempotent in SNS itself) and returns its ARN.
pub async fn ensure_topic(c: &AwsClients, name: &str) -> Result<String, SetupError> {
    let r = c.sns.create_topic().name(name).send().await.map_err(|e| {
        err(
            format!("topic {name}"),
            aws_sdk_sns::error::DisplayErrorContext(&e),
        )
    })?;
    r.topic_arn()
        .map(str::to_owned)
        .ok_or_else(|| err(format!("topic {name}"), "no ARN in the answer"))
}

/// Creates an EventBridge bus unless it exists.
pub async fn ensure_event_bus(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    match c.events.create_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(e) => Err(err(
            format!("event bus {name}"),
            aws_sdk_eventbridge::error::DisplayErrorContext(&e),
        )),
    }
}

/// Deletes an EventBridge bus; a missing bus is fine.
pub async fn delete_event_bus(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    match c.events.delete_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(err(
            format!("deleting event bus {name}"),
            aws_sdk_eventbridge::error::DisplayErrorContext(&e),
        )),
    }
}

/// Deletes a topic.
pub async fn delete_topic(c: &AwsClients, arn: &str) -> Result<(), SetupError> {
    c.sns
        .delete_topic()
        .topic_arn(arn)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            err(
                format!("deleting topic {arn}"),
                aws_sdk_sns::error::DisplayErrorContext(&e),
            )
        })
}

/// An SQS queue: its URL and ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    /// The URL (for `SendMessage`, `ReceiveMessage`).
    pub url: String,
    /// The ARN (for a subscription).
    pub arn: String,
}

/// Creates a queue (idempotent in SQS itself).
pub async fn ensure_queue(c: &AwsClients, name: &str) -> Result<Queue, SetupError> {
    let what = format!("queue {name}");
    let url = c
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| err(&what, aws_sdk_sqs::error::DisplayErrorContext(&e)))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| err(&what, "no URL in the answer"))?;
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(&what, aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| err(&what, "no ARN in the answer"))?;
    Ok(Queue { url, arn })
}

/// Deletes a queue.
pub async fn delete_queue(c: &AwsClients, url: &str) -> Result<(), SetupError> {
    c.sqs
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            err(
                format!("deleting queue {url}"),
                aws_sdk_sqs::error::DisplayErrorContext(&e),
            )
        })
}

/// Subscribes a queue to a topic (raw delivery off: the queue receives SNS's JSON envelope,
/// with the subject and message attributes), allowing the topic to send to it.
pub async fn subscribe_queue(
    c: &AwsClients,
    topic_arn: &str,
    queue: &Queue,
) -> Result<String, SetupError> {
    let what = format!("subscription of {} to {topic_arn}", queue.arn);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}
        }]
    });
    c.sqs
        .set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        .send()
        .await
        .map_err(|e| err(&what, aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let r = c
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue.arn)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| err(&what, aws_sdk_sns::error::DisplayErrorContext(&e)))?;
    Ok(r.subscription_arn().unwrap_or_default().to_owned())
}

/// The system's resources by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    /// Stream name.
    pub stream: String,
    /// Shards of a new stream.
    pub shards: i32,
    /// State table.
    pub state_table: String,
    /// Registry table.
    pub registry_table: String,
    /// Results table.
    pub results_table: String,
    /// Topic name.
    pub topic: String,
    /// The EventBridge bus of the merge's result events.
    pub event_bus: String,
}

impl Resources {
    /// Names with a common prefix: `<prefix>-readings`, `<prefix>-state`, `<prefix>-registry`,
    /// `<prefix>-results` (the table, and the event bus as the template names it),
    /// `<prefix>-alarms`.
    pub fn with_prefix(prefix: &str, shards: i32) -> Self {
        Self {
            stream: format!("{prefix}-readings"),
            shards,
            state_table: format!("{prefix}-state"),
            registry_table: format!("{prefix}-registry"),
            results_table: format!("{prefix}-results"),
            topic: format!("{prefix}-alarms"),
            event_bus: format!("{prefix}-results"),
        }
    }
}

/// What [`ensure_all`] created or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The stream's ARN.
    pub stream_arn: String,
    /// The topic's ARN.
    pub topic_arn: String,
    /// The names, as the functions read them from the environment.
    pub names: crate::AwsNames,
}

/// Creates every resource unless it exists.
pub async fn ensure_all(c: &AwsClients, r: &Resources) -> Result<Created, SetupError> {
    for t in [&r.state_table, &r.registry_table, &r.results_table] {
        ensure_table(c, t).await?;
    }
    let stream_arn = ensure_stream(c, &r.stream, r.shards).await?;
    let topic_arn = ensure_topic(c, &r.topic).await?;
    ensure_event_bus(c, &r.event_bus).await?;
    Ok(Created {
        stream_arn,
        names: crate::AwsNames {
            state_table: Some(r.state_table.clone()),
            registry_table: Some(r.registry_table.clone()),
            results_table: Some(r.results_table.clone()),
            alarm_topic_arn: Some(topic_arn.clone()),
            readings_stream: Some(r.stream.clone()),
            event_bus: Some(r.event_bus.clone()),
        },
        topic_arn,
    })
}
