//! The router, request by request, on an embedded store in a temporary directory: the paged
//! lists (intersections, timings, a length's results) come a bounded page at a time, continue
//! through an opaque `cursor` (the previous page's `next`), and say whether more exist.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use support::*;
use traffic_ports::ResultStore;

/// The members of `body[list]` named `key`, as strings.
fn keys(body: &Value, list: &str, key: &str) -> Vec<String> {
    body[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[key].as_str().map(str::to_owned))
        .collect()
}

/// Follows `next` from `first` (at most 10 pages): the keys of each page.
async fn follow(api: &Api, first: &str, list: &str, key: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let base = first.split('?').next().unwrap_or(first).to_owned();
    let limit = first.split_once("limit=").map_or("", |(_, l)| l).to_owned();
    let mut path = first.to_owned();
    let mut pages = Vec::new();
    for _ in 0..10 {
        let a = api.get(&path).await?;
        assert_eq!(a.status, StatusCode::OK, "{path}: {a:?}");
        pages.push(keys(&a.body, list, key));
        let next = a.body["next"].as_str().map(str::to_owned);
        // The `Link` header names the same continuation as the body.
        match &next {
            Some(n) => {
                let link = a.link.clone().unwrap_or_default();
                assert!(link.contains(&format!("cursor={n}")), "{link} vs {n}");
            }
            None => assert_eq!(a.link, None, "{path}"),
        }
        let Some(next) = next else { break };
        path = format!("{base}?limit={limit}&cursor={next}");
    }
    Ok(pages)
}

#[tokio::test]
async fn the_city_lists_come_a_page_at_a_time_following_an_opaque_cursor() -> anyhow::Result<()> {
    let api = api()?;
    for i in [3, 1, 5, 2, 4] {
        api.create(&format!("I-000{i}"), 41.8, 12.6).await?;
    }
    for (base, list, key) in [
        ("/api/intersections", "intersections", "id"),
        ("/api/timings", "timings", "intersection_id"),
    ] {
        let pages = follow(&api, &format!("{base}?limit=2"), list, key).await?;
        assert_eq!(
            pages,
            [
                vec!["I-0001", "I-0002"],
                vec!["I-0003", "I-0004"],
                vec!["I-0005"]
            ],
            "{base}"
        );
        // Without a limit, one page of up to 100: the whole of this city, no `next`.
        let a = api.get(base).await?;
        assert_eq!(keys(&a.body, list, key).len(), 5, "{a:?}");
        assert_eq!(a.body["next"], Value::Null, "{a:?}");
        assert_eq!(a.link, None);
    }
    Ok(())
}

#[tokio::test]
async fn the_cursor_is_opaque_and_does_not_name_the_id_it_continues_after() -> anyhow::Result<()> {
    let api = api()?;
    for i in 1..=3 {
        api.create(&format!("I-000{i}"), 41.8, 12.6).await?;
    }
    let a = api.get("/api/intersections?limit=1").await?;
    let next = a.body["next"].as_str().unwrap_or_default().to_owned();
    assert!(!next.is_empty(), "{a:?}");
    assert!(!next.contains("I-0001"), "{next}");
    // Safe in a query string as it is.
    assert!(
        next.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{next}"
    );
    Ok(())
}

#[tokio::test]
async fn a_page_larger_than_the_routes_maximum_is_refused_naming_the_maximum() -> anyhow::Result<()>
{
    let api = api()?;
    for (path, max) in [
        ("/api/intersections?limit=501", "500"),
        ("/api/intersections?limit=5000", "500"),
        ("/api/timings?limit=501", "500"),
        ("/api/results/15m?limit=101", "100"),
        ("/api/results/15m?limit=1000", "100"),
    ] {
        let a = api.get(path).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {a:?}");
        assert_eq!(a.body["field"], "limit", "{path}");
        let msg = a.body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(max), "{path}: {msg}");
        assert!(
            msg.contains("cursor"),
            "{path}: says how to read more: {msg}"
        );
    }
    for path in [
        "/api/intersections?limit=500",
        "/api/timings?limit=500",
        "/api/results/15m?limit=100",
    ] {
        let a = api.get(path).await?;
        assert_eq!(a.status, StatusCode::OK, "{path}: {a:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_cursor_the_list_did_not_give_is_a_bad_request_naming_it() -> anyhow::Result<()> {
    let api = api()?;
    for i in 1..=3 {
        api.create(&format!("I-000{i}"), 41.8, 12.6).await?;
    }
    api.store
        .put_results(&[
            window_result("15m", T0, "I-0001", true),
            window_result("15m", T0 + 900_000, "I-0001", true),
            window_result("1h", T0, "I-0001", true),
            window_result("1h", T0 + 3_600_000, "I-0001", true),
        ])
        .await?;
    let a = api.get("/api/intersections?limit=1").await?;
    let of_intersections = a.body["next"].as_str().unwrap_or_default().to_owned();
    let a = api.get("/api/results/1h?limit=1").await?;
    let of_hours = a.body["next"].as_str().unwrap_or_default().to_owned();
    assert!(!of_hours.is_empty(), "{a:?}");
    for path in [
        "/api/intersections?cursor=I-0001".to_owned(),
        "/api/intersections?cursor=%25%25%25".to_owned(),
        "/api/intersections?cursor=".to_owned(),
        format!("/api/intersections?cursor={of_hours}"),
        format!("/api/timings?cursor={of_hours}"),
        format!("/api/results/15m?cursor={of_hours}"),
        format!("/api/results/15m?cursor={of_intersections}"),
        "/api/results/15m?cursor=bm90IGEgY3Vyc29y".to_owned(),
    ] {
        let a = api.get(&path).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {a:?}");
        assert_eq!(a.body["field"], "cursor", "{path}: {a:?}");
    }
    // The old `after` parameter is refused, naming what replaced it, rather than ignored.
    let a = api.get("/api/intersections?after=I-0001").await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.body["field"], "after");
    assert!(a.text.contains("cursor"), "{a:?}");
    Ok(())
}

#[tokio::test]
async fn a_lengths_windows_come_a_page_at_a_time_and_say_whether_more_exist() -> anyhow::Result<()>
{
    let api = api()?;
    let mut rs = Vec::new();
    for i in 0..5 {
        rs.push(window_result("15m", T0 + i * 900_000, "I-0001", i < 4));
    }
    rs.push(window_result("1h", T0, "I-0003", false));
    api.store.put_results(&rs).await?;

    let mut path = "/api/results/15m?limit=2".to_owned();
    let mut starts = Vec::new();
    let mut mores = Vec::new();
    for _ in 0..10 {
        let a = api.get(&path).await?;
        assert_eq!(a.status, StatusCode::OK, "{path}: {a:?}");
        starts.push(keys(&a.body, "windows", "start"));
        mores.push(a.body["more"].as_bool());
        let Some(next) = a.body["next"].as_str() else {
            break;
        };
        path = format!("/api/results/15m?limit=2&cursor={next}");
    }
    assert_eq!(
        starts,
        [
            vec!["2026-01-05T09:00:00Z", "2026-01-05T08:45:00Z"],
            vec!["2026-01-05T08:30:00Z", "2026-01-05T08:15:00Z"],
            vec!["2026-01-05T08:00:00Z"],
        ]
    );
    assert_eq!(mores, [Some(true), Some(true), Some(false)]);
    // A page that holds every window says so.
    let a = api.get("/api/results/1h").await?;
    assert_eq!(a.body["more"], false, "{a:?}");
    assert_eq!(a.body["next"], Value::Null, "{a:?}");
    Ok(())
}
