//! Creating the system's resources, idempotently (an existing resource is left as it is): the
//! three tables (partition key `pk`, sort key `sk`, on demand, TTL on `expires_at`), the
//! stream, the alarm topic, and SQS queues (an on-failure destination, or a subscription that
//! reads alarms back). `traffic aws-setup` and the tests use these; in AWS the SAM template
//! creates the same resources.

use crate::AwsClients;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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

/// The error of an SDK call made for `what`, with the service's own message.
fn sdk_err<E, R>(what: impl Into<String>, e: &SdkError<E, R>) -> SetupError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    err(what, DisplayErrorContext(e))
}

/// Done when the call succeeded or failed with the error code `fine` (the resource was there
/// already, or gone already); any other failure is `what`'s.
fn done_unless<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    fine: &str,
    what: impl Into<String>,
) -> Result<(), SetupError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some(fine) => Ok(()),
        Err(e) => Err(sdk_err(what, &e)),
    }
}

/// Asks `active` every 200 ms, for two minutes at most, until it answers `Some`; `None` when
/// it never did.
async fn until_active<T, F: Future<Output = Result<Option<T>, SetupError>>>(
    active: impl Fn() -> F,
) -> Result<Option<T>, SetupError> {
    for _ in 0..600 {
        if let Some(t) = active().await? {
            return Ok(Some(t));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
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
    done_unless(created, "ResourceInUseException", &what)?;
    // Still not active after the wait: the TTL call below says what is wrong, if anything.
    until_active(|| async {
        let d = c
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_err(&what, &e))?;
        let status = d.table().and_then(|t| t.table_status());
        Ok(status.is_some_and(|s| s.as_str() == "ACTIVE").then_some(()))
    })
    .await?;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("expires_at")
        .build()
        .map_err(|e| err(&what, e))?;
    let ttl = c
        .dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await;
    // "TimeToLive is already enabled".
    done_unless(ttl, "ValidationException", format!("TTL of {what}"))
}

/// Deletes a table (for tests cleaning up); a missing table is fine.
pub async fn delete_table(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    let deleted = c.dynamodb.delete_table().table_name(name).send().await;
    done_unless(
        deleted,
        "ResourceNotFoundException",
        format!("deleting table {name}"),
    )
}

/// Creates a provisioned stream of `shards` shards unless it exists; waits until it is
/// active and returns its ARN.
pub async fn ensure_stream(c: &AwsClients, name: &str, shards: i32) -> Result<String, SetupError> {
    let what = format!("stream {name}");
    let created = c
        .kinesis
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await;
    done_unless(created, "ResourceInUseException", &what)?;
    let arn = until_active(|| async {
        let d = c
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| sdk_err(&what, &e))?;
        Ok(d.stream_description_summary()
            .filter(|s| *s.stream_status() == StreamStatus::Active)
            .map(|s| s.stream_arn().to_owned()))
    })
    .await?;
    arn.ok_or_else(|| err(&what, "not active after 2 minutes"))
}

/// Deletes a stream; a missing stream is fine.
pub async fn delete_stream(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    let deleted = c
        .kinesis
        .delete_stream()
        .stream_name(name)
        .enforce_consumer_deletion(true)
        .send()
        .await;
    done_unless(
        deleted,
        "ResourceNotFoundException",
        format!("deleting stream {name}"),
    )
}

/// Creates a topic (idempotent in SNS itself) and returns its ARN.
pub async fn ensure_topic(c: &AwsClients, name: &str) -> Result<String, SetupError> {
    let r = c
        .sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| sdk_err(format!("topic {name}"), &e))?;
    r.topic_arn()
        .map(str::to_owned)
        .ok_or_else(|| err(format!("topic {name}"), "no ARN in the answer"))
}

/// Creates an EventBridge bus unless it exists.
pub async fn ensure_event_bus(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    let created = c.events.create_event_bus().name(name).send().await;
    done_unless(
        created,
        "ResourceAlreadyExistsException",
        format!("event bus {name}"),
    )
}

/// Creates the S3 bucket `name` in the clients' region unless the caller owns it already.
pub async fn ensure_bucket(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let mut create = c.s3.create_bucket().bucket(name);
    // us-east-1 takes no location constraint; every other region needs its own.
    if c.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(c.region.as_str()))
                .build(),
        );
    }
    done_unless(
        create.send().await,
        "BucketAlreadyOwnedByYou",
        format!("bucket {name}"),
    )
}

/// Deletes an EventBridge bus; a missing bus is fine.
pub async fn delete_event_bus(c: &AwsClients, name: &str) -> Result<(), SetupError> {
    let deleted = c.events.delete_event_bus().name(name).send().await;
    done_unless(
        deleted,
        "ResourceNotFoundException",
        format!("deleting event bus {name}"),
    )
}

/// Deletes a topic; a missing topic is fine.
pub async fn delete_topic(c: &AwsClients, arn: &str) -> Result<(), SetupError> {
    let deleted = c.sns.delete_topic().topic_arn(arn).send().await;
    done_unless(deleted, "NotFound", format!("deleting topic {arn}"))
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
        .map_err(|e| sdk_err(&what, &e))?
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
        .map_err(|e| sdk_err(&what, &e))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| err(&what, "no ARN in the answer"))?;
    Ok(Queue { url, arn })
}

/// Deletes a queue; a missing queue is fine.
pub async fn delete_queue(c: &AwsClients, url: &str) -> Result<(), SetupError> {
    let deleted = c.sqs.delete_queue().queue_url(url).send().await;
    done_unless(
        deleted,
        "AWS.SimpleQueueService.NonExistentQueue",
        format!("deleting queue {url}"),
    )
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
        .map_err(|e| sdk_err(&what, &e))?;
    let r = c
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue.arn)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| sdk_err(&what, &e))?;
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
            // The archive is the template's (a retained bucket with lifecycle rules and the
            // Glue tables over it): a process that creates its own resources archives nothing
            // unless ARCHIVE_BUCKET names one.
            archive_bucket: None,
        },
        topic_arn,
    })
}
