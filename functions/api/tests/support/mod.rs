//! What the API tests share: a router on an embedded store in a temporary directory, a way to
//! call it, and sample data.
#![allow(dead_code)]

use anyhow::Context;
use api::{ApiState, router};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tower::ServiceExt;
use traffic_core::EngineConfig;
use traffic_core::lamps::Alarm;
use traffic_core::query::{MedianEntry, WindowResult};
use traffic_core::ranking::RankEntry;
use traffic_core::reading::LampColour;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_core::{IntersectionId, LightIndex};
use traffic_embedded::EmbeddedStore;

/// The write token the tests configure.
pub const TOKEN: &str = "test-token-7f3a";

/// A router and the store under it (kept alive with its directory).
pub struct Api {
    pub router: Router,
    pub store: EmbeddedStore,
    pub _dir: tempfile::TempDir,
}

/// A router over a fresh embedded store whose merge outputs are archived under the store's
/// directory (`archive/`, as `traffic local` keeps them), with the test token.
pub fn api_with_archive() -> anyhow::Result<(Api, traffic_tables::dir::DirArchive)> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("api.redb"))?;
    let archive = traffic_tables::dir::DirArchive::new(dir.path().join("archive"));
    let state = ApiState {
        ports: store
            .ports()
            .with_archive(std::sync::Arc::new(archive.clone())),
        cfg: EngineConfig::default(),
        token: Some(TOKEN.to_owned()),
        alarms: Default::default(),
    };
    let api = Api {
        router: router(state),
        store,
        _dir: dir,
    };
    Ok((api, archive))
}

/// A router over a fresh embedded store, with write token `token`.
pub fn api_with_token(token: Option<&str>) -> anyhow::Result<Api> {
    api_with(EngineConfig::default(), token)
}

/// A router over a fresh embedded store, with engine configuration `cfg` and write token
/// `token`.
pub fn api_with(cfg: EngineConfig, token: Option<&str>) -> anyhow::Result<Api> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("api.redb"))?;
    let state = ApiState {
        ports: store.ports(),
        cfg,
        token: token.map(str::to_owned),
        alarms: Default::default(),
    };
    Ok(Api {
        router: router(state),
        store,
        _dir: dir,
    })
}

/// A router over a fresh embedded store, with the write token [`TOKEN`].
pub fn api() -> anyhow::Result<Api> {
    api_with_token(Some(TOKEN))
}

/// An answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub content_type: String,
    /// The `Link` header, if any.
    pub link: Option<String>,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
}

impl Api {
    /// Sends a request (with the token when `auth`) and reads the answer, within 10 s.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: bool,
    ) -> anyhow::Result<Answer> {
        self.call_with(method, path, body, auth, &[]).await
    }

    /// As [`Api::call`], with extra request headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: bool,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if auth {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))?;
        send(&self.router, req).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call("GET", path, None, false).await
    }

    /// Creates the sample intersection `id` through the API.
    /// Retimes `x` as the merge does: from its current version, noting window `from`.
    pub async fn retime(
        &self,
        x: &str,
        phases: Vec<traffic_core::city::Phase>,
        from: &str,
    ) -> anyhow::Result<()> {
        self.retime_planned(x, phases, None, from).await
    }

    /// As [`Api::retime`], storing `plan` with the timings.
    pub async fn retime_planned(
        &self,
        x: &str,
        phases: Vec<traffic_core::city::Phase>,
        plan: Option<traffic_core::plan::Plan>,
        from: &str,
    ) -> anyhow::Result<()> {
        use traffic_ports::Registry;
        let expected_version = self
            .store
            .intersection_versioned(&id(x))
            .await?
            .map_or_else(|| traffic_ports::Version::new(""), |(_, v)| v);
        let skipped = self
            .store
            .set_timings(
                &[traffic_ports::TimingUpdate {
                    id: id(x),
                    plan,
                    phases,
                    expected_version,
                }],
                &from.parse()?,
            )
            .await?;
        anyhow::ensure!(skipped.is_empty(), "retiming of {x} skipped");
        Ok(())
    }

    pub async fn create(&self, id: &str, lat: f64, lon: f64) -> anyhow::Result<()> {
        let a = self
            .call(
                "POST",
                "/api/intersections",
                Some(&crossing(id, lat, lon)),
                true,
            )
            .await?;
        anyhow::ensure!(a.status == StatusCode::CREATED, "{a:?}");
        Ok(())
    }
}

/// Sends a request to a router and reads the answer, within 10 s.
pub async fn send(router: &Router, req: Request<Body>) -> anyhow::Result<Answer> {
    let resp = tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(req))
        .await
        .context("the router did not answer within 10 s")??;
    answer(resp).await
}

/// Reads a response: status, content type, `Link` header and JSON body.
pub async fn answer(resp: axum::response::Response) -> anyhow::Result<Answer> {
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let link = header("link");
    let etag = header("etag");
    let cache_control = header("cache-control");
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        text,
        content_type,
        link,
        etag,
        cache_control,
    })
}

/// A four-light crossing with two phases, as the city file writes it, plus extra fields.
pub fn crossing(id: &str, lat: f64, lon: f64) -> String {
    format!(
        r#"{{"id":"{id}","name":"Via Tuscolana","lat":{lat},"lon":{lon},
        "lights":[{{"light":0,"saturation_veh_h":1800,"position":"N"}},
                  {{"light":1,"saturation_veh_h":1700,"position":"E"}},
                  {{"light":2,"saturation_veh_h":1800,"position":"S"}},
                  {{"light":3,"saturation_veh_h":1700,"position":"W"}}],
        "phases":[{{"lights":[0,2],"green_s":30,"red_s":34}},{{"lights":[1,3],"green_s":30,"red_s":34}}]}}"#
    )
}

pub fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

pub fn light(i: i64) -> LightIndex {
    LightIndex::new(i).unwrap_or_else(|e| panic!("{e}"))
}

/// A window result of `length` starting at `start_ms`, with `fastest` first in the ranking.
pub fn window_result(length: &str, start_ms: i64, fastest: &str, closed: bool) -> WindowResult {
    let len: WindowLength = length.parse().unwrap_or_else(|e| panic!("{e}"));
    let key = WindowKey {
        length: len,
        start_ms,
    };
    WindowResult {
        window: key,
        closed,
        readings: 400,
        top: vec![
            RankEntry {
                intersection_id: id(fastest),
                mean_speed_kmh: 52.5,
            },
            RankEntry {
                intersection_id: id("I-0002"),
                mean_speed_kmh: 31.0,
            },
        ],
        global_median_vehicles: 7.0,
        above_median: vec![MedianEntry {
            intersection_id: id("I-0002"),
            median_vehicles: 11.0,
        }],
    }
}

/// 2026-01-05T08:00:00Z, epoch ms.
pub const T0: i64 = 1_767_600_000_000;

/// An alarm of `x`'s light `l`, lamp `lamp`, at `ts_ms`.
pub fn alarm(x: &str, l: i64, lamp: LampColour, ts_ms: i64) -> Alarm {
    Alarm {
        intersection_id: id(x),
        light: light(l),
        lamp,
        ts_ms,
        position: None,
        silent: None,
    }
}
