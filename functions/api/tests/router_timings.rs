//! The router, request by request, on an embedded store in a temporary directory: timings in force and their history.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use support::*;
use traffic_ports::Registry;

#[tokio::test]
async fn timings_and_how_they_changed_are_shown() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.create("I-0002", 41.86, 12.6).await?;
    let x = api
        .store
        .intersection(&id("I-0001"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    let mut retimed = x.phases.clone();
    retimed[0].green_s = 40.0;
    retimed[0].red_s = 24.0;
    retimed[1].green_s = 20.0;
    retimed[1].red_s = 44.0;
    api.retime("I-0001", retimed.clone(), "15m@2026-01-05T08:00:00Z")
        .await?;
    retimed[0].green_s = 45.0;
    retimed[0].red_s = 19.0;
    api.retime("I-0001", retimed, "15m@2026-01-05T08:15:00Z")
        .await?;

    let a = api.get("/api/intersections/I-0001/timings").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(
        a.body["current"]["retimed_from"],
        "15m@2026-01-05T08:15:00Z"
    );
    assert_eq!(a.body["current"]["phases"][0]["green_s"], 45.0);
    assert_eq!(
        a.body["current"]["cycle_s"], 68.0,
        "green + 4 s yellow + red"
    );
    let greens: Vec<f64> = a.body["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["phases"][0]["green_s"].as_f64())
        .collect();
    assert_eq!(greens, vec![40.0, 45.0]);

    let a = api.get("/api/timings").await?;
    let all = a.body["timings"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["intersection_id"], "I-0001");
    assert_eq!(all[0]["phases"][0]["green_s"], 45.0);
    assert_eq!(all[1]["retimed_from"], Value::Null);
    Ok(())
}
