//! The router, request by request, on an embedded store in a temporary directory: the intersections resource: create, read, replace, patch, delete, versions, and what bad requests get (the pages: `router_pages.rs`).

mod support;

use axum::http::StatusCode;
use support::*;
use traffic_core::city::Phase;
use traffic_ports::Registry;

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
    assert_eq!(a.body["intersections"].as_array().map(Vec::len), Some(1));

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
    api.retime("I-0001", retimed, "15m@2026-01-05T08:00:00Z")
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
async fn an_if_match_list_holds_when_one_of_its_tags_is_the_version_and_other_values_never_do()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let path = "/api/intersections/I-0001";
    let now = api.get(path).await?.etag.unwrap_or_default();
    let stored = api.store.intersection(&id("I-0001")).await?;
    let patch = Some(r#"{"name":"x"}"#);
    let bare = now.trim_matches('"');

    // Not `*` and not a list of quoted entity tags (even the version unquoted, or a list that
    // breaks off): no version is named, so the condition fails whatever the write, and nothing
    // changes.
    let broken = [
        bare.to_owned(),
        "k".to_owned(),
        format!("{now},"),
        format!("{now} \"b\""),
        format!("*, {now}"),
        format!("W/{bare}"),
        String::new(),
    ];
    for bad in &broken {
        for (method, p, body) in [
            ("PATCH", path.to_owned(), patch),
            (
                "PUT",
                format!("{path}/control"),
                Some(r#"{"mode":"fixed"}"#),
            ),
            ("DELETE", format!("{path}/lights/3"), None),
            ("DELETE", path.to_owned(), None),
        ] {
            let a = api
                .call_with(method, &p, body, true, &[("if-match", bad)])
                .await?;
            assert_eq!(
                a.status,
                StatusCode::PRECONDITION_FAILED,
                "{method} {p} {bad:?}: {a:?}"
            );
            assert_eq!(a.body["field"], "If-Match", "{a:?}");
        }
    }
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);

    // A list without the version fails; one holding it among others (strong or weak) holds.
    let a = api
        .call_with(
            "PATCH",
            path,
            patch,
            true,
            &[("if-match", "\"a\", W/\"b\"")],
        )
        .await?;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{a:?}");
    let listed = format!("\"other\",W/{now} , \"another\"");
    let a = api
        .call_with("PATCH", path, patch, true, &[("if-match", &listed)])
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["name"], "x");
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
async fn a_write_with_a_missing_or_invalid_body_is_a_400_even_with_a_stale_if_match()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let x = "/api/intersections/I-0001";
    // Light 3 goes, so that adding it is possible.
    let a = api
        .call("DELETE", &format!("{x}/lights/3"), None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    let stored = api.store.intersection(&id("I-0001")).await?;
    let invalid =
        crossing("I-0001", 41.85, 12.6).replace("\"lat\"", "\"retimed_from\": {}, \"lat\"");
    let writes = [
        ("PUT", x.to_owned(), invalid.as_str(), "retimed_from"),
        ("PATCH", x.to_owned(), r#"{"lat": 91}"#, "lat"),
        (
            "POST",
            format!("{x}/lights"),
            r#"{"light": 3, "saturation_veh_h": 0}"#,
            "saturation_veh_h",
        ),
        (
            "PUT",
            format!("{x}/lights/1"),
            r#"{"saturation_veh_h": 0}"#,
            "saturation_veh_h",
        ),
        (
            "PUT",
            format!("{x}/phases"),
            r#"{"phases": [{"lights": [0, 1, 2], "green_s": 30, "red_s": -1}]}"#,
            "phases[0].red_s",
        ),
    ];
    for (method, path, body, field) in &writes {
        for headers in [&[][..], &[("if-match", "\"not-the-version\"")][..]] {
            // No body at all: 400 naming the body.
            let a = api.call_with(method, path, None, true, headers).await?;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method} {path}: {a:?}");
            assert_eq!(a.body["field"], "body", "{method} {path}: {a:?}");
            // An invalid one: 400 naming the field, whatever version the request names.
            let a = api
                .call_with(method, path, Some(body), true, headers)
                .await?;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method} {path}: {a:?}");
            assert_eq!(a.body["field"], *field, "{method} {path}: {a:?}");
        }
    }
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);
    Ok(())
}

#[tokio::test]
async fn a_phase_time_over_an_hour_is_a_400_so_a_cycle_is_always_a_number() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let stored = api.store.intersection(&id("I-0001")).await?;
    let huge = r#"{"phases": [{"lights": [0, 2], "green_s": 1.7976931348623157e308, "red_s": 1},
                               {"lights": [1, 3], "green_s": 30, "red_s": 3601}]}"#;
    let a = api
        .call("PUT", "/api/intersections/I-0001/phases", Some(huge), true)
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.body["field"], "phases[0].green_s", "{a:?}");
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);
    let a = api.get("/api/intersections/I-0001/timings").await?;
    assert!(a.body["current"]["cycle_s"].is_number(), "{a:?}");
    Ok(())
}

#[tokio::test]
async fn a_proposal_sent_with_a_phase_time_over_an_hour_is_a_400_naming_it() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let stored = api.store.intersection(&id("I-0001")).await?;
    let patch = r#"{"proposal": {"from": "15m@2026-01-05T08:15:00Z", "window_s": 900,
        "flows": [], "flow_ratio": 0.5, "cycle_s": 60,
        "phases": [{"lights": [0, 2], "green_s": 30, "red_s": 3601}]}}"#;
    let a = api
        .call("PATCH", "/api/intersections/I-0001", Some(patch), true)
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.body["field"], "proposal.phases[0].red_s", "{a:?}");
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);
    Ok(())
}

#[tokio::test]
async fn a_saturation_below_one_vehicle_an_hour_is_a_400_so_a_retiming_stays_finite()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let stored = api.store.intersection(&id("I-0001")).await?;
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/lights/0",
            Some(r#"{"saturation_veh_h": 5e-324}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.body["field"], "saturation_veh_h", "{a:?}");
    assert_eq!(api.store.intersection(&id("I-0001")).await?, stored);
    Ok(())
}
