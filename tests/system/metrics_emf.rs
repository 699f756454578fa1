//! The functions' CloudWatch metrics: a batch through `ingest` and `fault`, a merge
//! run and a few API requests, each with its metric lines captured, every line checked against
//! the embedded metric format specification (`support/emf.rs`) and its figures against what
//! the batch held. And their X-Ray subsegments: the same invocations under the subscriber the
//! functions install inside Lambda, pointed at a local UDP socket standing for the X-Ray
//! daemon, each handler step one subsegment of the invocation's trace.

#[path = "support/emf.rs"]
mod emf;

use crate::support::store_with_city;
use aws_lambda_events::event::kinesis::KinesisEvent;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fault::FaultHandler;
use ingest::IngestHandler;
use merge::{MergeHandler, Provisional};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use traffic_core::EngineConfig;
use traffic_core::sequence::SequenceNumber;
use traffic_functions::BatchHandler;
use traffic_functions::metrics::{Captured, Metrics};
use traffic_ports::SourceRecord;

const SHARD: &str = "shardId-000000000000";

fn reading(intersection: &str, light: u32, green: &str) -> Vec<u8> {
    json!({
        "intersection_id": intersection,
        "light": light,
        "ts": "2026-01-05T08:00:05Z",
        "vehicles": 12,
        "mean_speed_kmh": 43.5,
        "lamps": {"red": "ok", "yellow": "ok", "green": green},
    })
    .to_string()
    .into_bytes()
}

/// Five records: two good readings (one reporting a broken green lamp), then three that
/// `ingest` rejects: not JSON, an unknown intersection, a reading under another intersection's
/// partition key.
fn batch() -> KinesisEvent {
    let arrival_ms = 1_767_600_006_480;
    let records: Vec<SourceRecord> = [
        ("I-0001", reading("I-0001", 0, "broken")),
        ("I-0001", reading("I-0001", 1, "ok")),
        ("I-0001", b"{not json".to_vec()),
        ("I-9999", reading("I-9999", 0, "ok")),
        ("I-0002", reading("I-0001", 0, "ok")),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (key, data))| SourceRecord {
        seq: SequenceNumber::parse(&format!(
            "4959033827149025660855969253836157109592157598913658{:04}",
            i
        ))
        .unwrap_or_else(|e| panic!("{e:?}")),
        partition_key: key.to_owned(),
        data,
        arrival_ms,
    })
    .collect();
    traffic_app::esm::kinesis_event(&SHARD.into(), "", "eu-south-1", &records)
}

/// Every captured line, checked; the lines' root objects.
fn checked(captured: &Captured) -> Vec<Map<String, Value>> {
    captured
        .lines()
        .iter()
        .map(|l| emf::check(l).unwrap_or_else(|e| panic!("not EMF ({e}): {l}")))
        .collect()
}

/// The one line a handler wrote, in the `Traffic` namespace under `Function` = `function`.
fn one_line(captured: &Captured, function: &str) -> Map<String, Value> {
    let mut lines = checked(captured);
    assert_eq!(lines.len(), 1, "one line per invocation: {lines:?}");
    let line = lines.remove(0);
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Traffic");
    assert_eq!(line["Function"], function);
    assert_eq!(emf::dimension_sets(&line), [["Function"]]);
    line
}

fn has_metrics(line: &Map<String, Value>, names: &[&str]) {
    let declared = emf::metric_names(line);
    for n in names {
        assert!(
            declared.iter().any(|d| d == n),
            "{n} not declared in {declared:?}"
        );
    }
}

#[tokio::test]
async fn an_ingest_batch_gives_one_emf_line_with_its_counts() {
    let (_dir, store) = store_with_city().await;
    let (metrics, captured) = Metrics::capture("Traffic");
    let ingest =
        IngestHandler::from_ports(EngineConfig::default(), &store.ports()).with_metrics(metrics);
    let response = ingest.handle(&batch()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let line = one_line(&captured, "ingest");
    has_metrics(
        &line,
        &[
            "Records",
            "Accepted",
            "Rejected",
            "Late",
            "Future",
            "Duplicates",
            "LatencyMax",
        ],
    );
    assert_eq!(line["Records"], 5);
    assert_eq!(line["Accepted"], 2);
    assert_eq!(line["Rejected"], 3);
    assert_eq!(
        (&line["Late"], &line["Future"], &line["Duplicates"]),
        (&json!(0), &json!(0), &json!(0))
    );
}

#[tokio::test]
async fn a_fault_batch_gives_one_emf_line_with_its_alarms() {
    let (_dir, store) = store_with_city().await;
    let (metrics, captured) = Metrics::capture("Traffic");
    let fault =
        FaultHandler::from_ports(EngineConfig::default(), &store.ports()).with_metrics(metrics);
    let response = fault.handle(&batch()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let line = one_line(&captured, "fault");
    has_metrics(
        &line,
        &[
            "AlarmsRaised",
            "AlarmsHeld",
            "AlarmsResolved",
            "AlarmsPublished",
        ],
    );
    assert_eq!(line["Records"], 5);
    assert_eq!(line["AlarmsRaised"], 1, "the broken green lamp");
    assert_eq!(line["AlarmsPublished"], 1);
    assert_eq!(
        (&line["AlarmsHeld"], &line["AlarmsResolved"]),
        (&json!(0), &json!(0))
    );
}

#[tokio::test]
async fn a_merge_run_gives_one_emf_line_with_its_run_time_and_lag() {
    let (_dir, store) = store_with_city().await;
    let ports = store.ports();
    IngestHandler::from_ports(EngineConfig::default(), &ports)
        .handle(&batch())
        .await;
    let (metrics, captured) = Metrics::capture("Traffic");
    let merge = MergeHandler::from_ports(EngineConfig::default(), Provisional::All, &ports)
        .with_metrics(metrics);
    merge
        .run(merge::CloseUpTo::All)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let line = one_line(&captured, "merge");
    has_metrics(
        &line,
        &[
            "RunTime",
            "WindowsClosed",
            "Retimings",
            "ClosedMarkLag",
            "ResultLatencyMax",
        ],
    );
    assert!(
        line["WindowsClosed"].as_u64().is_some_and(|n| n > 0),
        "{line:?}"
    );
    assert!(line["ClosedMarkLag"].as_u64().is_some(), "{line:?}");
}

#[tokio::test]
async fn each_api_request_gives_one_emf_line_by_route_and_status() {
    let (_dir, store) = store_with_city().await;
    let (metrics, captured) = Metrics::capture("Traffic");
    let router = api::router_metered(
        api::ApiState {
            ports: store.ports(),
            cfg: EngineConfig::default(),
            token: None,
            alarms: Default::default(),
        },
        metrics,
    );
    let requests = [
        (Method::GET, "/api/intersections/I-0001", StatusCode::OK),
        (
            Method::GET,
            "/api/intersections/I-0404",
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/no/such/route", StatusCode::NOT_FOUND),
        (
            Method::DELETE,
            "/api/intersections/I-0001",
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (method, path, status) in &requests {
        let req = Request::builder()
            .method(method)
            .uri(*path)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let resp = router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(resp.status(), *status, "{method} {path}");
    }

    let lines = checked(&captured);
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["Function"], "api");
            assert_eq!(l["Requests"], 1);
            assert!(l["Latency"].is_number());
            assert_eq!(
                emf::dimension_sets(l),
                [vec!["Function", "Route"], vec!["Function", "Status"]]
            );
            (
                l["Route"].as_str().unwrap_or_default().to_owned(),
                l["Status"].as_str().unwrap_or_default().to_owned(),
                l["StatusCode"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        ("GET /api/intersections/{id}", "2xx", 200),
        ("GET /api/intersections/{id}", "4xx", 404),
        ("unmatched", "4xx", 404),
        ("DELETE /api/intersections/{id}", "4xx", 401),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(r, s, c)| ((*r).to_owned(), (*s).to_owned(), *c))
        .collect();
    assert_eq!(seen, expected);
    assert!(
        lines
            .iter()
            .all(|l| !emf::metric_names(l).contains(&"StatusCode".to_owned())),
        "the status code is a property, not a metric"
    );
}

#[test]
fn the_checker_refuses_what_the_specification_does() {
    let good = r#"{"_aws":{"Timestamp":1767600006480,"CloudWatchMetrics":[{"Namespace":"Traffic","Dimensions":[["Function"]],"Metrics":[{"Name":"Rejected","Unit":"Count","StorageResolution":60}]}]},"Function":"ingest","Rejected":[3,1]}"#;
    assert!(emf::check(good).is_ok(), "{:?}", emf::check(good));
    for (bad, why) in [
        (r#"[1]"#, "root"),
        (r#"{"Rejected":3}"#, "_aws"),
        (&good.replace("1767600006480", "\"now\""), "Timestamp"),
        (
            &good.replace(r#""Namespace":"Traffic""#, r#""Namespace":"""#),
            "Namespace",
        ),
        (
            &good.replace(r#""Function":"ingest""#, r#""Function":7"#),
            "Function",
        ),
        (
            &good.replace(r#"[["Function"]]"#, r#"[["Shard"]]"#),
            "Shard",
        ),
        (
            &good.replace(r#""Unit":"Count""#, r#""Unit":"Records""#),
            "unit",
        ),
        (
            &good.replace(r#""StorageResolution":60"#, r#""StorageResolution":5"#),
            "StorageResolution",
        ),
        (
            &good.replace(r#""Rejected":[3,1]"#, r#""Rejected":"3""#),
            "Rejected",
        ),
    ] {
        let e = emf::check(bad)
            .err()
            .unwrap_or_else(|| panic!("accepted: {bad}"));
        assert!(e.contains(why), "{why}: {e}");
    }
    let too_many: Vec<String> = (0..101).map(|_| "1".to_owned()).collect();
    let long = good.replace("[3,1]", &format!("[{}]", too_many.join(",")));
    assert!(emf::check(&long).is_err(), "101 values");
}

// ---- X-Ray ----

const ROOT: &str = "1-6763a1b2-5f0e4c3d2b1a09f8e7d6c5b4";
const PARENT: &str = "8f2c1e0d9b7a6543";

/// A stand-in for Lambda's X-Ray daemon on a port the OS chose, and the functions' own
/// subscriber (inside Lambda, `AWS_XRAY_DAEMON_ADDRESS` its address, logs at `warn` so that
/// the log level is seen not to matter) as this thread's default while it lives.
struct Daemon {
    socket: std::net::UdpSocket,
    _default: tracing::subscriber::DefaultGuard,
}

fn daemon() -> Daemon {
    use traffic_functions::logging::{LogBuffer, LogEnv, LogSettings, subscriber};
    // While a single thread-local subscriber is alive, tracing caches a callsite's interest
    // from the default of whichever thread reaches it first: another test of this binary
    // running the same handler with no subscriber would turn those spans off for this one
    // too. A second subscriber alive for the whole run makes tracing ask every one of them.
    static KEEP: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    KEEP.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap_or_else(|e| panic!("{e}"));
    let address = socket
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let env = LogEnv::from_lookup(|k| match k {
        "AWS_LAMBDA_FUNCTION_NAME" => Some("traffic-test".to_owned()),
        "AWS_XRAY_DAEMON_ADDRESS" => Some(address.clone()),
        "RUST_LOG" => Some("warn".to_owned()),
        _ => None,
    });
    let settings = LogSettings::resolve(&env, false, "info");
    let (subscriber, ignored) = subscriber(&settings, LogBuffer::default());
    assert!(ignored.is_empty(), "{ignored:?}");
    Daemon {
        socket,
        _default: tracing::subscriber::set_default(subscriber),
    }
}

impl Daemon {
    /// Every document received so far (bounded: each read waits at most 300 ms), each one's
    /// header line checked.
    fn documents(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut buf = vec![0; 70_000];
        while let Ok(n) = self.socket.recv(&mut buf) {
            assert!(n <= 64_000, "a datagram of {n} bytes");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = text
                .strip_prefix("{\"format\": \"json\", \"version\": 1}\n")
                .unwrap_or_else(|| panic!("no header line: {text}"));
            out.push(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")));
        }
        out
    }
}

/// The span `lambda_runtime` opens around an invocation, with its trace header.
fn invocation(sampled: Option<u8>) -> tracing::Span {
    let mut ctx = lambda_runtime::Context::default();
    ctx.request_id = "req-1".into();
    ctx.xray_trace_id = sampled.map(|s| format!("Root={ROOT};Parent={PARENT};Sampled={s}"));
    lambda_runtime::layers::trace::request_span(&ctx)
}

/// Checks every document is a well-formed subsegment of the invocation's trace, nested as
/// its spans were (a top step under the function's segment, the others under a step received
/// with them, inside its time); returns the names received, in order.
fn subsegments(docs: &[Value]) -> Vec<String> {
    let by_id: std::collections::HashMap<&str, &Value> = docs
        .iter()
        .map(|d| (d["id"].as_str().unwrap_or_default(), d))
        .collect();
    assert_eq!(by_id.len(), docs.len(), "ids are unique: {docs:?}");
    for d in docs {
        assert_eq!(d["type"], "subsegment", "{d}");
        assert_eq!(d["trace_id"], ROOT, "{d}");
        let id = d["id"].as_str().unwrap_or_default();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{d}"
        );
        let (start, end) = (
            d["start_time"].as_f64().unwrap_or(f64::NAN),
            d["end_time"].as_f64().unwrap_or(f64::NAN),
        );
        assert!(start > 1.7e9 && start <= end, "times in epoch seconds: {d}");
        let parent = d["parent_id"].as_str().unwrap_or_default();
        if parent != PARENT {
            let p = by_id
                .get(parent)
                .unwrap_or_else(|| panic!("no parent {parent} among {docs:?}"));
            let (ps, pe) = (
                p["start_time"].as_f64().unwrap_or(f64::NAN),
                p["end_time"].as_f64().unwrap_or(f64::NAN),
            );
            assert!(ps <= start && end <= pe, "{d} inside {p}");
        }
    }
    docs.iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The subsegment named `name`, and the name of its parent (`function` for a top step).
fn step<'d>(docs: &'d [Value], name: &str) -> (&'d Value, String) {
    let d = docs
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} among {docs:?}"));
    let parent = docs
        .iter()
        .find(|p| p["id"] == d["parent_id"])
        .map_or("function".to_owned(), |p| {
            p["name"].as_str().unwrap_or_default().to_owned()
        });
    (d, parent)
}

fn parents(docs: &[Value], names: &[(&str, &str)]) {
    for (name, parent) in names {
        assert_eq!(step(docs, name).1, *parent, "{name}'s parent");
    }
}

#[tokio::test]
async fn an_ingest_batch_sends_one_subsegment_per_step() {
    use tracing::Instrument;
    let (_dir, store) = store_with_city().await;
    let ingest = IngestHandler::from_ports(EngineConfig::default(), &store.ports());
    let daemon = daemon();
    let response = ingest
        .handle(&batch())
        .instrument(invocation(Some(1)))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let docs = daemon.documents();
    let mut names = subsegments(&docs);
    names.sort();
    assert_eq!(
        names,
        [
            "ingest.commit",
            "ingest.decode",
            "ingest.directory",
            "ingest.fold",
            "ingest.load",
            "ingest.routes",
            "ingest.shard",
            "ingest.stats",
        ]
    );
    parents(
        &docs,
        &[
            ("ingest.routes", "function"),
            ("ingest.decode", "function"),
            ("ingest.shard", "function"),
            ("ingest.directory", "ingest.shard"),
            ("ingest.load", "ingest.shard"),
            ("ingest.fold", "ingest.shard"),
            ("ingest.commit", "ingest.shard"),
            ("ingest.stats", "function"),
        ],
    );
    let (decode, _) = step(&docs, "ingest.decode");
    assert_eq!(decode["annotations"]["records"], 5);
    let (shard, _) = step(&docs, "ingest.shard");
    assert_eq!(shard["annotations"]["shard"], SHARD);
    let (fold, _) = step(&docs, "ingest.fold");
    assert_eq!(fold["annotations"]["accepted"], 2);
    assert!(docs.iter().all(|d| d.get("fault").is_none()), "{docs:?}");
}

#[tokio::test]
async fn a_fault_batch_sends_one_subsegment_per_step() {
    use tracing::Instrument;
    let (_dir, store) = store_with_city().await;
    let fault = FaultHandler::from_ports(EngineConfig::default(), &store.ports());
    let daemon = daemon();
    let response = fault.handle(&batch()).instrument(invocation(Some(1))).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let docs = daemon.documents();
    let mut names = subsegments(&docs);
    names.sort();
    assert_eq!(
        names,
        [
            "fault.alarms",
            "fault.decode",
            "fault.directory",
            "fault.lamps",
            "fault.publish",
            "fault.routes",
            "fault.shard",
            "fault.stats",
            "fault.store",
        ]
    );
    parents(
        &docs,
        &[
            ("fault.routes", "function"),
            ("fault.decode", "function"),
            ("fault.shard", "function"),
            ("fault.directory", "fault.shard"),
            ("fault.lamps", "fault.shard"),
            ("fault.alarms", "fault.shard"),
            ("fault.publish", "fault.shard"),
            ("fault.store", "fault.shard"),
            ("fault.stats", "function"),
        ],
    );
    let (alarms, _) = step(&docs, "fault.alarms");
    assert_eq!(alarms["annotations"]["raised"], 1, "the broken green lamp");
}

#[tokio::test]
async fn a_merge_run_sends_one_subsegment_per_step() {
    use tracing::Instrument;
    let (_dir, store) = store_with_city().await;
    let ports = store.ports();
    IngestHandler::from_ports(EngineConfig::default(), &ports)
        .handle(&batch())
        .await;
    let merge = MergeHandler::from_ports(EngineConfig::default(), Provisional::All, &ports);
    let daemon = daemon();
    merge
        .run(merge::CloseUpTo::All)
        .instrument(invocation(Some(1)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let docs = daemon.documents();
    let names = subsegments(&docs);
    for name in [
        "merge.lease",
        "merge.marks",
        "merge.reads",
        "merge.compact",
        "merge.retime",
        "merge.write",
        "merge.events",
        "merge.progress",
        "merge.release",
    ] {
        assert_eq!(
            names.iter().filter(|n| *n == name).count(),
            1,
            "{name} once: {names:?}"
        );
        assert_eq!(step(&docs, name).1, "function", "{name} is a top step");
    }
    assert!(names.iter().all(|n| n.starts_with("merge.")), "{names:?}");
    let (compact, _) = step(&docs, "merge.compact");
    assert!(
        compact["annotations"]["closed"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{compact}"
    );
}

#[tokio::test]
async fn each_api_request_sends_its_route_as_a_subsegment() {
    use tracing::Instrument;
    let (_dir, store) = store_with_city().await;
    let router = api::router(api::ApiState {
        ports: store.ports(),
        cfg: EngineConfig::default(),
        token: None,
        alarms: Default::default(),
    });
    let daemon = daemon();
    for (method, path) in [
        (Method::GET, "/api/intersections/I-0001"),
        (Method::DELETE, "/api/intersections/I-0001"),
        (Method::GET, "/no/such/route"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        router
            .clone()
            .oneshot(req)
            .instrument(invocation(Some(1)))
            .await
            .unwrap_or_else(|e| match e {});
    }

    let docs = daemon.documents();
    assert_eq!(subsegments(&docs), ["api.route", "api.route", "api.route"]);
    let seen: Vec<_> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["parent_id"], PARENT);
            (
                d["annotations"]["route"].as_str().unwrap_or_default(),
                d["annotations"]["status"].as_u64().unwrap_or_default(),
                d.get("error").is_some(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /api/intersections/{id}", 200, false),
            ("DELETE /api/intersections/{id}", 401, true),
            ("unmatched", 404, true),
        ]
    );
}

#[tokio::test]
async fn nothing_is_sent_when_the_invocation_is_not_sampled_or_has_no_trace() {
    use tracing::Instrument;
    let (_dir, store) = store_with_city().await;
    let ingest = IngestHandler::from_ports(EngineConfig::default(), &store.ports());
    let daemon = daemon();
    for sampled in [Some(0), None] {
        ingest
            .handle(&batch())
            .instrument(invocation(sampled))
            .await;
    }
    ingest.handle(&batch()).await;
    assert_eq!(daemon.documents(), Vec::<Value>::new());
}
