//! Where log lines go and how they look: one rule for the Lambda functions and the `traffic`
//! command, decided by a pure function of the environment ([`LogSettings::resolve`]) and applied
//! by [`init`].
//!
//! **Format.** JSON lines inside Lambda by default, and whenever asked; text otherwise.
//! `TRAFFIC_LOG_FORMAT` (`json` or `text`) wins when set; else Lambda's
//! `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, the function's `LoggingConfig.LogFormat`); else
//! JSON inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set) and text outside. Values are read
//! without regard to case; any other value is ignored (and said once the subscriber is up).
//!
//! **Level.** `RUST_LOG` (tracing's filter syntax, such as `info` or `ingest=debug,info`) wins
//! when set and not empty; else Lambda's `AWS_LAMBDA_LOG_LEVEL` (the function's
//! `LoggingConfig.ApplicationLogLevel`: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`;
//! tracing has no fatal level, so `FATAL` keeps errors); else the caller's default. Levels
//! other than `RUST_LOG`'s keep `aws_config::imds=error` (the SDK's region chain warns twice
//! off EC2 before a missing region is reported). Lambda also drops JSON lines below its
//! application level itself, after this filter: the stricter of the two decides.
//!
//! **JSON lines** (tracing-subscriber's JSON formatter, event fields flattened): one object a
//! line, `timestamp` (RFC 3339, UTC, microseconds: what Lambda reads to place and filter a
//! line; without a valid one Lambda files the line as INFO), `level` (`TRACE` ... `ERROR`,
//! which Lambda's level filter reads), `message`, the event's fields at the top level,
//! `target` (the module), and `span`/`spans` (the current span and its parents, with their
//! fields: the runtime's invocation span carries the request id). A field named like one of
//! those keys would collide with it; none is.
//!
//! **Colour.** ANSI codes only when the writer is a terminal (`std::io::IsTerminal`) and
//! `NO_COLOR` is unset or empty (<https://no-color.org>), never in a file, a pipe or
//! CloudWatch.
//!
//! **X-Ray.** Inside Lambda with `AWS_XRAY_DAEMON_ADDRESS` set (the function's `Tracing`
//! is `Active` or `PassThrough`), the subscriber also carries [`crate::xray::XrayLayer`]: the
//! functions' own spans (targets in [`TRACED`], INFO and above) under a sampled invocation
//! become X-Ray subsegments. Its filter is its own: the log level never turns tracing off.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The variables logging reads, as set (no defaults applied).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogEnv {
    /// `RUST_LOG`.
    pub rust_log: Option<String>,
    /// `AWS_LAMBDA_LOG_LEVEL` (Lambda's application log level).
    pub lambda_level: Option<String>,
    /// `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`).
    pub lambda_format: Option<String>,
    /// `TRAFFIC_LOG_FORMAT` (`json` or `text`).
    pub traffic_format: Option<String>,
    /// Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set).
    pub on_lambda: bool,
    /// `NO_COLOR` set to anything but the empty string: no colour even on a terminal.
    pub no_color: bool,
    /// `AWS_XRAY_DAEMON_ADDRESS` (Lambda sets it when the function is traced).
    pub xray_daemon: Option<String>,
}

impl LogEnv {
    /// The variables through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            rust_log: lookup("RUST_LOG"),
            lambda_level: lookup("AWS_LAMBDA_LOG_LEVEL"),
            lambda_format: lookup("AWS_LAMBDA_LOG_FORMAT"),
            traffic_format: lookup("TRAFFIC_LOG_FORMAT"),
            on_lambda: lookup("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            no_color: lookup("NO_COLOR").is_some_and(|v| !v.is_empty()),
            xray_daemon: lookup("AWS_XRAY_DAEMON_ADDRESS"),
        }
    }

    /// The process environment's.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// What the subscriber is built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// The filter directives (tracing's `EnvFilter` syntax).
    pub filter: String,
    /// JSON lines, else text.
    pub json: bool,
    /// ANSI colour codes (text only).
    pub ansi: bool,
    /// Values that were ignored, each naming its variable (logged once the subscriber is up).
    pub ignored: Vec<String>,
    /// The X-Ray daemon's address (`AWS_XRAY_DAEMON_ADDRESS`), inside Lambda only.
    pub xray: Option<String>,
}

/// The targets whose spans become X-Ray subsegments: the runtime's (its invocation span
/// carries the trace header) and the functions' own.
pub const TRACED: [&str; 6] = [
    "lambda_runtime",
    "ingest",
    "fault",
    "merge",
    "api",
    "traffic_functions",
];

/// Directives added to every level that does not come from `RUST_LOG`.
const QUIET: &str = "aws_config::imds=error";

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl LogSettings {
    /// The settings for `env`, writing to a terminal or not (`terminal`), with
    /// `default_level` when neither `RUST_LOG` nor `AWS_LAMBDA_LOG_LEVEL` says one (the
    /// module documentation says the precedence).
    pub fn resolve(env: &LogEnv, terminal: bool, default_level: &str) -> Self {
        let mut ignored = Vec::new();
        let mut format = |name: &str, value: &Option<String>| match set(value) {
            Some(v) if v.eq_ignore_ascii_case("json") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("text") => Some(false),
            Some(v) => {
                ignored.push(format!("{name}={v:?} (json or text)"));
                None
            }
            None => None,
        };
        let traffic = format("TRAFFIC_LOG_FORMAT", &env.traffic_format);
        let lambda = format("AWS_LAMBDA_LOG_FORMAT", &env.lambda_format);
        let json = traffic.or(lambda).unwrap_or(env.on_lambda);
        let filter = match set(&env.rust_log) {
            Some(directives) => directives.to_owned(),
            None => {
                let level = match set(&env.lambda_level).map(lambda_level) {
                    Some(Some(level)) => level,
                    Some(None) => {
                        ignored.push(format!(
                            "AWS_LAMBDA_LOG_LEVEL={:?} (TRACE, DEBUG, INFO, WARN, ERROR or FATAL)",
                            set(&env.lambda_level).unwrap_or_default()
                        ));
                        default_level
                    }
                    None => default_level,
                };
                format!("{level},{QUIET}")
            }
        };
        let xray = set(&env.xray_daemon)
            .filter(|_| env.on_lambda)
            .map(str::to_owned);
        Self {
            filter,
            json,
            ansi: terminal && !json && !env.no_color,
            ignored,
            xray,
        }
    }
}

/// Lambda's application log level as tracing's (`FATAL` is `error`), if it is one.
fn lambda_level(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => return None,
    })
}

/// Starts logging to stderr as `env` says (ANSI codes when stderr is a terminal); a no-op when
/// a subscriber is already set.
pub fn init(env: &LogEnv, default_level: &str) {
    let settings = LogSettings::resolve(env, std::io::stderr().is_terminal(), default_level);
    init_on(&settings, std::io::stderr);
}

/// Starts logging with `settings` to `writer`; a no-op when a subscriber is already set. Says
/// which values were ignored, and a `RUST_LOG` tracing could not parse (the default level is
/// used then).
pub fn init_on<W>(settings: &LogSettings, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;
    let (subscriber, ignored) = subscriber(settings, writer);
    if subscriber.try_init().is_ok() {
        for what in ignored {
            tracing::warn!(ignored = %what, "logging setting ignored");
        }
    }
}

/// The subscriber `settings` describe, writing to `writer`, and the values it ignored (those
/// of `settings`, a `RUST_LOG` tracing could not parse, whose default level is used then, an
/// X-Ray daemon address that names none).
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
) -> (Box<dyn tracing::Subscriber + Send + Sync>, Vec<String>)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let mut ignored = settings.ignored.clone();
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|e| {
        ignored.push(format!("RUST_LOG={:?} ({e})", settings.filter));
        EnvFilter::new(format!("info,{QUIET}"))
    });
    let xray = settings.xray.as_deref().and_then(|address| {
        let layer = crate::xray::XrayLayer::to_daemon(address);
        if layer.is_none() {
            ignored.push(format!(
                "AWS_XRAY_DAEMON_ADDRESS={address:?} (no address, or no socket to send from)"
            ));
        }
        layer
    });
    let traced = tracing_subscriber::filter::Targets::new()
        .with_targets(TRACED.map(|t| (t, tracing::Level::INFO)));
    let registry = tracing_subscriber::registry().with(xray.map(|l| l.with_filter(traced)));
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = if settings.json {
        Box::new(registry.with(json_layer(writer).with_filter(filter)))
    } else {
        Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(settings.ansi)
                    .with_writer(writer)
                    .with_filter(filter),
            ),
        )
    };
    (subscriber, ignored)
}

/// A writer into memory, for tests that read what was logged: clones share one buffer.
#[derive(Clone, Debug, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// What was written so far, as text (lossy).
    pub fn contents(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// The JSON subscriber (the module documentation describes its lines).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::registry().with(json_layer(writer).with_filter(filter))
}

/// The JSON lines' formatting layer.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> LogEnv {
        LogEnv::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    const LAMBDA: (&str, &str) = ("AWS_LAMBDA_FUNCTION_NAME", "traffic-ingest");

    /// What a case expects besides the filter: JSON lines, then ANSI colour.
    const TEXT: (bool, bool) = (false, false);
    const COLOUR: (bool, bool) = (false, true);
    const JSON: (bool, bool) = (true, false);

    /// Variables, stderr a terminal, the level expected (with the quiet directives added; a
    /// filter with directives of its own is expected as it is), then the output expected.
    type Case = (
        &'static [(&'static str, &'static str)],
        bool,
        &'static str,
        (bool, bool),
    );

    #[test]
    fn the_environment_decides_format_level_and_colour_by_the_documented_precedence() {
        // One line a case, so that the table reads as one.
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // Off Lambda: text, the default level, colour only on a terminal.
            (&[], true, "info", COLOUR),
            (&[], false, "info", TEXT),
            // NO_COLOR (not empty) turns colour off on a terminal too.
            (&[("NO_COLOR", "1")], true, "info", TEXT),
            (&[("NO_COLOR", "")], true, "info", COLOUR),
            // Inside Lambda: JSON by default, never colour.
            (&[LAMBDA], true, "info", JSON),
            (&[LAMBDA], false, "info", JSON),
            // Lambda's format variable: Text gives text, JSON gives JSON, any case.
            (&[LAMBDA, ("AWS_LAMBDA_LOG_FORMAT", "Text")], false, "info", TEXT),
            (&[LAMBDA, ("AWS_LAMBDA_LOG_FORMAT", "text")], true, "info", COLOUR),
            (&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], true, "info", JSON),
            // TRAFFIC_LOG_FORMAT asks for JSON anywhere, and wins over Lambda's.
            (&[("TRAFFIC_LOG_FORMAT", "json")], false, "info", JSON),
            (&[LAMBDA, ("AWS_LAMBDA_LOG_FORMAT", "Text"), ("TRAFFIC_LOG_FORMAT", "json")], false, "info", JSON),
            (&[LAMBDA, ("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("TRAFFIC_LOG_FORMAT", "text")], false, "info", TEXT),
            // An unknown format value is ignored: the next rule decides.
            (&[LAMBDA, ("TRAFFIC_LOG_FORMAT", "xml")], false, "info", JSON),
            // Lambda's level, every value, any case; FATAL keeps errors.
            (&[LAMBDA, ("AWS_LAMBDA_LOG_LEVEL", "TRACE")], false, "trace", JSON),
            (&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")], false, "debug", TEXT),
            (&[("AWS_LAMBDA_LOG_LEVEL", "info")], false, "info", TEXT),
            (&[("AWS_LAMBDA_LOG_LEVEL", "WARN")], false, "warn", TEXT),
            (&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")], false, "error", TEXT),
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], false, "error", TEXT),
            // An unknown level is ignored: the default.
            (&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")], false, "info", TEXT),
            // RUST_LOG wins over Lambda's level, as given (no directive added)...
            (&[LAMBDA, ("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "ingest=debug,info")], false, "ingest=debug,info", JSON),
            // ... unless it is empty (a template parameter left blank).
            (&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "")], false, "warn", TEXT),
            (&[("RUST_LOG", " ")], false, "info", TEXT),
        ];
        for &(vars, terminal, level, (json, ansi)) in cases {
            let filter = if level.contains('=') {
                level.to_owned()
            } else {
                format!("{level},{QUIET}")
            };
            let got = LogSettings::resolve(&env(vars), terminal, "info");
            assert_eq!(
                (got.filter.as_str(), got.json, got.ansi),
                (filter.as_str(), json, ansi),
                "{vars:?}, terminal: {terminal}"
            );
        }
    }

    #[test]
    fn the_callers_default_level_applies_only_when_no_variable_sets_one() {
        let quiet = LogSettings::resolve(&env(&[]), false, "warn");
        assert_eq!(quiet.filter, format!("warn,{QUIET}"));
        let lambda =
            LogSettings::resolve(&env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]), false, "warn");
        assert_eq!(lambda.filter, format!("debug,{QUIET}"));
    }

    #[test]
    fn a_json_line_carries_timestamp_level_target_message_fields_and_spans() {
        let buffer = LogBuffer::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "r-1");
            let _in = span.enter();
            tracing::warn!(count = 7, shard = "shardId-0", "records set aside");
            tracing::debug!("filtered out");
        });
        let text = buffer.contents();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "records set aside");
        assert_eq!(line["count"], 7);
        assert_eq!(line["shard"], "shardId-0");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["span"]["requestId"], "r-1");
        // RFC 3339 in UTC, as Lambda wants: 2026-01-05T08:00:00.123456Z.
        let ts = line["timestamp"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{ts:?}"
        );
    }

    #[test]
    fn the_xray_daemon_is_used_inside_lambda_only() {
        const DAEMON: (&str, &str) = ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000");
        let inside = LogSettings::resolve(&env(&[LAMBDA, DAEMON]), false, "info");
        assert_eq!(inside.xray.as_deref(), Some("169.254.79.129:2000"));
        assert_eq!(
            LogSettings::resolve(&env(&[DAEMON]), false, "info").xray,
            None
        );
        assert_eq!(
            LogSettings::resolve(&env(&[LAMBDA]), false, "info").xray,
            None
        );
        let (_, ignored) = subscriber(
            &LogSettings {
                xray: Some("nowhere".into()),
                ..inside
            },
            LogBuffer::default(),
        );
        assert!(
            ignored
                .iter()
                .any(|i| i.contains("AWS_XRAY_DAEMON_ADDRESS")),
            "{ignored:?}"
        );
    }

    #[test]
    fn ignored_values_are_named_with_their_variable() {
        let got = LogSettings::resolve(
            &env(&[
                ("TRAFFIC_LOG_FORMAT", "xml"),
                ("AWS_LAMBDA_LOG_FORMAT", "yaml"),
                ("AWS_LAMBDA_LOG_LEVEL", "LOUD"),
            ]),
            false,
            "info",
        );
        assert_eq!(got.ignored.len(), 3, "{:?}", got.ignored);
        for (var, value) in [
            ("TRAFFIC_LOG_FORMAT", "xml"),
            ("AWS_LAMBDA_LOG_FORMAT", "yaml"),
            ("AWS_LAMBDA_LOG_LEVEL", "LOUD"),
        ] {
            assert!(
                got.ignored
                    .iter()
                    .any(|i| i.contains(var) && i.contains(value)),
                "{var}: {:?}",
                got.ignored
            );
        }
        assert!(
            LogSettings::resolve(&env(&[LAMBDA]), false, "info")
                .ignored
                .is_empty()
        );
    }
}
