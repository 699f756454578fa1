//! The router, request by request, on an embedded store in a temporary directory: the merge's results and the network state.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;
use traffic_core::query::{IntersectionState, NetworkState};
use traffic_ports::ResultStore;

#[tokio::test]
async fn the_network_state_is_null_until_the_merge_stores_one() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/network").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert!(a.body.is_null(), "{a:?}");

    let state = network_of_two();
    api.store.put_network(&state).await?;
    let a = api.get("/api/network").await?;
    assert_eq!(a.body["start"], "2026-01-05T08:00:00Z");
    assert_eq!(a.body["intersections"][0]["mean_speed_kmh"], 46.1);
    assert!(a.body["intersections"][1]["mean_speed_kmh"].is_null());
    assert_eq!(serde_json::from_value::<NetworkState>(a.body)?, state);
    Ok(())
}

#[tokio::test]
async fn results_are_listed_per_length_newest_first_with_a_limit() -> anyhow::Result<()> {
    let api = api()?;
    let mut rs = Vec::new();
    for i in 0..5 {
        rs.push(window_result("15m", T0 + i * 900_000, "I-0001", i < 4));
    }
    rs.push(window_result("1h", T0, "I-0003", false));
    api.store.put_results(&rs).await?;

    let a = api.get("/api/results/15m?limit=3").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let starts: Vec<&str> = a.body["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["start"].as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-05T09:00:00Z",
            "2026-01-05T08:45:00Z",
            "2026-01-05T08:30:00Z"
        ]
    );
    assert_eq!(a.body["windows"][0]["closed"], false);
    assert_eq!(
        a.body["windows"][0]["top10"][0]["intersection_id"],
        "I-0001"
    );
    assert_eq!(a.body["windows"][0]["global_median_vehicles"], 7.0);
    assert_eq!(
        a.body["windows"][0]["above_median"][0]["intersection_id"],
        "I-0002"
    );

    let a = api.get("/api/results/60m").await?;
    assert_eq!(a.body["length"], "1h", "lengths are normalised");
    assert_eq!(a.body["windows"].as_array().map(Vec::len), Some(1));
    let a = api.get("/api/results/24h").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["windows"], json!([]));
    Ok(())
}

#[tokio::test]
async fn the_current_results_hold_the_newest_window_of_each_length() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/results").await?;
    assert_eq!(a.body["windows"], json!(["15m", "1h", "24h"]));
    assert_eq!(a.body["current"]["15m"], Value::Null);
    api.store
        .put_results(&[
            window_result("15m", T0, "I-0001", true),
            window_result("15m", T0 + 900_000, "I-0007", false),
            window_result("24h", T0 - 28_800_000, "I-0005", false),
        ])
        .await?;
    let a = api.get("/api/results").await?;
    assert_eq!(a.body["current"]["15m"]["start"], "2026-01-05T08:15:00Z");
    assert_eq!(
        a.body["current"]["15m"]["top10"][0]["intersection_id"],
        "I-0007"
    );
    assert_eq!(a.body["current"]["1h"], Value::Null);
    assert_eq!(a.body["current"]["24h"]["start"], "2026-01-05T00:00:00Z");
    Ok(())
}

#[tokio::test]
async fn a_malformed_window_length_or_limit_is_a_bad_request() -> anyhow::Result<()> {
    let api = api()?;
    for (path, field) in [
        ("/api/results/soon", "length"),
        ("/api/results/%2015m", "length"),
        ("/api/results/0m", "length"),
        ("/api/results/15m?limit=0", "limit"),
        ("/api/results/15m?limit=many", "limit"),
        ("/api/alarms?open=burning", "open"),
        ("/api/alarms?limit=-1", "limit"),
        ("/api/stats?minutes=100000", "minutes"),
    ] {
        let a = api.get(path).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {a:?}");
        assert_eq!(a.body["field"], field, "{path}: {a:?}");
    }
    Ok(())
}

fn network_of_two() -> NetworkState {
    NetworkState {
        length: "15m".into(),
        start: "2026-01-05T08:00:00Z".into(),
        end: "2026-01-05T08:15:00Z".into(),
        closed: true,
        intersections: vec![
            IntersectionState {
                intersection_id: id("I-0001"),
                mean_speed_kmh: Some(46.1),
                vehicles: 20,
                readings: 2,
            },
            IntersectionState {
                intersection_id: id("I-0002"),
                mean_speed_kmh: None,
                vehicles: 0,
                readings: 1,
            },
        ],
    }
}

#[tokio::test]
async fn the_network_downloads_as_csv_with_the_registrys_positions_by_format_or_accept()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.9, 12.5).await?;
    // I-0002 is not registered: its row has no position.
    api.store.put_network(&network_of_two()).await?;
    let want = "length,start,end,closed,intersection_id,lat,lon,mean_speed_kmh,vehicles,readings\r\n\
                15m,2026-01-05T08:00:00Z,2026-01-05T08:15:00Z,true,I-0001,41.9,12.5,46.1,20,2\r\n\
                15m,2026-01-05T08:00:00Z,2026-01-05T08:15:00Z,true,I-0002,,,,0,1\r\n";
    for a in [
        api.get("/api/network?format=csv").await?,
        api.call_with(
            "GET",
            "/api/network",
            None,
            false,
            &[("accept", "text/csv")],
        )
        .await?,
    ] {
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.content_type, "text/csv; charset=utf-8");
        assert_eq!(a.text, want);
    }
    let a = api
        .call_with("GET", "/api/network?format=csv", None, false, &[])
        .await?;
    assert_eq!(a.text.lines().count(), 3);
    Ok(())
}

#[tokio::test]
async fn the_network_downloads_as_geojson_points_in_lon_lat_order() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.9, 12.5).await?;
    api.store.put_network(&network_of_two()).await?;
    let a = api
        .call_with(
            "GET",
            "/api/network",
            None,
            false,
            &[("accept", "application/geo+json")],
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.content_type, "application/geo+json");
    assert_eq!(a.body["type"], "FeatureCollection");
    assert_eq!(a.body["window"]["start"], "2026-01-05T08:00:00Z");
    let f = &a.body["features"];
    assert_eq!(
        f[0]["geometry"],
        json!({"type": "Point", "coordinates": [12.5, 41.9]})
    );
    assert_eq!(f[0]["properties"]["mean_speed_kmh"], 46.1);
    assert!(f[1]["geometry"].is_null(), "{a:?}");
    assert!(f[1]["properties"]["mean_speed_kmh"].is_null());
    assert_eq!(
        api.get("/api/network?format=json").await?.body,
        serde_json::to_value(network_of_two())?
    );
    Ok(())
}

#[tokio::test]
async fn before_any_window_the_downloads_are_empty_and_an_unknown_format_is_a_400()
-> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/network?format=csv").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(
        a.text,
        "length,start,end,closed,intersection_id,lat,lon,mean_speed_kmh,vehicles,readings\r\n"
    );
    let a = api.get("/api/network?format=geojson").await?;
    assert_eq!(a.body["features"], json!([]));
    let a = api.get("/api/network?format=xml").await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.body["field"], "format");
    Ok(())
}
