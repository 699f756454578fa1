//! `traffic aws-setup`: the resources (tables, stream, topic, event bus) created unless they
//! exist, the city's intersections put into the registry, and the environment the functions
//! need.

use traffic_aws::setup::{Created, Resources, ensure_all};
use traffic_aws::{AwsClients, AwsNames, DynamoStore, StoreOptions};
use traffic_core::{City, EngineConfig};
use traffic_functions::Config;
use traffic_ports::{PortError, Registry};

/// Creates the resources (unless they exist) and puts the city's intersections that the
/// registry does not have yet.
pub async fn setup(
    clients: &AwsClients,
    resources: &Resources,
    city: &City,
    cfg: &EngineConfig,
) -> anyhow::Result<(Created, DynamoStore)> {
    let created = ensure_all(clients, resources).await?;
    let store = DynamoStore::new(
        clients.dynamodb.clone(),
        created.names.clone(),
        StoreOptions::for_longest_window(cfg.longest().ms(), |_| None)
            .map_err(anyhow::Error::msg)?,
    );
    for x in &city.intersections {
        match store.create_intersection(x).await {
            Ok(()) | Err(PortError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((created, store))
}

/// The resources' names: those `names` gives (the environment's), the prefix's otherwise
/// (`<prefix>-readings`, `-state`, `-registry`, `-results` for the table and the event bus,
/// `-alarms`); `shards` for a new stream.
pub fn resources(names: &AwsNames, prefix: &str, shards: i32) -> Resources {
    let mut r = Resources::with_prefix(prefix, shards);
    if let Some(s) = &names.readings_stream {
        r.stream = s.clone();
    }
    if let Some(s) = &names.state_table {
        r.state_table = s.clone();
    }
    if let Some(s) = &names.registry_table {
        r.registry_table = s.clone();
    }
    if let Some(s) = &names.results_table {
        r.results_table = s.clone();
    }
    if let Some(b) = &names.event_bus {
        r.event_bus = b.clone();
    }
    if let Some(arn) = &names.alarm_topic_arn {
        // The topic's name is the ARN's last part.
        r.topic = arn.rsplit(':').next().unwrap_or(arn).to_owned();
    }
    r
}

/// The environment the functions need for `created`, as `export` lines.
pub fn env_lines(created: &Created) -> Vec<String> {
    let n = &created.names;
    let mut out = vec!["export TRAFFIC_STORE=dynamodb".to_owned()];
    for (k, v) in [
        ("READINGS_STREAM", &n.readings_stream),
        ("STATE_TABLE", &n.state_table),
        ("REGISTRY_TABLE", &n.registry_table),
        ("RESULTS_TABLE", &n.results_table),
        ("ALARM_TOPIC_ARN", &n.alarm_topic_arn),
        ("EVENT_BUS_NAME", &n.event_bus),
    ] {
        if let Some(v) = v {
            out.push(format!("export {k}={v}"));
        }
    }
    out
}

/// What `traffic aws-setup` creates.
#[derive(Clone, Debug)]
pub struct SetupOptions {
    /// The resources.
    pub resources: Resources,
    /// The city to load.
    pub city: City,
    /// Also create this SQS queue and subscribe it to the alarm topic.
    pub alarm_queue: Option<String>,
}

/// `traffic aws-setup`: creates what is missing and prints the environment to use.
pub async fn aws_setup(config: &Config, opts: &SetupOptions) -> anyhow::Result<Created> {
    let clients = AwsClients::from_env().await?;
    let (created, _) = setup(&clients, &opts.resources, &opts.city, &config.engine).await?;
    if let Some(q) = &opts.alarm_queue {
        let queue = traffic_aws::setup::ensure_queue(&clients, q).await?;
        traffic_aws::setup::subscribe_queue(&clients, &created.topic_arn, &queue).await?;
        eprintln!("alarms also go to {}", queue.url);
    }
    eprintln!(
        "ready: stream {}, {} intersections in the registry",
        created.stream_arn,
        opts.city.intersections.len()
    );
    for line in env_lines(&created) {
        println!("{line}");
    }
    Ok(created)
}
