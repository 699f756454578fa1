//! What the AWS integration tests (`tests/aws/*.rs`) share: the emulator (or AWS) from the
//! environment, uniquely named resources per test, reading alarms back through SQS, and a
//! store wrapper that fails on purpose.
//!
//! Every test of `tests/aws/*.rs` is `#[ignore = "needs AWS_ENDPOINT_URL ..."]`, so a plain
//! `cargo test` lists it as ignored, with the reason, rather than passing without doing
//! anything; `scripts/test.sh` starts moto, sets `AWS_ENDPOINT_URL` and runs them all
//! (`cargo nextest run --run-ignored all`). Run on purpose without an endpoint, or with one
//! that does not answer, they fail and say why.
#![allow(dead_code)]

use anyhow::Context;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use traffic_aws::setup::{Queue, Resources, ensure_table};
use traffic_aws::{AwsClients, AwsNames, DynamoStore, StoreOptions};
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_ports::{PortError, PortResult, StateStore};

/// The AWS endpoint of a test, and a prefix for its resources' names.
pub struct AwsEnv {
    /// Clients on the endpoint.
    pub clients: AwsClients,
    /// Unique per test run: `t<name>-<pid>-<nanos>`.
    pub prefix: String,
}

/// The endpoint from the environment. Panics, saying why, when none is set or it does not
/// answer: a test that reaches here was asked to run against AWS. (Always `Some`: the `Option`
/// keeps the tests' `let Some(env) = aws_env(..) else` as it was.)
pub async fn aws_env(test: &str) -> Option<AwsEnv> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty());
    assert!(
        endpoint.is_some(),
        "{test}: needs AWS_ENDPOINT_URL (an emulator: ./scripts/test.sh starts moto and sets it)"
    );
    if let Some(e) = &endpoint {
        let addr = e
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let reachable = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(addr.clone()),
        )
        .await;
        assert!(
            matches!(reachable, Ok(Ok(_))),
            "{test}: the AWS endpoint {e} does not answer ({reachable:?})"
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let short: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    Some(AwsEnv {
        clients: AwsClients::from_env()
            .await
            .unwrap_or_else(|e| panic!("{test}: {e}")),
        prefix: format!("t{short}-{}-{nanos}", std::process::id()),
    })
}

impl AwsEnv {
    /// The names of this test's resources.
    pub fn resources(&self, shards: i32) -> Resources {
        Resources::with_prefix(&self.prefix, shards)
    }

    /// A DynamoDB store on this test's three tables, created first, with their names (for a
    /// second store on the same tables).
    pub async fn fresh_store(&self) -> anyhow::Result<(Resources, AwsNames, DynamoStore)> {
        let r = self.resources(1);
        for t in [&r.state_table, &r.registry_table, &r.results_table] {
            ensure_table(&self.clients, t).await?;
        }
        let names = AwsNames {
            state_table: Some(r.state_table.clone()),
            registry_table: Some(r.registry_table.clone()),
            results_table: Some(r.results_table.clone()),
            ..AwsNames::default()
        };
        let store = DynamoStore::new(
            self.clients.dynamodb.clone(),
            names.clone(),
            StoreOptions::default(),
        );
        Ok((r, names, store))
    }

    /// Deletes the resources (best effort: an emulator is thrown away anyway).
    pub async fn cleanup(&self, r: &Resources, topic_arn: Option<&str>, queues: &[&Queue]) {
        use traffic_aws::setup::{
            delete_event_bus, delete_queue, delete_stream, delete_table, delete_topic,
        };
        let c = &self.clients;
        let _ = delete_stream(c, &r.stream).await;
        let _ = delete_event_bus(c, &r.event_bus).await;
        for t in [&r.state_table, &r.registry_table, &r.results_table] {
            let _ = delete_table(c, t).await;
        }
        if let Some(arn) = topic_arn {
            let _ = delete_topic(c, arn).await;
        }
        for q in queues {
            let _ = delete_queue(c, &q.url).await;
        }
    }
}

/// A message that SNS delivered to an SQS queue.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The subject.
    pub subject: Option<String>,
    /// The message.
    pub message: String,
    /// The message attributes: name → value.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// When it was received.
    pub received_at: Instant,
}

/// Receives what SNS delivered to `queue` until `stop` says enough or `timeout` passes.
pub async fn receive_alarms(
    c: &AwsClients,
    queue: &Queue,
    timeout: Duration,
    stop: impl Fn(&[Delivered]) -> bool,
) -> anyhow::Result<Vec<Delivered>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !stop(&out) {
        let r = c
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .context("receiving from SQS")?;
        for m in r.messages() {
            let body: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or("{}")).context("SNS envelope")?;
            let attributes = body["MessageAttributes"]
                .as_object()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v["Value"].as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Delivered {
                subject: body["Subject"].as_str().map(str::to_owned),
                message: body["Message"].as_str().unwrap_or("").to_owned(),
                attributes,
                received_at: Instant::now(),
            });
            if let Some(h) = m.receipt_handle() {
                c.sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .context("deleting from SQS")?;
            }
        }
    }
    Ok(out)
}

/// A state store whose commits fail (as a throttled or unreachable DynamoDB makes them) while
/// `fail_commits` is above zero, or, with `fail_after_write`, succeed and then report a
/// failure (a response lost on the way back).
pub struct Faulty<S> {
    pub inner: S,
    pub fail_commits: AtomicUsize,
    pub fail_after_write: AtomicUsize,
    pub commits: AtomicUsize,
}

impl<S> Faulty<S> {
    pub fn new(inner: S) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_commits: AtomicUsize::new(0),
            fail_after_write: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
        })
    }
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl<S: StateStore> StateStore for Faulty<S> {
    async fn load_shard(
        &self,
        shard_id: &traffic_core::ShardId,
    ) -> PortResult<(Option<ShardMeta>, MergeMarks)> {
        self.inner.load_shard(shard_id).await
    }
    async fn commit(&self, commit: &Commit, now_ms: i64) -> PortResult<()> {
        if take(&self.fail_commits) {
            return Err(PortError::Unavailable {
                context: "committing shard state".into(),
                source: "injected: ProvisionedThroughputExceededException".into(),
            });
        }
        self.inner.commit(commit, now_ms).await?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        if take(&self.fail_after_write) {
            return Err(PortError::Unavailable {
                context: "committing shard state".into(),
                source: "injected: connection reset after the write".into(),
            });
        }
        Ok(())
    }
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        self.inner.shard_metas().await
    }
    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>> {
        self.inner.delta_panes(from_ms).await
    }
    async fn deltas(&self, keys: &[DeltaKey], consistent: bool) -> PortResult<Vec<Delta>> {
        self.inner.deltas(keys, consistent).await
    }
    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>> {
        self.inner.rollups(length, from_ms, to_ms).await
    }
    async fn put_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()> {
        self.inner.put_rollups(rollups, now_ms).await
    }
    async fn merge_state(&self) -> PortResult<MergeState> {
        self.inner.merge_state().await
    }
    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()> {
        self.inner.advance_closed_mark(closed_ms).await
    }
    async fn put_merge_progress(&self, state: &MergeState) -> PortResult<()> {
        self.inner.put_merge_progress(state).await
    }
    async fn commit_redrive(
        &self,
        commit: &Commit,
        mark: &RedriveMark,
        now_ms: i64,
    ) -> PortResult<()> {
        self.inner.commit_redrive(commit, mark, now_ms).await
    }
    async fn redrive_mark(
        &self,
        shard_id: &traffic_core::ShardId,
        id: u64,
    ) -> PortResult<Option<RedriveMark>> {
        self.inner.redrive_mark(shard_id, id).await
    }
    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool> {
        self.inner.take_lease(holder, now_ms, until_ms).await
    }
    async fn release_lease(&self, holder: &str) -> PortResult<()> {
        self.inner.release_lease(holder).await
    }
    async fn forget(&self, panes_before_ms: i64, rollups_through_ms: i64) -> PortResult<()> {
        self.inner.forget(panes_before_ms, rollups_through_ms).await
    }
}

/// Per 1,000 readings.
pub fn per_thousand(n: u64, readings: u64) -> f64 {
    if readings == 0 {
        0.0
    } else {
        n as f64 * 1000.0 / readings as f64
    }
}

/// Asserts two JSON documents are equal, numbers to 1e-12 relative.
pub fn assert_same(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                "{at}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_same(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}: fields"
            );
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// A TCP proxy in front of the AWS endpoint that can drop connections (as a network fault
/// does) or answer them with DynamoDB's throttling error, before forwarding the rest.
pub struct Proxy {
    /// Where it listens (127.0.0.1).
    pub addr: std::net::SocketAddr,
    /// Connections still to be closed at once.
    pub drop_next: Arc<AtomicUsize>,
    /// Connections still to be answered with `ThrottlingException`.
    pub throttle_next: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let drop_next = Arc::new(AtomicUsize::new(0));
        let throttle_next = Arc::new(AtomicUsize::new(0));
        let (d, t) = (drop_next.clone(), throttle_next.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if take(&d) {
                    drop(client);
                    continue;
                }
                let throttle = take(&t);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if throttle {
                        let _ = throttle_one(&mut client).await;
                    } else if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            drop_next,
            throttle_next,
            task,
        })
    }

    /// Clients whose endpoint is this proxy.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::with_endpoint(&format!("http://{}", self.addr))
            .await
            .unwrap_or_else(|e| panic!("clients on the proxy: {e}"))
    }
}

/// Reads one HTTP request and answers it with DynamoDB's throttling error.
async fn throttle_one(s: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: proxy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}

/// The independent count of DynamoDB's capacity units: `tests/capacity/ddb_meter.py`, a
/// proxy in front of the emulator that sizes every request by DynamoDB's documented rules
/// (started with the `python3` on `PATH`; it needs nothing but the standard library). Stopped
/// when dropped.
pub struct Meter {
    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Meter {
    /// A meter in front of `upstream`; waits (at most 20 s) until it listens.
    pub fn start(upstream: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port_file = dir.path().join("port");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/capacity/ddb_meter.py");
        let python = "python3";
        let child = std::process::Command::new(python)
            .arg(script)
            .arg("--upstream")
            .arg(upstream)
            .arg("--port-file")
            .arg(&port_file)
            .spawn()
            .with_context(|| format!("starting {python} {script}"))?;
        let mut meter = Self {
            endpoint: String::new(),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                meter.endpoint = format!("http://127.0.0.1:{}", port.trim());
                return Ok(meter);
            }
            if let Some(status) = meter.child.try_wait()? {
                anyhow::bail!("the meter exited before listening: {status}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the meter did not listen in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it counted: `{app: {table: {operation: {"read", "write", "requests"}}}}`.
    pub fn counts(&self) -> anyhow::Result<serde_json::Value> {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET /__meter HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .context("no body in the meter's answer")?;
        Ok(serde_json::from_str(body)?)
    }

    /// (write, read) units counted for the application `app`, by operation (all tables).
    pub fn units_by_operation(
        &self,
        app: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
        let counts = self.counts()?;
        let mut out = std::collections::BTreeMap::new();
        if let Some(tables) = counts.get(app).and_then(|t| t.as_object()) {
            for ops in tables.values() {
                for (op, u) in ops.as_object().into_iter().flatten() {
                    let e: &mut (f64, f64) = out.entry(op.clone()).or_default();
                    e.0 += u["write"].as_f64().unwrap_or(0.0);
                    e.1 += u["read"].as_f64().unwrap_or(0.0);
                }
            }
        }
        Ok(out)
    }

    /// (table, write, read) units counted for one operation of the application `app`.
    pub fn units_of(&self, app: &str, operation: &str) -> anyhow::Result<Vec<(String, f64, f64)>> {
        let counts = self.counts()?;
        let mut out = Vec::new();
        for (table, ops) in counts
            .get(app)
            .and_then(|t| t.as_object())
            .into_iter()
            .flatten()
        {
            if let Some(u) = ops.get(operation) {
                out.push((
                    table.clone(),
                    u["write"].as_f64().unwrap_or(0.0),
                    u["read"].as_f64().unwrap_or(0.0),
                ));
            }
        }
        Ok(out)
    }
}
