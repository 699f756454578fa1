//! The router, request by request, on an embedded store in a temporary directory: every
//! answer with an intersection or its timings in force carries its plan for actuated
//! controllers, the merge's where it stored one, else drawn from the phases and limits.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;
use traffic_core::EngineConfig;
use traffic_core::plan::{Plan, plan};
use traffic_ports::Registry;

/// The plan of the sample crossing's 30 s greens, 4 s yellows, with the default factors.
fn drawn() -> Value {
    json!({"cycle_s": 68.0, "offset_s": null, "coordinated_phase": null, "phases": [
        {"min_green_s": 12.0, "green_s": 30.0, "max_green_s": 90.0},
        {"min_green_s": 12.0, "green_s": 30.0, "max_green_s": 90.0}]})
}

/// The plan in every answer that shows intersection `x`: the list, the item, the timings in
/// force (list and item); they must agree.
async fn plans_shown(api: &Api, x: &str) -> anyhow::Result<Value> {
    let one = api.get(&format!("/api/intersections/{x}")).await?;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    let list = api.get("/api/intersections").await?;
    let listed = list.body["intersections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["id"] == x)
        .map(|i| i["plan"].clone());
    let timings = api.get("/api/timings").await?;
    let timed = timings.body["timings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["intersection_id"] == x)
        .map(|t| t["plan"].clone());
    let history = api.get(&format!("/api/intersections/{x}/timings")).await?;
    assert_eq!(listed.as_ref(), Some(&one.body["plan"]), "the list");
    assert_eq!(timed.as_ref(), Some(&one.body["plan"]), "the timings");
    assert_eq!(history.body["current"]["plan"], one.body["plan"], "current");
    for h in history.body["history"].as_array().into_iter().flatten() {
        assert_eq!(h.get("plan"), None, "a history entry has none: {h}");
    }
    Ok(one.body["plan"].clone())
}

#[tokio::test]
async fn an_intersection_never_retimed_shows_the_plan_of_its_own_greens() -> anyhow::Result<()> {
    let api = api()?;
    // A `plan` in a write's body is the merge's to set: ignored.
    let mut body: Value = serde_json::from_str(&crossing("I-0001", 41.85, 12.6))?;
    body["plan"] = json!({"cycle_s": 1, "offset_s": 1, "phases": []});
    let a = api
        .call("POST", "/api/intersections", Some(&body.to_string()), true)
        .await?;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(a.body["plan"], drawn());
    let stored = api.store.intersection(&id("I-0001")).await?;
    assert_eq!(stored.and_then(|x| x.plan), None, "nothing stored: drawn");
    assert_eq!(plans_shown(&api, "I-0001").await?, drawn());
    Ok(())
}

#[tokio::test]
async fn the_plan_the_merge_stored_is_shown_and_kept_until_the_phases_or_limits_change()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let x = api
        .store
        .intersection(&id("I-0001"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    let mut phases = x.phases.clone();
    phases[0].green_s = 40.0;
    phases[0].red_s = 24.0;
    phases[1].green_s = 20.0;
    phases[1].red_s = 44.0;
    // An offset as coordination will set one: only a stored plan can carry it.
    let stored = Plan {
        offset_s: Some(12.0),
        ..plan(&phases, 4.0, None, &Default::default())
    };
    api.retime_planned(
        "I-0001",
        phases,
        Some(stored.clone()),
        "15m@2026-01-05T08:00:00Z",
    )
    .await?;
    let shown = plans_shown(&api, "I-0001").await?;
    assert_eq!(shown, serde_json::to_value(&stored)?);
    assert_eq!(shown["phases"][1]["max_green_s"], 60.0);

    // An edit that leaves phases and limits alone keeps it.
    let a = api
        .call(
            "PATCH",
            "/api/intersections/I-0001",
            Some(r#"{"name":"Via Appia"}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["plan"]["offset_s"], 12.0);
    assert_eq!(plans_shown(&api, "I-0001").await?, shown);

    // New limits: the stored plan no longer holds; the one drawn within them is shown.
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/control",
            Some(r#"{"mode":"fixed","limits":{"min_green_s":[null,25]}}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let after = plans_shown(&api, "I-0001").await?;
    assert_eq!(a.body["plan"], after);
    assert_eq!(after["offset_s"], Value::Null);
    assert_eq!(after["phases"][1]["min_green_s"], 25.0);
    assert_eq!(after["phases"][1]["green_s"], 25.0, "raised to the limit");
    assert_eq!(after["cycle_s"], 40.0 + 4.0 + 25.0 + 4.0);

    // The operator's new greens: a plan of those.
    let a = api
        .call(
            "PUT",
            "/api/intersections/I-0001/phases",
            Some(r#"{"phases":[{"lights":[0,2],"green_s":30,"red_s":34},{"lights":[1,3],"green_s":30,"red_s":34}]}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(
        plans_shown(&api, "I-0001").await?["phases"][0],
        drawn()["phases"][0]
    );
    Ok(())
}

#[tokio::test]
async fn a_plan_drawn_by_the_api_follows_the_plan_variables() -> anyhow::Result<()> {
    let cfg = EngineConfig::from_lookup(|k| (k == "PLAN_MAX_GREEN_FACTOR").then(|| "2".into()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let api = api_with(cfg, Some(TOKEN))?;
    api.create("I-0001", 41.85, 12.6).await?;
    let shown = plans_shown(&api, "I-0001").await?;
    assert_eq!(shown["phases"][0]["max_green_s"], 60.0);
    Ok(())
}
