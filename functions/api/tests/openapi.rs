//! The OpenAPI document against the router's real routes.

mod support;

use api::{NO_ROUTE, OPENAPI_JSON, ROUTES, is_mutating};
use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use support::*;

const METHODS: [&str; 7] = ["get", "put", "post", "patch", "delete", "head", "options"];

fn document() -> anyhow::Result<Value> {
    Ok(serde_json::from_str(OPENAPI_JSON)?)
}

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a templated one.
fn concrete(path: &str) -> String {
    path.replace("{id}", "I-0001")
        .replace("{light}", "0")
        .replace("{length}", "15m")
        .replace("{file}", "app.js")
}

#[test]
fn every_route_of_the_router_is_in_the_openapi_document_and_back() -> anyhow::Result<()> {
    let doc = document()?;
    let in_doc = documented(&doc);
    let in_router: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = in_router.difference(&in_doc).collect();
    let unrouted: Vec<_> = in_doc.difference(&in_router).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    assert_eq!(in_router.len(), ROUTES.len(), "a route is declared twice");
    Ok(())
}

#[test]
fn writes_are_documented_as_needing_the_token_and_reads_as_public() -> anyhow::Result<()> {
    let doc = document()?;
    let mut ids = BTreeSet::new();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.clone()), "operationId {id} twice");
        let m: Method = method.parse()?;
        if is_mutating(&m) {
            assert_eq!(
                op["security"][0]["bearerAuth"],
                serde_json::json!([]),
                "{method} {path}"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        } else {
            assert!(
                op.get("security").is_none(),
                "{method} {path} is a public read"
            );
        }
    }
    Ok(())
}

#[test]
fn every_reference_in_the_document_resolves() -> anyhow::Result<()> {
    fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = r
                        .strip_prefix('#')
                        .and_then(|p| doc.pointer(p))
                        .filter(|t| !t.is_null());
                    if target.is_none() {
                        bad.push(r.clone());
                    }
                }
                m.values().for_each(|x| walk(x, doc, bad));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
            _ => {}
        }
    }
    let doc = document()?;
    let mut bad = Vec::new();
    walk(&doc, &doc, &mut bad);
    assert!(bad.is_empty(), "dangling references: {bad:?}");
    assert_eq!(doc["openapi"], "3.0.3");
    Ok(())
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler_of_the_router() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let doc = document()?;
    for (method, path) in documented(&doc) {
        let a = api
            .call(&method, &concrete(&path), Some("{}"), true)
            .await?;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(a.status == StatusCode::NOT_FOUND && a.body["error"] == NO_ROUTE),
            "{method} {path} is documented but no route answers it"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_is_served_as_json() -> anyhow::Result<()> {
    let api = api()?;
    let a = api.get("/api/openapi.json").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.content_type.starts_with("application/json"));
    assert_eq!(a.body, document()?);
    Ok(())
}
