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

/// The rows of `id` in a quarter of `T0`'s day: `k` vehicles on light 0, a speed of `40 + k`.
fn quarter(start_ms: i64, id: &str, k: u64) -> traffic_core::outputs::WindowTables {
    use traffic_core::outputs::{Figures, IntersectionRow, WindowRow, WindowTables};
    WindowTables {
        window: traffic_core::window::WindowKey {
            length: "15m".parse().unwrap_or_else(|e| panic!("{e}")),
            start_ms,
        },
        summary: WindowRow {
            readings: 4,
            intersections: 1,
            global_median_vehicles: 1.0,
            duplicates: 0,
            too_frequent: 0,
        },
        intersections: vec![IntersectionRow {
            intersection_id: support::id(id),
            figures: Figures {
                readings: 4,
                vehicles: k,
                light_vehicles: [k, 0, 0, 0],
                mean_speed_kmh: Some(40.0 + k as f64),
                median_vehicles: Some(1.0),
            },
        }],
        rankings: Vec::new(),
    }
}

#[tokio::test]
async fn an_intersections_history_is_its_row_of_each_archived_closed_window_oldest_first()
-> anyhow::Result<()> {
    use traffic_ports::OutputArchive;
    let (api, archive) = api_with_archive()?;
    api.create("I-0001", 41.85, 12.6).await?;
    // Before any result: no closed window, an empty history.
    let a = api.get("/api/intersections/I-0001/history").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["windows"], json!([]));

    // Quarters 0, 1 and 3 archived (2 had no readings of I-0001); 4 is open.
    for (q, k) in [(0, 5), (1, 7), (3, 9)] {
        archive
            .put_window(&quarter(T0 + q * 900_000, "I-0001", k))
            .await?;
    }
    let rs: Vec<_> = (0..5)
        .map(|q| window_result("15m", T0 + q * 900_000, "I-0001", q < 4))
        .collect();
    api.store.put_results(&rs).await?;

    let a = api.get("/api/intersections/I-0001/history").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["length"], "15m");
    let points: Vec<(&str, u64, f64)> = a.body["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            (
                w["start"].as_str().unwrap_or(""),
                w["vehicles"].as_u64().unwrap_or(0),
                w["mean_speed_kmh"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            ("2026-01-05T08:00:00Z", 5, 45.0),
            ("2026-01-05T08:15:00Z", 7, 47.0),
            ("2026-01-05T08:45:00Z", 9, 49.0)
        ]
    );
    assert_eq!(a.body["windows"][0]["light_vehicles"], json!([5, 0, 0, 0]));
    assert_eq!(a.body["windows"][0]["end"], "2026-01-05T08:15:00Z");

    // The newest two windows only: the open one (no row yet) and quarter 3.
    let a = api.get("/api/intersections/I-0001/history?limit=2").await?;
    assert_eq!(a.body["windows"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["windows"][0]["start"], "2026-01-05T08:45:00Z");

    // Refusals: a malformed length, a limit out of range (400); a length that is not
    // configured, an unknown intersection (404).
    for bad in ["?length=x", "?length=E%3E0", "?limit=0", "?limit=201"] {
        let a = api
            .get(&format!("/api/intersections/I-0001/history{bad}"))
            .await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {a:?}");
    }
    for missing in [
        "/api/intersections/I-0001/history?length=7m",
        "/api/intersections/I-0404/history",
    ] {
        let a = api.get(missing).await?;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{missing}: {a:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_closed_window_downloads_from_the_archive_and_an_absent_or_misnamed_one_is_refused()
-> anyhow::Result<()> {
    use traffic_ports::OutputArchive;
    let (api, archive) = api_with_archive()?;
    api.create("I-0001", 41.85, 12.6).await?;
    archive
        .put_window(&quarter(T0 + 900_000, "I-0001", 7))
        .await?;

    let path = "/api/network/15m/2026-01-05T08:15:00Z";
    let a = api.get(path).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(
        a.body,
        json!({
            "length": "15m",
            "start": "2026-01-05T08:15:00Z",
            "end": "2026-01-05T08:30:00Z",
            "closed": true,
            "intersections": [
                {"intersection_id": "I-0001", "mean_speed_kmh": 47.0, "vehicles": 7, "readings": 4}
            ]
        })
    );
    let a = api.get(&format!("{path}?format=csv")).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(
        a.text,
        "length,start,end,closed,intersection_id,lat,lon,mean_speed_kmh,vehicles,readings\r\n\
         15m,2026-01-05T08:15:00Z,2026-01-05T08:30:00Z,true,I-0001,41.85,12.6,47,7,4\r\n"
    );
    // The same instant written with an offset names the same window.
    let a = api
        .get("/api/network/15m/2026-01-05T09:15:00%2B01:00")
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");

    // A malformed start or length (400); a start inside a window, a window not archived, a
    // length not configured (404).
    for bad in [
        "/api/network/15m/yesterday",
        "/api/network/x/2026-01-05T08:15:00Z",
        "/api/network/15m/2026-01-05T08:15:00Z?format=xml",
    ] {
        let a = api.get(bad).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {a:?}");
    }
    for missing in [
        "/api/network/15m/2026-01-05T08:20:00Z",
        "/api/network/15m/2026-01-05T08:00:00Z",
        "/api/network/7m/2026-01-05T08:15:00Z",
    ] {
        let a = api.get(missing).await?;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{missing}: {a:?}");
    }
    Ok(())
}
