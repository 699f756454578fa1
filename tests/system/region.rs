//! The AWS commands and no region: `traffic aws-setup` in an environment that names no region
//! (no `AWS_REGION`, `AWS_DEFAULT_REGION` or profile region, no instance metadata) stops with
//! one line saying how to set one, before it sends a single request; `simulate`, `aws-local`,
//! `aws-measure` and `redrive` stop the same way.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn aws_setup_without_a_region_says_how_to_set_one_and_creates_nothing() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    for f in [&config, &credentials] {
        std::fs::write(f, "").unwrap_or_else(|e| panic!("writing {}: {e}", f.display()));
    }
    // Stands in for the endpoint: every connection made to it is a request that was sent.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking: {e}"));
    let endpoint = format!(
        "http://{}",
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("address: {e}"))
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_traffic"))
        .args(["aws-setup", "--intersections", "2", "--prefix", "tregion"])
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        // On an EC2 host the instance metadata would name a region: not here.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running traffic: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut connections = 0;
    let status = loop {
        match listener.accept() {
            Ok(_) => connections += 1, // dropped at once: the request fails
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("traffic aws-setup still running after 60 s ({connections} connections)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("output: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "exited with success; stderr: {stderr}");
    assert_eq!(connections, 0, "requests were sent; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    for needle in ["AWS_REGION", "aws configure set region"] {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
}

#[test]
fn every_other_aws_command_without_a_region_stops_and_says_how_to_set_one() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    for f in [&config, &credentials] {
        std::fs::write(f, "").unwrap_or_else(|e| panic!("writing {}: {e}", f.display()));
    }
    for args in [
        &["simulate", "--stream", "tregion-readings", "--steps", "1"][..],
        &["aws-local", "--prefix", "tregion", "--steps", "1"],
        &["aws-measure", "--intersections", "2", "--minutes", "1"],
        &["redrive", "--queue", "http://127.0.0.1:9/tregion"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_traffic"))
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            // Nothing listens there: a request sent would fail with another message.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running traffic: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains("no AWS region is set") && stderr.contains("AWS_REGION"),
            "{args:?}: {stderr}"
        );
    }
}
