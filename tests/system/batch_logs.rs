//! A batch full of bad records is a few log lines, not one a record: `ingest` logs one WARN
//! summary per kind of problem (count, first three examples), each record only at DEBUG.

use crate::support::store_with_city;
use tracing_subscriber::util::SubscriberInitExt;
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_functions::logging::{LogBuffer, json_subscriber};
use traffic_ports::SourceRecord;

/// A reading of `id`'s light 0 at 08:00 + `m` minutes, as record `seq` under `id`'s key.
fn record(seq: u64, id: &str, m: u64) -> SourceRecord {
    SourceRecord {
        seq: SequenceNumber::from_u64(seq),
        partition_key: id.into(),
        data: format!(
            r#"{{"intersection_id":"{id}","light":0,"ts":"2026-01-05T{:02}:{:02}:00Z","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"ok","yellow":"ok","green":"ok"}}}}"#,
            8 + m / 60,
            m % 60
        )
        .into_bytes(),
        arrival_ms: chrono::Utc::now().timestamp_millis(),
    }
}

#[tokio::test]
async fn a_batch_of_many_rejected_records_logs_one_summary_line_per_kind() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest::IngestHandler::from_ports(cfg.clone(), &store.ports());
    // 5 good readings, 400 of an intersection the registry does not know, 20 not JSON.
    let mut records: Vec<_> = (0..5).map(|m| record(m + 1, "I-0001", m)).collect();
    records.extend((0..400).map(|i| record(100 + i, "I-9999", i % 60)));
    records.extend((0..20).map(|i| SourceRecord {
        seq: SequenceNumber::from_u64(1000 + i),
        partition_key: "I-0002".into(),
        data: b"not json".to_vec(),
        arrival_ms: chrono::Utc::now().timestamp_millis(),
    }));
    let event = esm::kinesis_event(
        &ShardId::from("shardId-000000000000"),
        "",
        "local",
        &records,
    );

    let buffer = LogBuffer::default();
    let guard =
        json_subscriber(tracing_subscriber::EnvFilter::new("warn"), buffer.clone()).set_default();
    let report = ingest.process(&event).await;
    drop(guard);

    assert_eq!(
        (report.counters.accepted, report.counters.rejected),
        (5, 420)
    );
    let text = buffer.contents();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "one line per kind of problem:\n{text}");
    let line = |kind: &str| {
        lines
            .iter()
            .find(|l| l["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} line:\n{text}"))
    };
    let unknown = line("unknown intersection");
    assert_eq!(unknown["level"], "WARN");
    assert_eq!(unknown["function"], "ingest");
    assert_eq!(unknown["count"], 400);
    let examples = unknown["examples"].as_str().unwrap_or_default();
    assert_eq!(
        examples.matches("; ").count(),
        2,
        "three examples: {examples}"
    );
    assert!(
        examples.contains(r#""I-9999": unknown intersection"#),
        "{examples}"
    );
    assert!(
        examples.starts_with(&SequenceNumber::from_u64(100).to_string()),
        "the first records: {examples}"
    );
    assert_eq!(line("invalid reading")["count"], 20);
}
