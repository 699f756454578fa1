//! The router, request by request, on an embedded store in a temporary directory: unknown routes, wrong methods, and the dashboard's files.

mod support;

use axum::http::StatusCode;
use support::*;

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

#[tokio::test]
async fn every_module_of_the_script_is_served() -> anyhow::Result<()> {
    let api = api()?;
    // From app.js, every module it imports (`import ... from "./x.js"`), and theirs.
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec!["app.js".to_string()];
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let a = api.get(&format!("/assets/{file}")).await?;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert!(
            a.content_type.starts_with("text/javascript"),
            "{file}: {}",
            a.content_type
        );
        assert_eq!(a.cache_control.as_deref(), Some("no-cache"), "{file}");
        for line in a.text.lines().filter(|l| l.starts_with("import ")) {
            let name = line
                .rsplit_once("from \"./")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(name, _)| name.to_string());
            todo.push(
                name.ok_or_else(|| anyhow::anyhow!("{file}: an import not of ./x.js: {line}"))?,
            );
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut on_disk = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") {
            on_disk.insert(name);
        }
    }
    assert_eq!(
        seen, on_disk,
        "the modules app.js imports are the .js files of assets/"
    );
    // The OpenAPI document names every asset.
    let doc: serde_json::Value = serde_json::from_str(api::OPENAPI_JSON)?;
    let files = &doc["paths"]["/assets/{file}"]["get"]["parameters"][0]["schema"]["enum"];
    let documented: std::collections::BTreeSet<String> = files
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    let mut served = seen;
    served.extend(["app.css".to_string(), "favicon.svg".to_string()]);
    assert_eq!(documented, served, "the assets openapi.json lists");
    Ok(())
}
