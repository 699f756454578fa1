//! `traffic local`: its results equal a replay of the readings it produced, its archive answers
//! `traffic query` with the results of every closed window, a run killed at a random point and
//! resumed equals an uninterrupted one (its archive too), and retiming reaches the simulator.

use merge::Provisional;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use traffic_app::Functions;
use traffic_app::local::{
    LocalOptions, RunSettings, Speedup, StatusMode, Summary, TimingControl, run,
};
use traffic_app::query::Query;
use traffic_app::replay::{ReplayOptions, ReplayOutput, collect, replay};
use traffic_app::stop::Stop;
use traffic_core::EngineConfig;
use traffic_embedded::EmbeddedStore;
use traffic_sim::{CityConfig, generate_city};

const START: &str = "2026-01-05T07:00:00Z";

fn settings(control: TimingControl) -> RunSettings {
    RunSettings {
        intersections: 12,
        shards: 3,
        seed: 7,
        start_ms: traffic_core::time::parse_rfc3339_ms(START).unwrap_or_default(),
        failure_probability: 0.002,
        control,
    }
}

fn options(dir: &Path, control: TimingControl, hours: i64, record: bool) -> LocalOptions {
    LocalOptions {
        alarms: Default::default(),
        data_dir: dir.to_path_buf(),
        settings: settings(control),
        speedup: Speedup::Max,
        duration_ms: Some(hours * 3_600_000),
        batch_size: 100,
        merge_every: 1,
        provisional: Provisional::All,
        record: record.then(|| dir.join("readings.jsonl")),
        status: StatusMode::Off,
        listen: None,
        api_token: None,
    }
}

/// The city `settings` describes (what `traffic local` generates).
fn city() -> traffic_core::city::City {
    generate_city(&CityConfig {
        intersections: 12,
        seed: 7,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn local(dir: &Path, control: TimingControl, hours: i64, record: bool) -> Summary {
    local_with(EngineConfig::default(), dir, control, hours, record).await
}

async fn local_with(
    cfg: EngineConfig,
    dir: &Path,
    control: TimingControl,
    hours: i64,
    record: bool,
) -> Summary {
    run(cfg, options(dir, control, hours, record), Stop::never())
        .await
        .unwrap_or_else(|e| panic!("traffic local: {e:#}"))
}

/// Everything the run computed, read back from its data directory.
async fn outcome(dir: &Path) -> ReplayOutput {
    let store = EmbeddedStore::open(dir.join("traffic.redb")).unwrap_or_else(|e| panic!("{e}"));
    let functions = Functions::from_ports(
        EngineConfig::default(),
        Provisional::None,
        &Default::default(),
        store.ports(),
    );
    collect(&functions)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test]
async fn a_local_run_gives_the_results_of_a_replay_of_its_readings() {
    // Every proposal applied: the timings in force then come from the last quarter alone, as
    // the replay's do. With a smallest change (the default) they depend on which earlier
    // proposals were applied, which a replay of the last quarter cannot retrace; the results
    // do not depend on it.
    let mut cfg = EngineConfig::default();
    cfg.webster.min_change_s = 0.0;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let summary = local_with(cfg.clone(), dir.path(), TimingControl::Webster, 2, true).await;
    assert!(summary.completed);
    assert_eq!(summary.readings, 12 * 4 * 120);
    let ran = outcome(dir.path()).await;

    let city = city();
    let city_file = dir.path().join("city.json");
    std::fs::write(&city_file, serde_json::to_vec(&city).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let replayed = replay(
        cfg,
        &city_file,
        &dir.path().join("readings.jsonl"),
        &ReplayOptions {
            alarms: Default::default(),
            shards: 3,
            batch_size: 100,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    // Readings are stamped at the end of their period: 07:01 … 09:00, so nine quarters
    // (the last holds the 09:00 readings), three hours and one day.
    assert_eq!(ran.windows.len(), 9 + 3 + 1);
    assert_eq!(ran.windows, replayed.windows);
    assert_eq!(ran.alarms, replayed.alarms);
    assert!(!ran.alarms.is_empty(), "lamps failed during the run");
    assert_eq!((ran.rejected, ran.late, ran.duplicates), (0, 0, 0));
    assert_eq!(
        (replayed.rejected, replayed.late, replayed.duplicates),
        (0, 0, 0)
    );
    // The replay retimes once, from the last quarter; the run did so every quarter, so its
    // latest timings come from that same window.
    let last: Vec<_> = ran
        .timings
        .iter()
        .filter(|t| {
            replayed
                .timings
                .iter()
                .any(|r| r.retimed_from == t.retimed_from)
        })
        .collect();
    assert_eq!(last.len(), replayed.timings.len());
    for (a, b) in last.iter().zip(&replayed.timings) {
        assert_eq!(*a, b);
    }
}

/// The archive's rows, every column but `dt`, in one order: what two archives must hold alike.
fn archived(dir: &Path) -> Vec<Vec<serde_json::Value>> {
    let sql = "SELECT intersection_id, light, ts, vehicles, mean_speed_kmh, lamps.red, \
               lamps.yellow, lamps.green, dt FROM readings ORDER BY ts, intersection_id, light";
    query(dir, sql).rows
}

/// Every file of the merge's output tables, by its path under the archive, with its bytes.
fn output_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let root = traffic_app::local::archive::dir(dir);
    let mut out = std::collections::BTreeMap::new();
    for table in traffic_tables::ALL_TABLES {
        let files = traffic_archive::layout::table_files(&root, table.name)
            .unwrap_or_else(|e| panic!("{e}"));
        for f in files {
            let name = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
            out.insert(name, std::fs::read(&f).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    out
}

fn query(dir: &Path, sql: &str) -> traffic_archive::query::Answer {
    traffic_app::query::answer(dir, &Query::Sql(sql.to_owned())).unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test]
async fn the_archive_answers_traffic_query_with_the_results_of_every_closed_window() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let summary = local(dir.path(), TimingControl::Webster, 2, true).await;
    assert_eq!(summary.archived_readings as u64, summary.readings);
    let ran = outcome(dir.path()).await;

    // Every reading produced, as recorded, is in the archive once.
    let recorded: Vec<traffic_core::reading::Reading> =
        std::fs::read_to_string(dir.path().join("readings.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                traffic_core::reading::Reading::parse(l.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
    let mut want: Vec<(String, i64, i64)> = recorded
        .iter()
        .map(|r| {
            (
                r.intersection_id.to_string(),
                r.light.get() as i64,
                r.vehicles as i64,
            )
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, i64, i64)> = query(
        dir.path(),
        "SELECT intersection_id, light, vehicles FROM readings",
    )
    .rows
    .iter()
    .map(|r| {
        (
            r[0].as_str().unwrap_or("").to_owned(),
            r[1].as_i64().unwrap_or(-1),
            r[2].as_i64().unwrap_or(-1),
        )
    })
    .collect();
    got.sort();
    assert_eq!(got, want);

    // Per closed window: its readings, and its ranking by vehicle-weighted mean speed.
    let closed: Vec<_> = ran.windows.iter().filter(|w| w.closed).collect();
    assert!(closed.len() >= 9, "{} closed windows", closed.len());
    for w in closed {
        let (start, end) = (w.window.start_ms, w.window.end_ms());
        let range = format!("ts >= epoch_ms({start}) AND ts < epoch_ms({end})");
        let n = query(
            dir.path(),
            &format!("SELECT count(*) FROM readings WHERE {range}"),
        );
        assert_eq!(
            n.rows[0][0],
            serde_json::json!(w.readings),
            "{} {}",
            w.length(),
            w.start()
        );
        let top = query(
            dir.path(),
            &format!(
                "SELECT intersection_id, sum(vehicles * mean_speed_kmh) / sum(vehicles) AS speed \
                 FROM readings WHERE {range} GROUP BY intersection_id HAVING sum(vehicles) > 0 \
                 ORDER BY speed DESC, intersection_id LIMIT {}",
                w.top.len()
            ),
        );
        let sql: Vec<(String, f64)> = top
            .rows
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap_or("").to_owned(),
                    r[1].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect();
        let results: Vec<(String, f64)> = w
            .top
            .iter()
            .map(|e| (e.intersection_id.to_string(), e.mean_speed_kmh))
            .collect();
        assert_eq!(sql.len(), results.len(), "{} {}", w.length(), w.start());
        for (a, b) in sql.iter().zip(&results) {
            assert_eq!(
                a.0,
                b.0,
                "{} {}: {sql:?} against {results:?}",
                w.length(),
                w.start()
            );
            assert!(
                (a.1 - b.1).abs() <= 1e-9 * b.1.abs().max(1.0),
                "{a:?} against {b:?}"
            );
        }
    }

    // The merge's own outputs: a row of `windows` per closed window, and its rankings, as the
    // results hold them to the bit.
    for w in ran.windows.iter().filter(|w| w.closed) {
        let at = format!(
            "length = '{}' AND window_start = epoch_ms({})",
            w.length(),
            w.window.start_ms
        );
        let row = query(
            dir.path(),
            &format!(
                "SELECT readings, global_median_vehicles, \
                 (SELECT sum(readings) FROM window_intersections WHERE {at}) \
                 FROM windows WHERE {at}"
            ),
        );
        let want = serde_json::json!([w.readings, w.global_median_vehicles, w.readings]);
        assert_eq!(
            row.rows,
            [want.as_array().cloned().unwrap_or_default()],
            "{at}"
        );
        let ranked = |ranking: &str| -> Vec<(String, f64)> {
            query(
                dir.path(),
                &format!(
                    "SELECT intersection_id, value FROM window_rankings \
                     WHERE {at} AND ranking = '{ranking}' ORDER BY place"
                ),
            )
            .rows
            .iter()
            .map(|r| {
                let id = r[0].as_str().unwrap_or("").to_owned();
                (id, r[1].as_f64().unwrap_or(f64::NAN))
            })
            .collect()
        };
        let top: Vec<(String, f64)> = w
            .top
            .iter()
            .map(|e| (e.intersection_id.to_string(), e.mean_speed_kmh))
            .collect();
        assert_eq!(ranked("top"), top, "{at}");
        let above: Vec<(String, f64)> = w
            .above_median
            .iter()
            .map(|e| (e.intersection_id.to_string(), e.median_vehicles))
            .collect();
        assert_eq!(ranked("above_median"), above, "{at}");
    }

    // The plans of the last retiming round, as `window_plans` holds them, are the plans the
    // registry holds now (nothing changed them since).
    let rows = query(
        dir.path(),
        "SELECT intersection_id, phase, green_s, cycle_s FROM window_plans \
         WHERE window_start = (SELECT max(window_start) FROM window_plans) \
         ORDER BY intersection_id, phase",
    )
    .rows;
    let store =
        EmbeddedStore::open(dir.path().join("traffic.redb")).unwrap_or_else(|e| panic!("{e}"));
    let cfg = EngineConfig::default();
    let mut want = Vec::new();
    for x in traffic_ports::Registry::intersections(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        let plan = traffic_core::plan::plan_of(&x, cfg.webster.yellow_s, &cfg.plan);
        for (i, p) in plan.phases.iter().enumerate() {
            want.push(serde_json::json!([
                x.id.as_str(),
                i,
                p.green_s,
                plan.cycle_s
            ]));
        }
    }
    let got: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::from).collect();
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    // To 1e-12: a plan drawn again from the stored phases may differ in the last bit from the
    // one the round drew from the phases it wrote.
    let close = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(1.0),
        _ => a == b,
    };
    for (g, w) in got.iter().zip(&want) {
        let (g, w) = (g.as_array(), w.as_array());
        let same = g
            .zip(w)
            .is_some_and(|(g, w)| g.len() == w.len() && g.iter().zip(w).all(|(a, b)| close(a, b)));
        assert!(same, "{g:?} against {w:?}");
    }

    // Who changed what: each retiming of the run is a `retiming` row of `plan_changes` at the
    // end of the window it was computed from; each alarm of the log raised in a closed quarter
    // is a `raised` row of `alarm_events`, and a `closed` one when it closed in one.
    let quarters_end = ran
        .windows
        .iter()
        .filter(|w| w.closed && w.window.length.ms() == 900_000)
        .map(|w| w.window.end_ms())
        .max()
        .unwrap_or(i64::MIN);
    let pairs = |sql: &str| -> std::collections::BTreeSet<(String, i64)> {
        query(dir.path(), sql)
            .rows
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap_or("").to_owned(),
                    r[1].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let mut retimings = std::collections::BTreeSet::new();
    for x in traffic_ports::Registry::intersections(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        for c in traffic_ports::Registry::timing_history(&store, &x.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            if c.by == traffic_ports::ChangedBy::Retiming {
                retimings.insert((x.id.to_string(), c.from.end_ms()));
            }
        }
    }
    assert!(!retimings.is_empty());
    assert_eq!(
        pairs(
            "SELECT DISTINCT intersection_id, epoch_ms(changed_at) FROM plan_changes \
             WHERE changed_by = 'retiming'"
        ),
        retimings
    );
    let log = traffic_ports::LampStore::alarms(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raised: std::collections::BTreeSet<(String, i64)> = log
        .iter()
        .filter(|r| r.alarm.ts_ms < quarters_end)
        .map(|r| (r.alarm.id().to_string(), r.alarm.ts_ms))
        .collect();
    assert!(!raised.is_empty(), "lamps failed during the run");
    assert_eq!(
        pairs("SELECT alarm_id, epoch_ms(event_at) FROM alarm_events WHERE event = 'raised'"),
        raised
    );
    let closed: std::collections::BTreeSet<(String, i64)> = log
        .iter()
        .filter_map(|r| {
            let at = r.repaired_at_ms?;
            (at < quarters_end).then(|| (r.alarm.id().to_string(), at))
        })
        .collect();
    assert_eq!(
        pairs("SELECT alarm_id, epoch_ms(event_at) FROM alarm_events WHERE event = 'closed'"),
        closed
    );

    // The named query, as Athena runs it, counts each intersection's quarter-hours the same.
    let quarters = traffic_app::query::answer(
        dir.path(),
        &Query::Named(
            "volumes-by-15-minutes".to_owned(),
            ["I-0001", "2026-01-05", "2026-01-05"]
                .map(str::to_owned)
                .to_vec(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let per_quarter: i64 = quarters.rows.iter().filter_map(|r| r[1].as_i64()).sum();
    let of_one = recorded
        .iter()
        .filter(|r| r.intersection_id.as_str() == "I-0001")
        .count();
    assert_eq!(per_quarter, of_one as i64);
    assert_eq!(quarters.rows.len(), 9);
}

#[tokio::test]
async fn retiming_reaches_the_simulator_and_changes_the_traffic() {
    let fixed_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let webster_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fixed = local(fixed_dir.path(), TimingControl::Fixed, 3, false).await;
    let webster = local(webster_dir.path(), TimingControl::Webster, 3, false).await;
    let retimed = outcome(webster_dir.path()).await.timings;
    assert!(!retimed.is_empty());
    // The simulator's own state holds the timings it ran with in its last period.
    let store = EmbeddedStore::open(webster_dir.path().join("traffic.redb"))
        .unwrap_or_else(|e| panic!("{e}"));
    let sim: traffic_sim::Simulator =
        serde_json::from_slice(&store.blob("simulator").ok().flatten().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    // It ran its last period with timings the merge had written to the registry.
    use traffic_ports::Registry;
    let t = &retimed[0];
    let id =
        traffic_core::IntersectionId::parse(&t.intersection_id).unwrap_or_else(|e| panic!("{e}"));
    let history = store.timing_history(&id).await.unwrap_or_default();
    // Retimed when a quarter's proposal moved a green or red by the smallest change (3 s by
    // default), and only then: each entry differs that much from the timings before it.
    let min_change = EngineConfig::default().webster.min_change_s;
    assert!(min_change > 0.0);
    let initial = city()
        .intersections
        .into_iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the city"))
        .phases;
    let mut before = &initial;
    for h in &history {
        let moved = traffic_core::control::largest_change_s(before, &h.phases);
        assert!(
            moved >= min_change,
            "retimed for a move of {moved} s: {history:?}"
        );
        before = &h.phases;
    }
    let first_light = t.phases[0].lights[0];
    let in_field = sim
        .light(&id, first_light)
        .unwrap_or_else(|| panic!("no light"))
        .green_s;
    assert!((in_field - 30.0).abs() > 1e-6, "still the initial timings");
    assert!(
        history
            .iter()
            .any(|h| (h.phases[0].green_s - in_field).abs() < 1e-9),
        "the simulator's green {in_field} is none of the merge's timings"
    );
    // Same arrivals, different timings: the traffic (and so its delay) differs.
    assert!(
        (fixed.mean_delay_s_per_vehicle - webster.mean_delay_s_per_vehicle).abs() > 1e-6,
        "fixed {} webster {}",
        fixed.mean_delay_s_per_vehicle,
        webster.mean_delay_s_per_vehicle
    );
}

fn local_command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_traffic"));
    c.args([
        "local",
        "--intersections",
        "12",
        "--shards",
        "3",
        "--seed",
        "7",
        "--start",
        START,
        "--failure-probability",
        "0.002",
        "--speedup",
        "max",
        "--duration",
        "3h",
        "--batch-size",
        "100",
        "--status",
        "off",
        "--no-api",
        "--data-dir",
    ])
    .arg(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

#[tokio::test]
async fn a_run_killed_at_random_points_and_resumed_equals_an_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let status = local_command(whole.path())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let expected = outcome(whole.path()).await;

    let broken = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Kill it with SIGKILL after a pseudo-random delay, several times, then let it finish.
    let mut x: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        assert!(
            Instant::now() < deadline,
            "the resumed runs did not finish in time"
        );
        let mut child = local_command(broken.path())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let wait = Duration::from_millis(150 + x % 900);
        let started = Instant::now();
        let mut finished = None;
        while started.elapsed() < wait {
            if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                finished = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match finished {
            Some(s) => {
                assert!(s.success());
                break;
            }
            None if kills < 4 => {
                child.kill().unwrap_or_else(|e| panic!("{e}"));
                let _ = child.wait();
                kills += 1;
            }
            None => {
                let s = child.wait().unwrap_or_else(|e| panic!("{e}"));
                assert!(s.success());
                break;
            }
        }
    }
    assert!(kills > 0, "the run finished before it could be killed");
    let resumed = outcome(broken.path()).await;
    // The archive holds every reading once, killed or not.
    let archive = archived(whole.path());
    assert_eq!(archive.len(), 12 * 4 * 180);
    assert_eq!(archived(broken.path()), archive);
    // The merge's outputs too, to the byte, though the killed runs redid merges.
    let outputs = output_files(whole.path());
    assert!(outputs.len() >= 3 * 9, "{} files", outputs.len());
    assert_eq!(output_files(broken.path()), outputs);
    assert_eq!(resumed.windows, expected.windows);
    assert_eq!(resumed.alarms, expected.alarms);
    assert_eq!(resumed.timings, expected.timings);
    assert_eq!(
        (resumed.rejected, resumed.late, resumed.duplicates),
        (expected.rejected, expected.late, expected.duplicates)
    );
}

/// Sends one HTTP/1.1 request to `addr` and returns the status code (0 when nothing answers).
fn http(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>) -> u16 {
    request(addr, method, path, token).0
}

#[tokio::test]
async fn an_api_write_answered_2xx_survives_a_kill_9_right_after_the_answer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // At one simulated second per second the runner commits (durably) once a minute, so
    // nothing but the API's own commit can make the deletion durable before the kill.
    let mut child = Command::new(env!("CARGO_BIN_EXE_traffic"))
        .args([
            "local",
            "--intersections",
            "12",
            "--shards",
            "3",
            "--seed",
            "7",
        ])
        .args(["--start", START, "--speedup", "1", "--status", "off"])
        .args(["--listen", &addr.to_string(), "--api-token", "secret"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(addr, "GET", "/api/config", None) != 200 {
        assert!(Instant::now() < deadline, "the API did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let city = city();
    let gone = city.intersections[0].id.to_string();
    let status = http(
        addr,
        "DELETE",
        &format!("/api/intersections/{gone}"),
        Some("secret"),
    );
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait();
    assert_eq!(status, 204, "the deletion was answered");

    let store =
        EmbeddedStore::open(dir.path().join("traffic.redb")).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = store
        .ports()
        .registry
        .intersections()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|x| x.id.to_string())
        .collect();
    assert_eq!(ids.len(), 11, "{ids:?}");
    assert!(!ids.contains(&gone));
}

/// `method path` on `addr` (with the bearer `token`, if any): the status and the body (the
/// server closes the connection); status 0 when it cannot be reached.
fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_merge_figures_and_the_latency_from_arrival_to_result_appear_in_the_stats() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(env!("CARGO_BIN_EXE_traffic"))
        .args(["local", "--intersections", "12", "--shards", "3"])
        .args(["--seed", "7", "--start", START, "--speedup", "600"])
        .args(["--status", "off", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Until an hour has closed and been retimed from (a few simulated hours: seconds of wall
    // time at 600x), at most two minutes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let totals = loop {
        let (status, body) = request(addr, "GET", "/api/stats?minutes=1440", None);
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let fs = v["functions"].as_array().cloned().unwrap_or_default();
            let has = |name: &str| {
                fs.iter()
                    .any(|f| f["function"] == name && f["records"].as_u64() > Some(0))
            };
            if ["merge", "result_15m", "result_1h", "result_24h", "retiming"]
                .iter()
                .all(|n| has(n))
                && v["series"]
                    .as_array()
                    .is_some_and(|s| s.iter().filter(|p| p["function"] == "retiming").count() >= 2)
            {
                break fs;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no merge figures within two minutes: {status} {body}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = child.kill();
    let _ = child.wait();
    let get = |name: &str| {
        totals
            .iter()
            .find(|f| f["function"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    for f in &totals {
        eprintln!(
            "| {} | {} | {} | {:.0} | {} |",
            f["function"].as_str().unwrap_or(""),
            f["invocations"],
            f["records"],
            f["mean_latency_ms"].as_f64().unwrap_or(0.0),
            f["max_latency_ms"]
        );
    }
    let merge = get("merge");
    assert!(
        merge["accepted"].as_u64() > Some(0),
        "windows closed: {merge}"
    );
    // Provisional results (the default): a reading is in every length's result from the first
    // run after its batch. `traffic local` merges right after each batch, at the simulated
    // instant the batch was read, so in simulated time that is no later than the batch.
    for len in ["result_15m", "result_1h", "result_24h"] {
        let r = get(len);
        let mean = r["mean_latency_ms"].as_f64().unwrap_or(-1.0);
        assert!((0.0..60_000.0).contains(&mean), "{len}: {mean} ms");
        // Each reading counts once (the batch read last may not have been merged yet).
        let (included, ingested) = (r["records"].as_u64(), get("ingest")["records"].as_u64());
        assert!(included > Some(0) && included <= ingested, "{len}: {r}");
    }
    // The retiming comes after the quarter closes: on average half a quarter after a reading
    // arrived plus the allowed lateness (2 min), within a quarter and the lateness at most
    // (and some batching).
    let retiming = get("retiming");
    let mean = retiming["mean_latency_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (120_000.0..1_200_000.0).contains(&mean),
        "arrival to retiming {mean} ms"
    );
    assert!(retiming["accepted"].as_u64() >= Some(12), "{retiming}");
}

/// The body of `GET path` on the API at `addr` (HTTP/1.0: the server closes after it).
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_shows_alarms_at_the_configured_severities() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = traffic_functions::Config::from_lookup(|k| {
        (k == "ALARM_SEVERITIES").then(|| "red=minor,yellow=minor,green=minor".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // A free loopback port, for the API the run serves.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut opts = options(dir.path(), TimingControl::Webster, 1, false);
    opts.settings.failure_probability = 0.02;
    opts.listen = Some(addr);
    opts.alarms = config.alarms;
    let summary = run(EngineConfig::default(), opts, Stop::never())
        .await
        .unwrap_or_else(|e| panic!("traffic local: {e:#}"));
    assert!(summary.alarms > 0, "{summary:?}");
    // The API the run spawned still serves on this runtime.
    let body = get(addr, "/api/alarms?limit=1000").await;
    let view: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let severities: std::collections::BTreeSet<&str> = view["alarms"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter(|a| a["kind"] == "lamp")
        .filter_map(|a| a["severity"].as_str())
        .collect();
    assert_eq!(
        severities.into_iter().collect::<Vec<_>>(),
        ["minor"],
        "{body}"
    );
}
