//! The router, request by request, on an embedded store in a temporary directory: throughput, latency and counters.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::*;
use traffic_core::SequenceNumber;
use traffic_core::pane::{Commit, Counters, ShardMeta};
use traffic_ports::{StateStore, StatsSample, StatsStore};

#[tokio::test]
async fn statistics_show_throughput_latency_and_summed_counters() -> anyhow::Result<()> {
    let api = api()?;
    let now = chrono::Utc::now().timestamp_millis();
    let minute = now - now.rem_euclid(60_000);
    for (function, m, records, lat) in [
        ("ingest", minute - 120_000, 400, 80_000),
        ("ingest", minute - 60_000, 500, 50_000),
        ("fault", minute - 60_000, 500, 60_000),
        ("ingest", minute - 7_200_000, 999, 1),
    ] {
        api.store
            .add_stats(&StatsSample {
                invocations: 2,
                records,
                accepted: records,
                latency_ms_sum: lat,
                latency_ms_max: 900,
                ..StatsSample::new(function.parse()?, m)
            })
            .await?;
    }
    for (shard, accepted, rejected) in [("shard-0", 700, 3), ("shard-1", 200, 1)] {
        api.store
            .commit(
                &Commit {
                    expected: None,
                    expected_commits: 0,
                    closed_ms: None,
                    meta: ShardMeta {
                        shard_id: shard.into(),
                        applied_through: Some(SequenceNumber::from_u128(1)),
                        max_event_ms: Some(T0),
                        counters: Counters {
                            accepted,
                            rejected,
                            late: 2,
                            duplicates: 5,
                            future: 1,
                        },
                        ..ShardMeta::default()
                    },
                    deltas: vec![],
                },
                T0,
            )
            .await?;
    }
    let a = api.get("/api/stats?minutes=10").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let series = a.body["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), 3, "the sample of two hours ago is left out");
    let ingest: Vec<(u64, f64)> = series
        .iter()
        .filter(|p| p["function"] == "ingest")
        .filter_map(|p| Some((p["records"].as_u64()?, p["mean_latency_ms"].as_f64()?)))
        .collect();
    assert_eq!(ingest, vec![(400, 200.0), (500, 100.0)]);
    let totals: Vec<(&str, u64, f64)> = a.body["functions"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f["function"].as_str()?,
                        f["records"].as_u64()?,
                        f["mean_latency_ms"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        totals,
        vec![("fault", 500, 120.0), ("ingest", 900, 130_000.0 / 900.0)],
        "summed over the period, by name"
    );
    assert_eq!(
        a.body["counters"],
        json!({"accepted": 900, "rejected": 4, "late": 4, "duplicates": 10, "future": 2, "records": 920})
    );
    assert_eq!(a.body["shards"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.body["shards"][0]["max_event"], "2026-01-05T08:00:00Z");
    Ok(())
}
