//! The one configuration of a traffic process, read once from the environment.
//!
//! Every Lambda `main` (and every mode of the `traffic` command) calls [`Config::from_env`]
//! once. The other readers of the environment: the logging setup ([`crate::init_tracing`]
//! reads the logging variables below through [`crate::logging::LogEnv::from_env`]); the
//! `traffic` command's options, which take the variables named in their rows below when the
//! option is not given (`src/args.rs`, `src/aws_args.rs`, `src/main.rs`), and its engine
//! options, over the engine's variables; the `serve` example of the API
//! (`functions/api/examples/serve.rs`, `TRAFFIC_API_TOKEN`). Every variable:
//!
//! | variable | read by | default | meaning |
//! |---|---|---|---|
//! | `TRAFFIC_WINDOWS`, `TRAFFIC_ALLOWED_LATENESS`, `TRAFFIC_MAX_CLOCK_SKEW`, `TRAFFIC_MIN_READING_INTERVAL`, `TRAFFIC_IDLE_TIMEOUT`, `TRAFFIC_SILENCE_AFTER`, `TRAFFIC_MERGE_MAX_PANES`, `TRAFFIC_DIGEST_SIZE`, `TRAFFIC_TOP_K`, `WEBSTER_*`, `DEMAND_*` | every function | see `core/src/config.rs` | the engine ([`EngineConfig`]), identical on every function |
//! | `TRAFFIC_STORE` | every function | `dynamodb` | the adapters; `dynamodb` is the only value (the embedded store is the `traffic` command's, in one process) |
//! | `STATE_TABLE`, `REGISTRY_TABLE`, `RESULTS_TABLE` | the functions that use them (`docs/aws.md`) | none | the DynamoDB tables |
//! | `ALARM_TOPIC_ARN` | `fault`, `merge` | none | the SNS topic of lamp and sensor-silent alarms |
//! | `READINGS_STREAM` | `merge`, `ingest`, `fault` (and `traffic simulate`) | none | the Kinesis stream, for its shard lineage after a reshard (merge) and its shards' hash key ranges (ingest, fault: misrouted records) |
//! | `EVENT_BUS_NAME` | `merge` | none: no events published (logged once) | the EventBridge bus of the result events (a window closed, timings changed) |
//! | `ARCHIVE_BUCKET` | `merge`, `api` | none: nothing archived (logged once), histories empty | the archive bucket: the merge's output tables by closed window, read back by `GET /api/intersections/{id}/history` |
//! | `TRAFFIC_DYNAMODB_MAX_ITEM_KB` | `ingest`, `merge` | `200` | largest item the adapter writes, KB, 4–400 (what grows with the city is cut into parts of at most this; tests lower it) |
//! | `TRAFFIC_PROVISIONAL` | `merge` | `all` | which open windows get provisional results: `all`, `shortest`, `none` |
//! | `ALARM_RETENTION_DAYS` | `api`, `fault`, `merge` | `90` | how long a closed alarm stays in the alarm log (DynamoDB's TTL deletes it then) |
//! | `ALARM_HOLD_DOWN` | `fault` | `10m` | after a lamp's alarm is published, how long a new alarm of that lamp is recorded without an SNS message (a flapping lamp) |
//! | `ALARM_SEVERITIES` | `api`, `fault`, `merge` (SNS subjects and attributes) | `red=critical,yellow=major,green=major,sensor_silent=minor` | the severity of each kind of alarm, any of them overridden |
//! | `TRAFFIC_API_TOKEN` | `api`, `traffic local` (`--api-token`) | none | a bearer token the writes need besides the authorizer's check |
//! | `TRAFFIC_LOG_FORMAT` | every function | text; JSON inside Lambda | `json` or `text`; wins over `AWS_LAMBDA_LOG_FORMAT` ([`crate::logging`]) |
//! | `AWS_LAMBDA_LOG_FORMAT` | every function (Lambda sets it: `LoggingConfig.LogFormat`) | none | `JSON` or `Text` |
//! | `RUST_LOG` | every function | `info` | log levels, tracing's filter syntax; wins over `AWS_LAMBDA_LOG_LEVEL` when not empty |
//! | `AWS_LAMBDA_LOG_LEVEL` | every function (Lambda sets it: `LoggingConfig.ApplicationLogLevel`) | none | `TRACE` ... `ERROR`, `FATAL` (as `ERROR`) |
//! | `TRAFFIC_METRICS` | every function | `emf` inside Lambda, `off` elsewhere | `emf`: one CloudWatch embedded-metric-format line per batch, run or request on standard output ([`crate::metrics`]); `off`: none |
//! | `TRAFFIC_METRICS_NAMESPACE` | every function | `Traffic` | the CloudWatch namespace of those metrics |
//! | `NO_COLOR` | every function, the `traffic` command | none | set and not empty: log lines carry no colour codes even on a terminal (off a terminal they never do) ([`crate::logging`]) |
//! | `AWS_LAMBDA_FUNCTION_NAME` | every function (Lambda sets it) | none | whether the process runs inside Lambda: the defaults of the log format and of `TRAFFIC_METRICS` |
//! | `AWS_XRAY_DAEMON_ADDRESS` | every function (Lambda sets it when the function is traced) | none | where the X-Ray subsegments of the handlers' steps go, inside Lambda only ([`crate::xray`]) |
//! | `_X_AMZN_TRACE_ID` | every function (Lambda's runtime sets it per invocation) | none | the invocation's trace header, read when no span of the runtime carries it ([`crate::xray`]) |
//! | `TRAFFIC_DATA_DIR` | `traffic local` (`--data-dir`) | `.data` | where the embedded store, the log file and the run's settings live |
//! | `TRAFFIC_LISTEN` | `traffic local` (`--listen`) | `127.0.0.1:8080` | the address of the API and the dashboard |
//! | `TRAFFIC_MERGE_EVERY` | `traffic sumo` (`--merge-every`) | `5m` | simulated time between merge runs |
//! | `PLAN_MIN_GREEN_S`, `PLAN_MIN_GREEN_FACTOR`, `PLAN_MAX_GREEN_FACTOR` | every function (engine variables: `merge` draws the plans it stores with the timings it writes, `api` the plan of an intersection without one; `traffic sumo` answers the stored ones) | `5`, `0.4`, `3` | the plans for actuated controllers (`traffic_core::plan`, `docs/contracts.md` "Plans"): per phase the minimum green is the larger of the factor × Webster's green and the seconds (and of the phase's minimum-green limit), the maximum green the factor (1 to 100) × Webster's green; the seconds 0 to 3600 |
//! | `PLAN_COORDINATION`, `PLAN_COORDINATION_DISTANCE_M`, `PLAN_PROGRESSION_SPEED_KMH` | `traffic sumo` | `off`, `400`, `40` | whether its plans are coordinated (`traffic_core::coordination`: intersections closer than the distance, in metres, share their longest cycle, and each one's busiest phase starts one travel time at the speed, in km/h, after its neighbour's, from the member with most counted vehicles outward); off because it measured worse on every network tried (`simulator/sumo/README.md`) |
//!
//! Region, credentials and endpoint come the AWS SDK's standard way (`AWS_REGION`,
//! `AWS_ENDPOINT_URL`, ...); a region must be configured (`traffic_aws::region`).
//!
//! The `traffic` command's in-process modes (`local`, `replay`, `sumo`, `aws-local`,
//! `aws-measure`, `redrive`) read this configuration too and hand its alarm policy
//! (`ALARM_*`) to the functions, the local API and the SNS publisher
//! ([`Config::aws_ports_on`]), as the Lambda mains do.

use traffic_aws::{AwsNames, StoreOptions};
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;

/// Which open windows get provisional results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Provisional {
    /// Every open window (reads every pane of the open windows each run).
    #[default]
    All,
    /// Only open windows of the shortest length (cheapest: one or two panes per run).
    Shortest,
    /// None: results appear when windows close.
    None,
}

impl std::str::FromStr for Provisional {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let names = [
            ("all", Self::All),
            ("shortest", Self::Shortest),
            ("none", Self::None),
        ];
        by_name(s, &names)
            .ok_or_else(|| format!("TRAFFIC_PROVISIONAL must be all, shortest or none, got {s:?}"))
    }
}

/// The value named `s` among `names`: what a `FromStr` of a choice by name looks up.
pub fn by_name<T: Copy>(s: &str, names: &[(&str, T)]) -> Option<T> {
    names.iter().find(|(name, _)| *name == s).map(|&(_, v)| v)
}

/// A variable with a value it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An engine parameter.
    #[error("reading the configuration: {0}")]
    Engine(#[from] traffic_core::config::ConfigError),
    /// Anything else, with the variable's name in the message.
    #[error("{0}")]
    Invalid(String),
}

/// Everything a traffic process reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// The engine's parameters.
    pub engine: EngineConfig,
    /// The tables, topic and stream.
    pub names: AwsNames,
    /// The DynamoDB adapter's options (state TTL from the longest window, item size).
    pub store: StoreOptions,
    /// Which open windows the merge reports.
    pub provisional: Provisional,
    /// The API's bearer token, if one is set (and not empty).
    pub api_token: Option<String>,
    /// How alarms are handled (the retention of closed ones).
    pub alarms: AlarmPolicy,
    /// The logging variables ([`crate::logging`]).
    pub log: crate::logging::LogEnv,
    /// Whether the functions write their metrics (EMF lines on standard output).
    pub metrics: bool,
    /// The CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let store = lookup("TRAFFIC_STORE").unwrap_or_else(|| "dynamodb".into());
        if store != "dynamodb" {
            return Err(ConfigError::Invalid(format!(
                "TRAFFIC_STORE must be dynamodb (the embedded store runs only inside `traffic local`), got {store:?}"
            )));
        }
        let engine = EngineConfig::from_lookup(&lookup)?;
        let store = StoreOptions::for_longest_window(engine.longest().ms(), &lookup)
            .map_err(ConfigError::Invalid)?;
        let provisional = match lookup("TRAFFIC_PROVISIONAL") {
            Some(p) => p.parse().map_err(ConfigError::Invalid)?,
            None => Provisional::All,
        };
        let alarms = match lookup("ALARM_RETENTION_DAYS") {
            Some(d) => AlarmPolicy::default()
                .with_retention_days(&d)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => AlarmPolicy::default(),
        };
        let mut alarms = alarms;
        if let Some(v) = lookup("ALARM_HOLD_DOWN") {
            alarms = alarms
                .with_hold_down(&v)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if let Some(v) = lookup("ALARM_SEVERITIES") {
            alarms = alarms
                .with_severities(&v)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let in_lambda = lookup("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let metrics = match lookup("TRAFFIC_METRICS").as_deref() {
            None => in_lambda,
            Some("emf") => true,
            Some("off") => false,
            Some(v) => {
                return Err(ConfigError::Invalid(format!(
                    "TRAFFIC_METRICS must be emf or off, got {v:?}"
                )));
            }
        };
        let metrics_namespace = lookup("TRAFFIC_METRICS_NAMESPACE")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| crate::metrics::NAMESPACE.to_owned());
        Ok(Self {
            engine,
            metrics,
            metrics_namespace,
            alarms,
            names: AwsNames::from_lookup(&lookup),
            store,
            provisional,
            api_token: lookup("TRAFFIC_API_TOKEN").filter(|t| !t.is_empty()),
            log: crate::logging::LogEnv::from_lookup(&lookup),
        })
    }
}

impl Config {
    /// The AWS ports the configuration names, on clients built now (once per process):
    /// DynamoDB, the SNS topic, the EventBridge bus, and the stream's shards when the stream
    /// is named. Without a region configured (Lambda always sets `AWS_REGION`),
    /// [`traffic_aws::NoRegion`].
    pub async fn aws_ports(&self) -> Result<traffic_aws::AwsPorts, traffic_aws::NoRegion> {
        let clients = traffic_aws::AwsClients::from_env().await?;
        Ok(self.aws_ports_on(&clients, self.names.clone()))
    }

    /// The AWS ports over `clients` and the resources `names` (a process that created its
    /// own resources), the SNS publisher naming each alarm's severity as `ALARM_SEVERITIES`
    /// says: the one way every mode builds its AWS ports.
    pub fn aws_ports_on(
        &self,
        clients: &traffic_aws::AwsClients,
        names: traffic_aws::AwsNames,
    ) -> traffic_aws::AwsPorts {
        let topic = names.alarm_topic_arn.clone();
        let mut aws = traffic_aws::AwsPorts::new(clients, names, self.store.clone());
        aws.ports.publisher = std::sync::Arc::new(
            traffic_aws::sns::SnsPublisher::new(clients.sns.clone(), topic)
                .with_alarm_policy(self.alarms.clone()),
        );
        aws
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn an_empty_environment_gives_the_defaults() {
        let c = config(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.provisional, Provisional::All);
        assert_eq!(c.api_token, None);
        assert_eq!(c.engine.top_k, EngineConfig::default().top_k);
        assert_eq!(c.log, crate::logging::LogEnv::default());
        assert!(!c.metrics, "no metric lines outside Lambda unless asked");
        assert_eq!(c.metrics_namespace, "Traffic");
    }

    #[test]
    fn metrics_are_on_inside_lambda_unless_turned_off_and_on_when_asked() {
        let ok = |vars: &[(&str, &str)]| config(vars).unwrap_or_else(|e| panic!("{e}"));
        assert!(ok(&[("AWS_LAMBDA_FUNCTION_NAME", "traffic-ingest")]).metrics);
        assert!(
            !ok(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "traffic-ingest"),
                ("TRAFFIC_METRICS", "off")
            ])
            .metrics
        );
        let c = ok(&[
            ("TRAFFIC_METRICS", "emf"),
            ("TRAFFIC_METRICS_NAMESPACE", "Traffic/test"),
        ]);
        assert!(c.metrics);
        assert_eq!(c.metrics_namespace, "Traffic/test");
    }

    #[test]
    fn every_variable_is_read_and_a_bad_one_is_named() {
        let c = config(&[
            ("TRAFFIC_PROVISIONAL", "shortest"),
            ("TRAFFIC_API_TOKEN", "s3cret"),
            ("STATE_TABLE", "t-state"),
            ("EVENT_BUS_NAME", "t-results"),
            ("TRAFFIC_LOG_FORMAT", "json"),
            ("ALARM_RETENTION_DAYS", "30"),
            ("ALARM_HOLD_DOWN", "5m"),
            ("ALARM_SEVERITIES", "green=critical"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.provisional, Provisional::Shortest);
        assert_eq!(c.api_token.as_deref(), Some("s3cret"));
        assert_eq!(c.names.state_table.as_deref(), Some("t-state"));
        assert_eq!(c.names.event_bus.as_deref(), Some("t-results"));
        assert_eq!(c.log.traffic_format.as_deref(), Some("json"));
        assert_eq!(c.alarms.retention_ms, 30 * 86_400_000);
        assert_eq!(c.alarms.hold_down_ms, 300_000);
        assert_eq!(
            c.alarms.severities.green,
            traffic_core::alarm::Severity::Critical
        );
        for (var, value) in [
            ("ALARM_HOLD_DOWN", "10"),
            ("ALARM_SEVERITIES", "green=bad"),
            ("ALARM_RETENTION_DAYS", "0"),
            ("TRAFFIC_PROVISIONAL", "some"),
            ("TRAFFIC_STORE", "embedded:/tmp/x.redb"),
            ("TRAFFIC_DYNAMODB_MAX_ITEM_KB", "0"),
            ("TRAFFIC_WINDOWS", "7m,1h"),
            ("TRAFFIC_METRICS", "yes"),
        ] {
            let e = config(&[(var, value)]).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().contains(var)),
                "{var}={value}: {e:?}"
            );
        }
    }
}
