//! The router, request by request, on an embedded store in a temporary directory: an intersection's lights and phases.

mod support;

use axum::http::StatusCode;
use support::*;
use traffic_ports::Registry;

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
