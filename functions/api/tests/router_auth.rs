//! The router, request by request, on an embedded store in a temporary directory: who may write: the bearer token, a missing or empty one.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::*;
use traffic_core::reading::LampColour;
use traffic_ports::{LampStore, Registry};

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
    assert!(alarms.iter().all(|a| a.repaired_at_ms.is_none()));
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
    assert_eq!(a.body, json!({"intersections": [], "next": null}));
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
