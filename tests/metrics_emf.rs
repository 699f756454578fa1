//! The functions' CloudWatch metrics: a batch through `ingest` and `fault`, a merge
//! run and a few API requests, each with its metric lines captured, every line checked against
//! the embedded metric format specification (`support/emf.rs`) and its figures against what
//! the batch held.

#[path = "support/emf.rs"]
mod emf;
mod support;

use aws_lambda_events::event::kinesis::KinesisEvent;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fault::FaultHandler;
use ingest::IngestHandler;
use merge::{MergeHandler, Provisional};
use serde_json::{Map, Value, json};
use support::store_with_city;
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
    traffic_app::esm::kinesis_event(SHARD, "", "eu-south-1", &records)
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
        .run(merge::Closing::All)
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
