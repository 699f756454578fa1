//! The router behind API Gateway: real HTTP API (payload format 2.0) events, path parameters
//! included, converted by lambda_http exactly as the `api` Lambda converts them.

mod support;

use anyhow::Context as _;
use axum::http::StatusCode;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, RequestExt, Service};
use serde_json::Value;
use std::time::Duration;
use support::*;
use tower::ServiceExt;
use traffic_core::lamps::Alarm;
use traffic_core::reading::LampColour;
use traffic_ports::{LampStore, Registry};

fn fixture(name: &str) -> anyhow::Result<String> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).with_context(|| path)
}

/// Converts the event as lambda_http does and sends it to the router.
async fn handle(api: &Api, event: &str) -> anyhow::Result<Answer> {
    let req = lambda_http::request::from_str(event)?;
    let resp = tokio::time::timeout(Duration::from_secs(10), api.router.clone().oneshot(req))
        .await
        .context("no answer within 10 s")??;
    answer(resp).await
}

fn open_alarm() -> Alarm {
    Alarm {
        intersection_id: id("I-0001"),
        light: light(2),
        lamp: LampColour::Green,
        ts_ms: T0,
        position: None,
        silent: None,
    }
}

#[tokio::test]
async fn a_get_event_with_path_parameters_reaches_the_intersection_it_names() -> anyhow::Result<()>
{
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let event = fixture("get-intersection.json")?;
    let req = lambda_http::request::from_str(&event)?;
    assert_eq!(req.path_parameters().first("id"), Some("I-0001"));
    assert_eq!(req.uri().path(), "/api/intersections/I-0001");
    let a = handle(&api, &event).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["id"], "I-0001");
    Ok(())
}

#[tokio::test]
async fn a_get_event_is_answered_with_an_api_gateway_v2_response() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let payload: LambdaRequest = serde_json::from_str(&fixture("get-intersection.json")?)?;
    let mut adapter = Adapter::from(api.router.clone());
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        adapter.call(LambdaEvent::new(payload, Context::default())),
    )
    .await
    .context("no answer within 10 s")??;
    let json = serde_json::to_value(&resp)?;
    assert_eq!(json["statusCode"], 200, "{json}");
    assert_eq!(json["isBase64Encoded"], false);
    assert_eq!(json["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(json["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["lights"][0]["position"], "N");
    Ok(())
}

#[tokio::test]
async fn a_results_event_with_a_query_string_honours_the_limit() -> anyhow::Result<()> {
    use traffic_ports::ResultStore;
    let api = api()?;
    let rs: Vec<_> = (0..4)
        .map(|i| window_result("15m", T0 + i * 900_000, "I-0001", true))
        .collect();
    api.store.put_results(&rs).await?;
    let a = handle(&api, &fixture("get-results-with-limit.json")?).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["length"], "15m");
    assert_eq!(a.body["windows"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.body["windows"][0]["start"], "2026-01-05T08:45:00Z");
    Ok(())
}

#[tokio::test]
async fn a_create_event_with_the_bearer_token_stores_the_intersection() -> anyhow::Result<()> {
    let api = api()?;
    let a = handle(&api, &fixture("create-intersection-with-token.json")?).await?;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let x = api.store.intersection(&id("I-0042")).await?;
    assert_eq!(
        x.and_then(|x| x.extra.get("name").cloned()),
        Some(Value::from("Via Appia Nuova / Via Tuscolana"))
    );
    // The same event again: the id is taken.
    let a = handle(&api, &fixture("create-intersection-with-token.json")?).await?;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.body["field"], "id");
    Ok(())
}

#[tokio::test]
async fn a_repair_event_approved_by_a_jwt_authorizer_closes_the_alarm() -> anyhow::Result<()> {
    // As deployed: no local token, the template's JWT authorizer guards the route.
    let api = api_with_token(None)?;
    api.store
        .create_intersection(&serde_json::from_str(&crossing("I-0001", 41.85, 12.6))?)
        .await?;
    api.store.record_alarm(&open_alarm()).await?;
    let a = handle(&api, &fixture("repair-with-jwt-authorizer.json")?).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["light"], 2);
    assert_eq!(a.body["closed"].as_array().map(Vec::len), Some(1));
    let alarms = api.store.alarms().await?;
    assert!(alarms[0].repaired_at_ms.is_some());
    Ok(())
}

#[tokio::test]
async fn a_repair_event_without_authorizer_or_token_is_unauthorized_and_changes_nothing()
-> anyhow::Result<()> {
    for token in [None, Some(TOKEN)] {
        let api = api_with_token(token)?;
        api.store
            .create_intersection(&serde_json::from_str(&crossing("I-0001", 41.85, 12.6))?)
            .await?;
        api.store.record_alarm(&open_alarm()).await?;
        let a = handle(&api, &fixture("repair-without-authorizer.json")?).await?;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "token {token:?}: {a:?}");
        assert_eq!(a.body["field"], "Authorization");
        assert!(api.store.alarms().await?[0].repaired_at_ms.is_none());
        assert!(api.store.take_repairs().await?.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn a_base64_encoded_patch_event_on_a_proxy_route_is_decoded_and_applied() -> anyhow::Result<()>
{
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let event = fixture("patch-intersection-base64.json")?;
    let req = lambda_http::request::from_str(&event)?;
    assert_eq!(
        req.path_parameters().first("proxy"),
        Some("intersections/I-0001")
    );
    let a = handle(&api, &event).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["name"], "Piazza dei Re di Roma");
    let x = api.store.intersection(&id("I-0001")).await?;
    assert_eq!(x.map(|x| x.lon), Some(12.5101));
    Ok(())
}
