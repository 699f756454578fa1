//! The router, request by request, on an embedded store in a temporary directory: control
//! modes and limits (`PUT /api/intersections/{id}/control`) and who changed the timings.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;
use traffic_ports::Registry;

const CONTROL: &str = "/api/intersections/I-0001/control";

/// The intersection as stored, and its version: what must not move on a refused request.
async fn stored(api: &Api) -> anyhow::Result<(traffic_core::Intersection, traffic_ports::Version)> {
    api.store
        .intersection_versioned(&id("I-0001"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no I-0001"))
}

#[tokio::test]
async fn setting_the_control_without_the_token_is_refused_and_changes_nothing() -> anyhow::Result<()>
{
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let before = stored(&api).await?;
    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"manual"}"#), false)
        .await?;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert_eq!(stored(&api).await?, before);
    Ok(())
}

#[tokio::test]
async fn a_bad_control_body_is_a_400_naming_the_field_and_changes_nothing() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let before = stored(&api).await?;
    for (body, field) in [
        (r#"{"mode":"auto"}"#, "mode"),
        (r#"{"limits":{"max_cycle_s":90}}"#, "mode"),
        (r#"{"mode":"fixed","by":"me"}"#, "by"),
        (
            r#"{"mode":"fixed","limits":{"max_green":1}}"#,
            "limits.max_green",
        ),
        (
            r#"{"mode":"adaptive","limits":{"max_cycle_s":-5}}"#,
            "limits.max_cycle_s",
        ),
        (
            r#"{"mode":"adaptive","limits":{"max_cycle_s":"long"}}"#,
            "limits.max_cycle_s",
        ),
        (
            r#"{"mode":"adaptive","limits":{"min_green_s":[-1]}}"#,
            "limits.min_green_s[0]",
        ),
        (
            r#"{"mode":"adaptive","limits":{"min_green_s":[10,10,10]}}"#,
            "limits.min_green_s",
        ),
        (
            r#"{"mode":"adaptive","limits":{"max_green_change":0}}"#,
            "limits.max_green_change",
        ),
        (
            r#"{"mode":"adaptive","limits":{"max_green_change":1.2}}"#,
            "limits.max_green_change",
        ),
        (r#"["manual"]"#, "body"),
        ("", "body"),
    ] {
        let a = api.call("PUT", CONTROL, Some(body), true).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {a:?}");
        assert_eq!(a.body["field"], field, "{body}: {a:?}");
        assert_eq!(stored(&api).await?, before, "{body} changed nothing");
    }
    Ok(())
}

#[tokio::test]
async fn the_control_of_an_unknown_intersection_is_a_404() -> anyhow::Result<()> {
    let api = api()?;
    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"fixed"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{a:?}");
    assert_eq!(a.body["field"], "id");
    Ok(())
}

#[tokio::test]
async fn a_mode_and_limits_set_are_returned_shown_and_back_to_adaptive_leave_no_trace()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let original = api.get("/api/intersections/I-0001").await?.body;
    let body = r#"{"mode":"manual","limits":{"min_green_s":[12,null],"max_cycle_s":90,"max_green_change":0.2}}"#;
    let a = api.call("PUT", CONTROL, Some(body), true).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let control = json!({"mode": "manual", "limits": {"min_green_s": [12.0, null], "max_cycle_s": 90.0, "max_green_change": 0.2}});
    assert_eq!(a.body["control"], control);
    assert_eq!(
        a.body["phases"], original["phases"],
        "timings unchanged now"
    );
    let g = api.get("/api/intersections/I-0001").await?;
    assert_eq!(g.body["control"], control);
    assert_eq!(g.etag, a.etag);

    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"adaptive"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let g = api.get("/api/intersections/I-0001").await?;
    assert_eq!(
        g.body, original,
        "no control member, as before control modes"
    );
    Ok(())
}

#[tokio::test]
async fn a_manual_intersection_shows_websters_proposal_and_leaving_manual_drops_it()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"manual"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    // What the merge records for a manual intersection.
    let (x, version) = stored(&api).await?;
    let timing = traffic_core::webster::retime(
        &x,
        &[300, 20, 280, 10],
        900.0,
        &traffic_core::webster::WebsterConfig::default(),
    );
    let phases = traffic_core::webster::apply(&x.phases, &timing);
    let proposal = traffic_core::control::Proposal::of(
        &x,
        &[300, 20, 280, 10],
        "15m@2026-01-05T08:00:00Z".parse()?,
        &timing,
        phases,
    );
    let skipped = api
        .store
        .set_proposals(&[traffic_ports::ProposalUpdate {
            id: x.id.clone(),
            proposal,
            expected_version: version,
        }])
        .await?;
    assert!(skipped.is_empty());

    let g = api.get("/api/intersections/I-0001").await?;
    let p = &g.body["proposal"];
    assert_eq!(p["from"], "15m@2026-01-05T08:00:00Z");
    assert_eq!(p["window_s"], 900.0);
    assert_eq!(p["flows"][0]["vehicles"], 300);
    assert_eq!(p["flows"][0]["flow_veh_h"], 1200.0);
    assert!(p["cycle_s"].as_f64().is_some(), "{p}");
    assert_eq!(g.body["phases"][0]["green_s"], 30.0, "the plan stands");

    let a = api
        .call("PUT", CONTROL, Some(r#"{"mode":"fixed"}"#), true)
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["proposal"], Value::Null);
    assert_eq!(a.body["control"]["mode"], "fixed");
    Ok(())
}

#[tokio::test]
async fn the_timing_history_says_who_changed_the_timings() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let (x, _) = stored(&api).await?;
    let mut retimed = x.phases.clone();
    retimed[0].green_s = 40.0;
    retimed[0].red_s = 24.0;
    api.retime("I-0001", retimed, "15m@2026-01-05T08:00:00Z")
        .await?;
    let phases = r#"{"phases":[{"lights":[0,2],"green_s":35,"red_s":29},{"lights":[1,3],"green_s":25,"red_s":39}]}"#;
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/phases",
            Some(phases),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    // The same timings again are no change.
    api.call(
        "PUT",
        "/api/intersections/I-0001/phases",
        Some(phases),
        true,
    )
    .await?;

    let h = api.get("/api/intersections/I-0001/timings").await?;
    let history = h.body["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 2, "{h:?}");
    assert_eq!(history[0]["by"], "retiming");
    assert_eq!(history[0]["retimed_from"], "15m@2026-01-05T08:00:00Z");
    assert_eq!(history[1]["by"], "operator");
    assert_eq!(history[1]["retimed_from"], Value::Null);
    assert!(history[1]["at"].as_str().is_some(), "{h:?}");
    assert_eq!(history[1]["phases"][0]["green_s"], 35.0);
    assert_eq!(h.body["current"]["phases"][0]["green_s"], 35.0);
    Ok(())
}

#[tokio::test]
async fn fewer_phases_than_the_stored_limits_name_are_a_409_and_change_nothing()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let a = api
        .call(
            "PUT",
            CONTROL,
            Some(r#"{"mode":"adaptive","limits":{"min_green_s":[12,12]}}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let before = stored(&api).await?;
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/phases",
            Some(r#"{"phases":[{"lights":[0,1,2,3],"green_s":40,"red_s":0}]}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::CONFLICT, "{a:?}");
    assert_eq!(a.body["field"], "control.limits.min_green_s", "{a:?}");
    assert_eq!(stored(&api).await?, before, "nothing changed");
    Ok(())
}
