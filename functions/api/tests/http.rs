//! The router served as `traffic local` serves it: on a TCP listener on 127.0.0.1 with a port the
//! OS chooses, spoken to over plain HTTP/1.1.

mod support;

use anyhow::{Context, bail};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use traffic_core::lamps::Alarm;
use traffic_core::reading::LampColour;
use traffic_ports::{LampStore, Registry};

/// A served router; the server stops when this is dropped.
struct Served {
    addr: SocketAddr,
    api: Api,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> anyhow::Result<Served> {
    let api = api()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = api.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Served {
        addr,
        api,
        _stop: stop,
    })
}

/// An HTTP answer.
#[derive(Debug)]
struct Http {
    status: u16,
    headers: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), within 10 s.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<Http> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let body = body.unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("no HTTP answer within 10 s")??;
    parse(&raw)
}

fn parse(raw: &[u8]) -> anyhow::Result<Http> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        bail!("no end of headers in {text:?}");
    };
    let status: u16 = head.split(' ').nth(1).context("no status line")?.parse()?;
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(rest)?
    } else {
        rest.to_owned()
    };
    Ok(Http {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    // Each chunk shortens `s`; a chunk of size 0 ends the body.
    for _ in 0..s.len() + 1 {
        let (size, rest) = s.split_once("\r\n").context("bad chunk")?;
        let n = usize::from_str_radix(size.trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).context("short chunk")?);
        s = rest.get(n + 2..).context("short chunk")?;
    }
    bail!("too many chunks")
}

#[tokio::test]
async fn the_dashboard_and_the_api_answer_over_http_on_a_loopback_listener() -> anyhow::Result<()> {
    let srv = serve().await?;
    let addr = srv.addr;
    assert!(addr.ip().is_loopback());

    let page = request(addr, "GET", "/", None, None).await?;
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("content-type: text/html"), "{page:?}");
    assert!(
        page.headers
            .contains("content-security-policy: default-src 'self'")
    );
    let js = request(addr, "GET", "/assets/app.js", None, None).await?;
    assert_eq!(js.status, 200);

    let body = crossing("I-0100", 41.9, 12.49);
    let created = request(addr, "POST", "/api/intersections", Some(TOKEN), Some(&body)).await?;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(
        created
            .headers
            .contains("location: /api/intersections/i-0100")
    );

    let list = request(addr, "GET", "/api/intersections", None, None).await?;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["intersections"][0]["id"], "I-0100");

    let bad = request(
        addr,
        "PUT",
        "/api/intersections/I-0100/phases",
        Some(TOKEN),
        Some(r#"{"phases":[{"lights":[0,9],"green_s":30,"red_s":30}]}"#),
    )
    .await?;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["field"], "phases[0].lights[1]");

    srv.api
        .store
        .record_alarm(&Alarm {
            intersection_id: id("I-0100"),
            light: light(1),
            lamp: LampColour::Yellow,
            ts_ms: T0,
            position: None,
            silent: None,
        })
        .await?;
    let repaired = request(
        addr,
        "POST",
        "/api/intersections/I-0100/lights/1/repair",
        Some(TOKEN),
        None,
    )
    .await?;
    assert_eq!(repaired.status, 200, "{repaired:?}");
    let alarms = request(addr, "GET", "/api/alarms", None, None).await?;
    assert_eq!(alarms.json()["alarms"][0]["intersection_id"], "I-0100");

    let stats = request(addr, "GET", "/api/stats?minutes=5", None, None).await?;
    assert_eq!(stats.status, 200);
    assert!(stats.json()["series"].is_array());

    let deleted = request(
        addr,
        "DELETE",
        "/api/intersections/I-0100",
        Some(TOKEN),
        None,
    )
    .await?;
    assert_eq!(deleted.status, 204);
    assert!(srv.api.store.intersections().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_write_over_http_without_the_token_gets_401_and_changes_nothing() -> anyhow::Result<()> {
    let srv = serve().await?;
    let body = crossing("I-0100", 41.9, 12.49);
    for token in [None, Some("wrong-token")] {
        let a = request(srv.addr, "POST", "/api/intersections", token, Some(&body)).await?;
        assert_eq!(a.status, 401, "{a:?}");
        assert!(a.headers.contains("www-authenticate: bearer"), "{a:?}");
        assert_eq!(a.json()["field"], "Authorization");
    }
    assert!(srv.api.store.intersections().await?.is_empty());
    Ok(())
}
