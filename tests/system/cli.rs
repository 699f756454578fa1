//! The command line as a user meets it, through the built binary: a bad value is refused by
//! an error that names the flag given (or the variable, when the value came from the
//! environment) before the banner and before anything is created; `--help` shows the allowed
//! values and formats; one flag has one type in every subcommand; log lines carry no colour
//! codes off a terminal; `--status json` prints one JSON object a tick on stdout.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The variables the command's options and logging read: removed, so that the machine's own
/// environment does not change what a test sees.
const VARIABLES: &[&str] = &[
    "TRAFFIC_WINDOWS",
    "TRAFFIC_ALLOWED_LATENESS",
    "TRAFFIC_DATA_DIR",
    "TRAFFIC_LISTEN",
    "TRAFFIC_API_TOKEN",
    "TRAFFIC_MERGE_EVERY",
    "TRAFFIC_LOG_FORMAT",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "NO_COLOR",
];

/// `traffic ARGS` in `dir`, with a clean environment for its own variables.
fn traffic(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_traffic"));
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in VARIABLES {
        c.env_remove(v);
    }
    c
}

fn run(mut c: Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("running traffic: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// `traffic local ARGS` with a data directory `data` in a fresh directory: refused with a
/// usage error (status 2) naming `named`, no banner, no data directory.
fn refused_before_anything(args: &[&str], env: &[(&str, &str)], named: &str, not: &str) {
    let dir = tempdir();
    let mut c = traffic(dir.path(), &["local", "--data-dir", "data", "--no-api"]);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
    assert!(
        err.contains(named),
        "{args:?} {env:?}: names {named}: {err}"
    );
    assert!(
        not.is_empty() || !err.contains(not),
        "{args:?} {env:?}: does not name {not}: {err}"
    );
    assert!(!err.contains("traffic local:"), "no banner: {err}");
    assert!(text(&out.stdout).is_empty(), "{args:?}: nothing on stdout");
    assert!(
        !dir.path().join("data").exists(),
        "{args:?} {env:?}: the data directory was created"
    );
}

#[test]
fn a_bad_window_list_names_the_flag_and_creates_nothing() {
    refused_before_anything(
        &["--windows", "7m,15m"],
        &[],
        "'--windows <LENGTHS>'",
        "TRAFFIC_WINDOWS",
    );
    refused_before_anything(
        &["--windows", "7m,15m"],
        &[],
        "15m is not a multiple of the shortest window 7m",
        "",
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    refused_before_anything(&[], &[("TRAFFIC_WINDOWS", "7m,15m")], "TRAFFIC_WINDOWS", "");
    refused_before_anything(
        &[],
        &[("TRAFFIC_ALLOWED_LATENESS", "soon")],
        "TRAFFIC_ALLOWED_LATENESS",
        "",
    );
    refused_before_anything(&[], &[("TRAFFIC_LISTEN", "nowhere")], "TRAFFIC_LISTEN", "");
    // The flag wins over the variable: a good flag with a bad variable runs (it is not
    // checked), a bad flag with a good variable names the flag.
    refused_before_anything(
        &["--windows", "7m,15m"],
        &[("TRAFFIC_WINDOWS", "15m,1h")],
        "'--windows <LENGTHS>'",
        "TRAFFIC_WINDOWS",
    );
    let dir = tempdir();
    let mut c = traffic(
        dir.path(),
        &["sumo", "--city", "missing.json", "--merge-every", "1m"],
    );
    c.env("TRAFFIC_MERGE_EVERY", "often");
    let out = run(c);
    assert!(
        !text(&out.stderr).contains("TRAFFIC_MERGE_EVERY"),
        "the flag was given: {}",
        text(&out.stderr)
    );
}

#[test]
fn every_bad_value_is_refused_by_its_flag_before_the_banner_and_the_data_directory() {
    for (args, named) in [
        (&["--speedup", "0"][..], "--speedup"),
        (&["--speedup", "fast"], "--speedup"),
        (&["--shards", "0"], "--shards"),
        (&["--shards", "65"], "--shards"),
        (&["--merge-every", "90s"], "--merge-every"),
        (&["--merge-every", "3"], "3 periods is 3m"),
        (&["--merge-every", "0s"], "--merge-every"),
        (&["--duration", "5x"], "--duration"),
        (&["--duration", "0m"], "--duration"),
        (&["--allowed-lateness", "later"], "--allowed-lateness"),
        (&["--start", "yesterday"], "--start"),
        (&["--control", "smart"], "--control"),
        (&["--provisional", "some"], "--provisional"),
        (&["--status", "fancy"], "--status"),
        (&["--failure-probability", "2"], "--failure-probability"),
        (&["--intersections", "0"], "--intersections"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--listen", "nowhere"], "--listen"),
    ] {
        refused_before_anything(args, &[], named, "TRAFFIC_");
    }
}

#[test]
fn help_shows_the_allowed_values_and_formats() {
    let dir = tempdir();
    let out = run(traffic(dir.path(), &["local", "--help"]));
    let help = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for shown in [
        "--speedup <X|max>",
        "--merge-every <DURATION>",
        "--duration <DURATION>",
        "--windows <LENGTHS>",
        "--start <INSTANT>",
        "--shards <N>",
        "1 to 64",
        "- webster",
        "- fixed",
        "- shortest",
        "- human",
        "- json",
        "- none",
        "[env: TRAFFIC_WINDOWS=]",
    ] {
        assert!(
            help.contains(shown),
            "`traffic local --help` shows {shown:?}"
        );
    }
}

/// How `traffic SUBCOMMAND --help` shows `flag`: `--flag <VALUE>`.
fn usage_of(subcommand: &str, flag: &str) -> String {
    let dir = tempdir();
    let help = text(&run(traffic(dir.path(), &[subcommand, "--help"])).stdout);
    help.lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{flag} ")))
        .unwrap_or_else(|| panic!("`traffic {subcommand} --help` has no {flag}: {help}"))
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn one_flag_has_one_type_in_every_subcommand() {
    for sub in ["local", "sumo", "aws-local"] {
        assert_eq!(usage_of(sub, "--merge-every"), "--merge-every <DURATION>");
    }
    for sub in ["local", "simulate", "aws-local"] {
        assert_eq!(usage_of(sub, "--speedup"), "--speedup <X|max>");
    }
    for sub in [
        "local",
        "replay",
        "sumo",
        "aws-setup",
        "aws-local",
        "aws-measure",
    ] {
        assert_eq!(usage_of(sub, "--shards"), "--shards <N>");
    }
    // A bare number is not a duration anywhere (it was a count of periods in `local`).
    let dir = tempdir();
    for args in [
        &["sumo", "--city", "c.json", "--merge-every", "3"][..],
        &["aws-local", "--merge-every", "3"],
        &["simulate", "--stream", "s", "--speedup", "0"],
        &["aws-measure", "--shards", "0"],
        &["aws-measure", "--stream", "disk"],
        &["redrive", "--queue", "q", "--consumer", "merge"],
    ] {
        let out = run(traffic(dir.path(), args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("'{}", args[args.len() - 2])),
            "{args:?}: {err}"
        );
    }
}

/// A short run at full speed: 1 h of 6 intersections.
fn short_run(dir: &Path, extra: &[&str]) -> Output {
    let mut c = traffic(
        dir,
        &[
            "local",
            "--data-dir",
            "data",
            "--intersections",
            "6",
            "--shards",
            "2",
            "--duration",
            "1h",
            "--speedup",
            "max",
            "--no-api",
        ],
    );
    c.args(extra);
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

#[test]
fn log_lines_carry_no_colour_codes_off_a_terminal() {
    let dir = tempdir();
    let out = short_run(dir.path(), &["--status", "none", "--log", "-"]);
    let err = text(&out.stderr);
    assert!(err.contains("INFO"), "the log went to stderr: {err}");
    assert!(!err.contains("\x1b["), "no ANSI codes on a pipe: {err:?}");
    // The log file never has them either.
    let dir = tempdir();
    short_run(dir.path(), &["--status", "lines"]);
    let log = std::fs::read_to_string(dir.path().join("data/traffic.log"))
        .unwrap_or_else(|e| panic!("the log file: {e}"));
    assert!(log.contains("INFO") && !log.contains("\x1b["), "{log:?}");
}

#[test]
fn status_json_prints_one_object_a_tick_on_stdout_then_the_summary() {
    let dir = tempdir();
    let out = short_run(dir.path(), &["--status", "json"]);
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let (summary, ticks) = lines
        .split_last()
        .unwrap_or_else(|| panic!("no output: {stdout}"));
    assert!(!ticks.is_empty(), "at least the last tick: {stdout}");
    for t in ticks {
        assert_eq!(t["kind"], "status", "{t}");
        for field in [
            "simulated",
            "readings",
            "readings_per_s",
            "windows_closed",
            "fastest",
            "fastest_window",
            "open_alarms",
            "mean_delay_s_per_vehicle",
            "control",
            "stopping",
        ] {
            assert!(t.get(field).is_some(), "a tick has {field}: {t}");
        }
    }
    let last = &ticks[ticks.len() - 1];
    assert_eq!(last["stopping"], true);
    assert_eq!(last["readings"], summary["readings"]);
    assert_eq!(last["windows_closed"], summary["windows_closed"]);
    assert_eq!(last["simulated"], "2026-01-05T07:00:00Z");
    assert_eq!(summary["completed"], true);
    assert_eq!(summary["readings"], 6 * 4 * 60, "{summary}");
    // The ticks go on stdout only: stderr has the banner, not the status block.
    let err = text(&out.stderr);
    assert!(
        err.contains("traffic local:") && !err.contains("readings/s"),
        "{err}"
    );
}

#[test]
fn traffic_query_answers_on_an_empty_archive_and_refuses_what_it_cannot_run() {
    let dir = tempdir();
    let out = run(traffic(
        dir.path(),
        &[
            "query",
            "--data-dir",
            "data",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM readings",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\r\n0\r\n");
    for (args, says) in [
        (&["query", "--data-dir", "data"][..], "give the SQL"),
        (
            &["query", "--data-dir", "data", "--named", "nope"][..],
            "no named query \"nope\"",
        ),
        (
            &[
                "query",
                "--data-dir",
                "data",
                "--named",
                "lamp-failures",
                "2026-01-01",
            ][..],
            "lamp-failures takes 2 parameters",
        ),
        (
            &["query", "--data-dir", "data", "SELECT nope FROM readings"][..],
            "nope",
        ),
    ] {
        let out = run(traffic(dir.path(), args));
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A query reads; it writes nothing, not even an empty data directory.
    assert!(!dir.path().join("data").exists());
}
