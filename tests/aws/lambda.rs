//! The real Lambda binaries: `ingest` and `merge` built with `cargo lambda build`, run behind
//! the Lambda runtime API that `cargo lambda watch` serves, invoked with real event payloads
//! (`tests/fixtures/kinesis-event.json`, `tests/fixtures/scheduled-event.json`), on
//! `TRAFFIC_STORE=dynamodb` against the emulator. This proves the `lambda_runtime` wiring and
//! the configuration from the environment, not only the handler functions.

use crate::support::aws_env;
use anyhow::{Context, ensure};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use traffic_app::aws::setup;
use traffic_core::{City, EngineConfig};
use traffic_ports::{ResultStore, StateStore};

/// Children killed when the test ends, however it ends.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test was built in (`<target>/debug/deps/aws_lambda-…`).
fn target_dir() -> anyhow::Result<PathBuf> {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(t));
    }
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("no target directory above the test binary")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Invokes the function behind `port` with `payload` and returns its JSON answer.
fn invoke(port: u16, payload: &Path) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "120", "-X", "POST"])
        .arg("--data-binary")
        .arg(format!("@{}", payload.display()))
        .arg(format!(
            "http://127.0.0.1:{port}/2015-03-31/functions/_/invocations"
        ))
        .output()
        .context("running curl")?;
    ensure!(
        out.status.success(),
        "invocation failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("answer: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_lambda_binaries_answer_real_events_through_the_runtime_api() -> anyhow::Result<()> {
    let Some(env) = aws_env("lambda").await else {
        return Ok(());
    };
    let has_cargo_lambda = Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_cargo_lambda {
        ensure!(
            std::env::var("TRAFFIC_REQUIRE_AWS").is_err(),
            "cargo-lambda is not on PATH (./scripts/test.sh installs it into .venv)"
        );
        println!("lambda: skipped (no cargo-lambda on PATH)");
        return Ok(());
    }

    // Build the binaries as they are deployed (plain cargo for the host's x86_64 Linux: the
    // zig cross-compiler is slow on two cores and adds nothing to what this test proves).
    let target = target_dir()?;
    let started = Instant::now();
    let build = Command::new("cargo")
        .args([
            "lambda",
            "build",
            "-p",
            "ingest",
            "-p",
            "merge",
            "--compiler",
            "cargo",
        ])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running cargo lambda build")?;
    ensure!(build.success(), "cargo lambda build failed");
    let bootstrap = |f: &str| target.join("lambda").join(f).join("bootstrap");
    for f in ["ingest", "merge"] {
        ensure!(bootstrap(f).exists(), "no {}", bootstrap(f).display());
    }
    println!(
        "cargo lambda build: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // The resources and the sample city the fixtures refer to.
    let cfg = EngineConfig::default();
    let city = City::parse(&std::fs::read_to_string(root().join("samples/city.json"))?)?;
    let resources = env.resources(1);
    let (created, store) = setup(&env.clients, &resources, &city, &cfg).await?;
    let names = &created.names;

    // One runtime API per function (`cargo lambda watch --only-lambda-apis`), and the
    // binary itself polling it, with the environment a deployed function gets.
    let mut children = Kill(Vec::new());
    let mut ports = Vec::new();
    for f in ["ingest", "merge"] {
        let port = free_port()?;
        let watch = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting cargo lambda watch")?;
        children.0.push(watch);
        ensure!(
            wait_for_port(port, Duration::from_secs(60)).await,
            "cargo lambda watch did not listen on {port}"
        );
        let mut cmd = Command::new(bootstrap(f));
        cmd.env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("TRAFFIC_STORE", "dynamodb")
        .env("TRAFFIC_PROVISIONAL", "all")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in [
            ("STATE_TABLE", &names.state_table),
            ("REGISTRY_TABLE", &names.registry_table),
            ("RESULTS_TABLE", &names.results_table),
        ] {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        children
            .0
            .push(cmd.spawn().context("starting the function")?);
        ports.push(port);
    }

    let fixtures = root().join("tests/fixtures");
    let answer = tokio::task::spawn_blocking({
        let file = fixtures.join("kinesis-event.json");
        let port = ports[0];
        move || invoke(port, &file)
    })
    .await??;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let metas = store.shard_metas().await?;
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].shard_id, "shardId-000000000006");
    assert_eq!(metas[0].counters.accepted, 3);
    assert_eq!(metas[0].counters.rejected, 1);
    assert_eq!(metas[0].counters.duplicates, 1);

    let answer = tokio::task::spawn_blocking({
        let file = fixtures.join("scheduled-event.json");
        let port = ports[1];
        move || invoke(port, &file)
    })
    .await??;
    assert_eq!(answer["provisional"], 3, "{answer}");
    assert_eq!(answer["closed"], 0, "{answer}");
    let results = store.results().await?;
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| !r.closed));
    let fifteen = results
        .iter()
        .find(|r| r.length() == "15m")
        .context("no 15m result")?;
    let top: Vec<_> = fifteen
        .top
        .iter()
        .map(|e| (e.intersection_id.as_str(), e.mean_speed_kmh))
        .collect();
    assert_eq!(top, vec![("I-0001", 46.1), ("I-0002", 30.0)]);
    println!("ingest and merge binaries answered through the runtime API on DynamoDB");
    drop(children);
    env.cleanup(&resources, Some(&created.topic_arn), &[]).await;
    Ok(())
}
