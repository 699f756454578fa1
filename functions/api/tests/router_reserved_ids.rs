//! The router on an embedded store: an intersection cannot take a name the stores keep for
//! their own items (`docs/contracts.md`, "Intersection ids").

mod support;

use axum::http::StatusCode;
use support::*;
use traffic_ports::Registry;

/// The names of the stores' own items an intersection id could collide with: the city-wide
/// silence alarm's intersection (`_city`; every id starting with `_` is kept for such), and
/// `not-ok` (the lamp summary's old key `lamp#not-ok`, beside `lamp#<id>`).
const INTERNAL_NAMES: [&str; 4] = ["_city", "not-ok", "_", "_lamps"];

#[tokio::test]
async fn creating_an_intersection_with_an_internal_name_is_a_400_naming_the_rule()
-> anyhow::Result<()> {
    let api = api()?;
    for name in INTERNAL_NAMES {
        let a = api
            .call(
                "POST",
                "/api/intersections",
                Some(&crossing(name, 41.85, 12.6)),
                true,
            )
            .await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {a:?}");
        assert_eq!(a.body["field"], "id", "{name}: {a:?}");
        let message = a.body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("reserved") && message.contains("'_'"),
            "{name}: {message}"
        );
        assert_eq!(
            api.store.intersection(&internal(name)).await?,
            None,
            "{name}"
        );
        // Nor can a path name one: it cannot exist.
        let a = api.get(&format!("/api/intersections/{name}")).await?;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{name}: {a:?}");
    }
    assert!(api.store.intersections().await?.is_empty());
    Ok(())
}

fn internal(name: &str) -> traffic_core::IntersectionId {
    serde_json::from_value(serde_json::Value::String(name.into()))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
