//! The router's behaviour, request by request, on an embedded store in a temporary directory.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;
use traffic_core::SequenceNumber;
use traffic_core::city::Phase;
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::pane::{Commit, Counters, ShardMeta};
use traffic_core::query::{IntersectionState, NetworkState};
use traffic_core::reading::{LampColour, LampState, Lamps};
use traffic_ports::{LampStore, Registry, ResultStore, StateStore, StatsSample, StatsStore};

fn alarm(x: &str, l: i64, lamp: LampColour, ts_ms: i64) -> Alarm {
    Alarm {
        intersection_id: id(x),
        light: light(l),
        lamp,
        ts_ms,
        position: None,
    }
}

#[tokio::test]
async fn an_intersection_can_be_created_read_replaced_patched_and_deleted() -> anyhow::Result<()> {
    let api = api()?;
    let a = api
        .call(
            "POST",
            "/api/intersections",
            Some(&crossing("I-0001", 41.85, 12.6)),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(a.body["id"], "I-0001");
    assert_eq!(
        a.body["lights"][0]["position"], "N",
        "extra fields are kept"
    );

    let a = api.get("/api/intersections/I-0001").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["name"], "Via Tuscolana");

    let replaced = crossing("I-0001", 41.9, 12.5).replace("Via Tuscolana", "Piazza Venezia");
    let a = api
        .call("PUT", "/api/intersections/I-0001", Some(&replaced), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let stored = api.store.intersection(&id("I-0001")).await?;
    assert_eq!(stored.as_ref().map(|x| x.lat), Some(41.9));

    let a = api
        .call(
            "PATCH",
            "/api/intersections/I-0001",
            Some(r#"{"name": null, "district": "Centro", "lon": 12.48}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["lon"], 12.48);
    assert_eq!(a.body["district"], "Centro");
    assert!(a.body.get("name").is_none(), "null removes a member");
    assert_eq!(a.body["lights"].as_array().map(Vec::len), Some(4));

    let a = api.get("/api/intersections").await?;
    assert_eq!(a.body.as_array().map(Vec::len), Some(1));

    let a = api
        .call("DELETE", "/api/intersections/I-0001", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(api.store.intersection(&id("I-0001")).await?, None);
    let a = api.get("/api/intersections/I-0001").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn the_city_lists_come_a_page_at_a_time_with_a_link_to_the_next() -> anyhow::Result<()> {
    let api = api()?;
    for i in [3, 1, 5, 2, 4] {
        api.create(&format!("I-000{i}"), 41.8, 12.6).await?;
    }
    for base in ["/api/intersections", "/api/timings"] {
        let key = if base == "/api/timings" {
            "intersection_id"
        } else {
            "id"
        };
        let mut path = format!("{base}?limit=2");
        let mut pages = Vec::new();
        for _ in 0..5 {
            let a = api.get(&path).await?;
            assert_eq!(a.status, StatusCode::OK, "{path}: {a:?}");
            let ids: Vec<String> = a
                .body
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x[key].as_str().map(str::to_owned))
                .collect();
            pages.push(ids);
            let Some(link) = a.link else { break };
            // `</api/…?limit=2&after=I-0002>; rel="next"`
            let next = link
                .strip_prefix('<')
                .and_then(|l| l.split_once(">; rel=\"next\""))
                .map(|(p, _)| p.to_owned());
            path = next.unwrap_or_else(|| panic!("not a next link: {link}"));
        }
        assert_eq!(
            pages,
            [
                vec!["I-0001", "I-0002"],
                vec!["I-0003", "I-0004"],
                vec!["I-0005"]
            ],
            "{base}"
        );
        // Without a limit, one page of up to 1,000: the whole of this city, no link.
        let a = api.get(base).await?;
        assert_eq!(a.body.as_array().map(Vec::len), Some(5));
        assert_eq!(a.link, None);
        // After the last id: an empty page.
        let a = api.get(&format!("{base}?after=I-0005")).await?;
        assert_eq!(a.body, json!([]));
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=two", "limit"),
        ("after=no%20spaces", "after"),
    ] {
        let a = api.get(&format!("/api/intersections?{query}")).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}: {a:?}");
        assert_eq!(a.body["field"], field, "{query}");
    }
    Ok(())
}

#[tokio::test]
async fn a_write_naming_a_version_that_changed_is_refused_and_changes_nothing() -> anyhow::Result<()>
{
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let path = "/api/intersections/I-0001";
    let read = api.get(path).await?;
    let old = read
        .etag
        .clone()
        .unwrap_or_else(|| panic!("no ETag: {read:?}"));
    assert!(old.starts_with('"') && old.ends_with('"'), "{old}");

    // A retiming lands after the operator read the intersection.
    let retimed = vec![
        Phase {
            lights: vec![light(0), light(2)],
            green_s: 20.0,
            red_s: 24.0,
            extra: Default::default(),
        },
        Phase {
            lights: vec![light(1), light(3)],
            green_s: 20.0,
            red_s: 24.0,
            extra: Default::default(),
        },
    ];
    api.store
        .set_timings(
            &[(id("I-0001"), retimed.clone())],
            &"15m@2026-01-05T08:00:00Z".parse()?,
        )
        .await?;
    let now = api.get(path).await?.etag.unwrap_or_default();
    assert_ne!(now, old, "a retiming changes the version");
    let stored = api.store.intersection(&id("I-0001")).await?;

    // Every write naming the old version: 412, and nothing changes.
    let edited = crossing("I-0001", 41.9, 12.7);
    let writes = [
        ("PUT", path.to_owned(), Some(edited.as_str())),
        ("PATCH", path.to_owned(), Some(r#"{"name":"x"}"#)),
        (
            "PUT",
            format!("{path}/phases"),
            Some(r#"{"phases":[{"lights":[0,1,2,3],"green_s":30,"red_s":4}]}"#),
        ),
        ("DELETE", format!("{path}/lights/3"), None),
        ("DELETE", path.to_owned(), None),
    ];
    for (method, p, body) in &writes {
        for stale in [old.as_str(), &format!("W/{old}")] {
            let a = api
                .call_with(method, p, *body, true, &[("if-match", stale)])
                .await?;
            assert_eq!(
                a.status,
                StatusCode::PRECONDITION_FAILED,
                "{method} {p}: {a:?}"
            );
            assert_eq!(a.body["field"], "If-Match");
        }
    }
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);

    // The current version (or `*`, or none) goes through, and the answer has the new one.
    let a = api
        .call_with(
            "PATCH",
            path,
            Some(r#"{"name":"renamed"}"#),
            true,
            &[("if-match", &now)],
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["name"], "renamed");
    assert_eq!(a.body["phases"][0]["green_s"], 20.0, "the retiming is kept");
    let newer = a.etag.clone().unwrap_or_default();
    assert_ne!(newer, now);
    assert_eq!(api.get(path).await?.etag.as_deref(), Some(newer.as_str()));
    let a = api
        .call_with(
            "PATCH",
            path,
            Some(r#"{"name":"again"}"#),
            true,
            &[("if-match", "*")],
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let current = a.etag.unwrap_or_default();
    let a = api
        .call_with("DELETE", path, None, true, &[("if-match", &current)])
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    assert_eq!(api.get(path).await?.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn creating_an_existing_id_is_a_conflict_and_changes_nothing() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let a = api
        .call(
            "POST",
            "/api/intersections",
            Some(&crossing("I-0001", 10.0, 10.0)),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.body["field"], "id");
    assert!(
        a.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("I-0001"))
    );
    let stored = api.store.intersection(&id("I-0001")).await?;
    assert_eq!(stored.map(|x| x.lat), Some(41.85));
    Ok(())
}

#[tokio::test]
async fn a_malformed_body_is_rejected_naming_the_field_and_changes_nothing() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let good = crossing("I-0002", 41.0, 12.0);
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("POST", "/api/intersections", "{not json".into(), "body"),
        ("POST", "/api/intersections", String::new(), "body"),
        (
            "POST",
            "/api/intersections",
            good.replace(r#""lat":41,"#, ""),
            "lat",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace(r#""lat":41"#, r#""lat":"north""#),
            "lat",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace(r#""lat":41"#, r#""lat":95"#),
            "lat",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace("I-0002", "I 2"),
            "id",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace(
                r#""saturation_veh_h":1700,"position":"E""#,
                r#""saturation_veh_h":-5"#,
            ),
            "lights[1].saturation_veh_h",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace(r#""lights":[1,3]"#, r#""lights":[1,7]"#),
            "phases[1].lights[1]",
        ),
        (
            "POST",
            "/api/intersections",
            good.replace(r#""lights":[1,3]"#, r#""lights":[1,2]"#),
            "phases[1].lights",
        ),
        (
            "PUT",
            "/api/intersections/I-0001",
            crossing("I-0009", 41.0, 12.0),
            "id",
        ),
        (
            "PUT",
            "/api/intersections/I-0001",
            crossing("I-0001", 41.0, 12.0).replace(r#""green_s":30"#, r#""green_s":0"#),
            "phases[0].green_s",
        ),
        (
            "PATCH",
            "/api/intersections/I-0001",
            r#"{"lon": 500}"#.into(),
            "lon",
        ),
        (
            "PATCH",
            "/api/intersections/I-0001",
            r#"{"id": "I-0003"}"#.into(),
            "id",
        ),
        ("PATCH", "/api/intersections/I-0001", "[1]".into(), "body"),
        (
            "PUT",
            "/api/intersections/I-0001/phases",
            r#"{"phases":[{"lights":[0,2],"green_s":30}]}"#.into(),
            "phases[0].red_s",
        ),
        (
            "POST",
            "/api/intersections/I-0001/lights",
            r#"{"light":1,"saturation_veh_h":1800}"#.into(),
            "light",
        ),
        (
            "PUT",
            "/api/intersections/I-0001/lights/2",
            r#"{"saturation_veh_h":0}"#.into(),
            "saturation_veh_h",
        ),
        (
            "PUT",
            "/api/intersections/I-0001/lights/2",
            r#"{"light":3,"saturation_veh_h":1800}"#.into(),
            "light",
        ),
    ];
    let before_one = api.store.intersection(&id("I-0001")).await?;
    for (method, path, body, field) in cases {
        let a = api.call(method, path, Some(&body), true).await?;
        assert!(
            a.status == StatusCode::BAD_REQUEST || a.status == StatusCode::CONFLICT,
            "{method} {path} {body}: {a:?}"
        );
        assert_eq!(a.body["field"], field, "{method} {path} {body}: {a:?}");
        assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(a.content_type.starts_with("application/json"), "{a:?}");
    }
    assert_eq!(api.store.intersection(&id("I-0001")).await?, before_one);
    assert_eq!(api.store.intersections().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unknown_intersection_or_light_is_not_found() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let body = crossing("I-0404", 41.0, 12.0);
    let cases = [
        ("GET", "/api/intersections/I-0404", None, "id"),
        ("GET", "/api/intersections/not%20an%20id", None, "id"),
        (
            "PUT",
            "/api/intersections/I-0404",
            Some(body.as_str()),
            "id",
        ),
        (
            "PATCH",
            "/api/intersections/I-0404",
            Some(r#"{"lat":1}"#),
            "id",
        ),
        ("DELETE", "/api/intersections/I-0404", None, "id"),
        ("GET", "/api/intersections/I-0404/lights", None, "id"),
        ("GET", "/api/intersections/I-0001/lights/7", None, "light"),
        ("GET", "/api/intersections/I-0001/lights/x", None, "light"),
        (
            "POST",
            "/api/intersections/I-0404/lights/1/repair",
            None,
            "id",
        ),
        (
            "POST",
            "/api/intersections/I-0001/lights/9/repair",
            None,
            "light",
        ),
        ("GET", "/api/intersections/I-0404/timings", None, "id"),
        ("GET", "/api/intersections/I-0404/lamps", None, "id"),
        ("GET", "/api/intersections/I-0404/phases", None, "id"),
        ("GET", "/api/results/2h", None, "length"),
    ];
    for (method, path, body, field) in cases {
        let a = api.call(method, path, body, true).await?;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {path}: {a:?}");
        assert_eq!(a.body["field"], field, "{method} {path}: {a:?}");
    }
    // A light the intersection does not have.
    api.call("DELETE", "/api/intersections/I-0001/lights/3", None, true)
        .await?;
    let a = api.get("/api/intersections/I-0001/lights/3").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn a_write_without_the_token_is_unauthorized_and_changes_nothing() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.store
        .record_alarm(&alarm("I-0001", 2, LampColour::Green, T0))
        .await?;
    let before = api.store.intersections().await?;
    let other = crossing("I-0002", 41.0, 12.0);
    let writes = [
        ("POST", "/api/intersections", Some(other.as_str())),
        ("PUT", "/api/intersections/I-0001", Some(other.as_str())),
        ("PATCH", "/api/intersections/I-0001", Some(r#"{"lat":1}"#)),
        ("DELETE", "/api/intersections/I-0001", None),
        ("DELETE", "/api/intersections/I-0001/lights/1", None),
        ("POST", "/api/intersections/I-0001/lights/2/repair", None),
    ];
    for (method, path, body) in writes {
        let a = api.call(method, path, body, false).await?;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}: {a:?}");
        assert_eq!(a.body["field"], "Authorization");
        for wrong in ["Bearer nope", "Basic dGVzdA==", "Bearer "] {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", wrong)
                .body(axum::body::Body::from(body.unwrap_or_default().to_owned()))?;
            let a = send(&api.router, req).await?;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {wrong}"
            );
        }
    }
    assert_eq!(api.store.intersections().await?, before);
    let alarms = api.store.alarms().await?;
    assert!(alarms.iter().all(|a| a.repaired_at.is_none()));
    assert!(api.store.take_repairs().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn with_no_token_configured_every_write_is_refused_and_reads_still_work() -> anyhow::Result<()>
{
    let api = api_with_token(None)?;
    let a = api
        .call(
            "POST",
            "/api/intersections",
            Some(&crossing("I-0001", 1.0, 1.0)),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(api.store.intersections().await?.is_empty());
    let a = api.get("/api/intersections").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!([]));
    let a = api.get("/api/config").await?;
    assert_eq!(a.body["token_required"], false);
    Ok(())
}

#[tokio::test]
async fn an_empty_configured_token_admits_no_write() -> anyhow::Result<()> {
    let api = api_with_token(Some(""))?;
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/intersections")
        .header("authorization", "Bearer ")
        .body(axum::body::Body::from(crossing("I-0001", 1.0, 1.0)))?;
    let a = send(&api.router, req).await?;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(api.store.intersections().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn lights_can_be_added_replaced_and_deleted_and_the_phases_follow() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let a = api
        .call("DELETE", "/api/intersections/I-0001/lights/3", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let x = api.store.intersection(&id("I-0001")).await?;
    let phases: Vec<Vec<usize>> = x
        .iter()
        .flat_map(|x| &x.phases)
        .map(|p| p.lights.iter().map(|l| l.get()).collect())
        .collect();
    assert_eq!(phases, vec![vec![0, 2], vec![1]]);

    let a = api
        .call(
            "POST",
            "/api/intersections/I-0001/lights",
            Some(r#"{"light":3,"saturation_veh_h":1500,"position":"W"}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/lights/3",
            Some(r#"{"saturation_veh_h":1650,"position":"West"}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = api.get("/api/intersections/I-0001/lights/3").await?;
    assert_eq!(a.body["saturation_veh_h"], 1650.0);
    assert_eq!(a.body["position"], "West");
    let a = api.get("/api/intersections/I-0001/lights").await?;
    let order: Vec<i64> = a
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["light"].as_i64())
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3]);
    Ok(())
}

#[tokio::test]
async fn deleting_the_last_light_is_a_conflict_that_changes_nothing() -> anyhow::Result<()> {
    let api = api()?;
    let one = r#"{"id":"I-1","lat":1,"lon":1,"lights":[{"light":0,"saturation_veh_h":1800}],
                  "phases":[{"lights":[0],"green_s":30,"red_s":30}]}"#;
    let a = api
        .call("POST", "/api/intersections", Some(one), true)
        .await?;
    assert_eq!(a.status, StatusCode::CREATED);
    let before = api.store.intersection(&id("I-1")).await?;
    let a = api
        .call("DELETE", "/api/intersections/I-1/lights/0", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::CONFLICT, "{a:?}");
    assert_eq!(a.body["field"], "lights");
    assert_eq!(api.store.intersection(&id("I-1")).await?, before);
    Ok(())
}

#[tokio::test]
async fn phases_are_read_and_replaced_whole() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let a = api.get("/api/intersections/I-0001/phases").await?;
    assert_eq!(a.body["phases"].as_array().map(Vec::len), Some(2));
    let three = r#"{"phases":[{"lights":[0],"green_s":20,"red_s":40},
        {"lights":[1,3],"green_s":15,"red_s":45},{"lights":[2],"green_s":13,"red_s":47}]}"#;
    let a = api
        .call("PUT", "/api/intersections/I-0001/phases", Some(three), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let x = api.store.intersection(&id("I-0001")).await?;
    assert_eq!(x.map(|x| x.phases.len()), Some(3));
    Ok(())
}

#[tokio::test]
async fn a_repair_closes_the_lights_open_alarms_and_queues_an_order() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.store
        .record_alarm(&alarm("I-0001", 2, LampColour::Green, T0))
        .await?;
    api.store
        .record_alarm(&alarm("I-0001", 1, LampColour::Red, T0 + 1000))
        .await?;
    let a = api.get("/api/alarms?state=open").await?;
    assert_eq!(a.body["open"], 2);

    let a = api
        .call(
            "POST",
            "/api/intersections/I-0001/lights/2/repair",
            None,
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["closed"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["closed"][0]["lamp"], "green");
    let at = a.body["at"].as_str().unwrap_or_default().to_owned();
    assert!(traffic_core::time::parse_rfc3339_ms(&at).is_some(), "{at}");

    let a = api.get("/api/alarms?state=repaired").await?;
    assert_eq!(a.body["alarms"][0]["repaired_at"], at.as_str());
    assert_eq!(a.body["alarms"][0]["open"], false);
    assert_eq!(a.body["open"], 1);
    assert_eq!(a.body["repaired"], 1);
    assert_eq!(
        api.store.take_repairs().await?,
        vec![(id("I-0001"), light(2))]
    );
    Ok(())
}

#[tokio::test]
async fn deleting_an_intersection_or_a_light_closes_its_open_alarms() -> anyhow::Result<()> {
    // Nothing is left to repair once the hardware is gone, and the page's repair button would
    // answer 404: the open alarms are closed at deletion, and kept in the alarm log.
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.create("I-0002", 41.86, 12.61).await?;
    for (x, l, lamp, t) in [
        ("I-0001", 1, LampColour::Red, T0),
        ("I-0001", 2, LampColour::Green, T0 + 1000),
        ("I-0002", 3, LampColour::Yellow, T0 + 2000),
    ] {
        api.store.record_alarm(&alarm(x, l, lamp, t)).await?;
    }

    let a = api
        .call("DELETE", "/api/intersections/I-0002/lights/3", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    let a = api
        .call("DELETE", "/api/intersections/I-0001", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");

    let a = api.get("/api/alarms").await?;
    assert_eq!(a.body["open"], 0, "{a:?}");
    assert_eq!(a.body["repaired"], 3, "{a:?}");
    // The field gets orders for the lights that are gone: harmless, and the simulator's lamps
    // of a light that comes back start repaired.
    let mut orders = api.store.take_repairs().await?;
    orders.sort();
    assert_eq!(
        orders,
        vec![
            (id("I-0001"), light(1)),
            (id("I-0001"), light(2)),
            (id("I-0002"), light(3)),
        ]
    );

    // A delete that fails closes nothing.
    api.store
        .record_alarm(&alarm("I-0002", 0, LampColour::Red, T0 + 3000))
        .await?;
    let a = api
        .call("DELETE", "/api/intersections/I-0009", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api
        .call("DELETE", "/api/intersections/I-0002/lights/9", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/alarms").await?.body["open"], 1);
    Ok(())
}

#[tokio::test]
async fn lamp_states_are_shown_per_light() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let broken = LightLamps {
        lamps: Lamps {
            yellow: LampState::Broken,
            ..Lamps::default()
        },
        as_of_ms: Some(T0),
    };
    api.store
        .put_lamp_states(&[((id("I-0001"), light(1)), broken)])
        .await?;
    let a = api.get("/api/intersections/I-0001/lamps").await?;
    assert_eq!(a.status, StatusCode::OK);
    let lamps = a.body.as_array().cloned().unwrap_or_default();
    assert_eq!(lamps.len(), 4);
    assert_eq!(lamps[1]["lamps"]["yellow"], "broken");
    assert_eq!(lamps[1]["broken"], true);
    assert_eq!(lamps[1]["as_of"], "2026-01-05T08:00:00Z");
    assert_eq!(lamps[0]["broken"], false);
    assert_eq!(lamps[0]["as_of"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn the_network_state_is_null_until_the_merge_stores_one() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/network").await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert!(a.body.is_null(), "{a:?}");

    let state = NetworkState {
        length: "15m".into(),
        start: "2026-01-05T08:00:00Z".into(),
        end: "2026-01-05T08:15:00Z".into(),
        closed: false,
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
    };
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
        ("/api/results/15m?limit=0", "limit"),
        ("/api/results/15m?limit=many", "limit"),
        ("/api/alarms?state=burning", "state"),
        ("/api/alarms?limit=-1", "limit"),
        ("/api/stats?minutes=100000", "minutes"),
    ] {
        let a = api.get(path).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {a:?}");
        assert_eq!(a.body["field"], field, "{path}: {a:?}");
    }
    Ok(())
}

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
    api.store
        .set_timings(
            &[(id("I-0001"), retimed.clone())],
            &"15m@2026-01-05T08:00:00Z".parse()?,
        )
        .await?;
    retimed[0].green_s = 45.0;
    retimed[0].red_s = 19.0;
    api.store
        .set_timings(
            &[(id("I-0001"), retimed)],
            &"15m@2026-01-05T08:15:00Z".parse()?,
        )
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
    let all = a.body.as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["intersection_id"], "I-0001");
    assert_eq!(all[0]["phases"][0]["green_s"], 45.0);
    assert_eq!(all[1]["retimed_from"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn alarms_are_listed_newest_first_and_filtered_by_state() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    for (i, l) in [0, 1, 2].into_iter().enumerate() {
        api.store
            .record_alarm(&alarm("I-0001", l, LampColour::Red, T0 + i as i64 * 1000))
            .await?;
    }
    api.call(
        "POST",
        "/api/intersections/I-0001/lights/0/repair",
        None,
        true,
    )
    .await?;
    let a = api.get("/api/alarms").await?;
    let lights: Vec<i64> = a.body["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["light"].as_i64())
        .collect();
    assert_eq!(lights, vec![2, 1, 0]);
    assert_eq!(a.body["alarms"][0]["id"], "I-0001#2#red#1767600002000");
    assert!(
        a.body["alarms"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Lamp failure"))
    );
    let a = api.get("/api/alarms?state=open&limit=1").await?;
    assert_eq!(a.body["alarms"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["alarms"][0]["light"], 2);
    let a = api.get("/api/alarms?state=repaired").await?;
    assert_eq!(a.body["alarms"][0]["light"], 0);
    Ok(())
}

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
                function: function.into(),
                minute_ms: m,
                invocations: 2,
                records,
                accepted: records,
                latency_ms_sum: lat,
                latency_ms_max: 900,
            })
            .await?;
    }
    for (shard, accepted, rejected) in [("shard-0", 700, 3), ("shard-1", 200, 1)] {
        api.store
            .commit(&Commit {
                expected: None,
                meta: ShardMeta {
                    shard_id: shard.into(),
                    applied_through: Some(SequenceNumber::from_u128(1)),
                    max_event_ms: Some(T0),
                    counters: Counters {
                        accepted,
                        rejected,
                        late: 2,
                        duplicates: 5,
                    },
                },
                items: vec![],
            })
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
    assert_eq!(
        a.body["counters"],
        json!({"accepted": 900, "rejected": 4, "late": 4, "duplicates": 10})
    );
    assert_eq!(a.body["shards"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.body["shards"][0]["max_event"], "2026-01-05T08:00:00Z");
    Ok(())
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404_and_a_wrong_method_a_405() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/nothing-here").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"], api::NO_ROUTE);
    let a = api.call("PATCH", "/api/alarms", None, true).await?;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{a:?}");
    assert!(a.body["error"].is_string());
    Ok(())
}

#[tokio::test]
async fn the_dashboard_and_its_assets_are_served_from_the_binary() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.content_type.starts_with("text/html"), "{a:?}");
    assert!(a.text.contains("/assets/app.js"));
    assert!(
        !a.text.contains("http://") && !a.text.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    for (file, ty) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let a = api.get(&format!("/assets/{file}")).await?;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert!(a.content_type.starts_with(ty), "{file}: {}", a.content_type);
        assert!(
            !a.text.contains("https://"),
            "{file} fetches nothing from elsewhere"
        );
    }
    let a = api.get("/assets/other.js").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    Ok(())
}
