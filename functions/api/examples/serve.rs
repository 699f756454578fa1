//! A development server for the dashboard: the real router on an embedded store, fed with
//! made-up but live-looking figures (results, retimings, alarms, statistics) every two seconds.
//! `traffic local` runs the real engine instead; this only lets the page be worked on alone.
//!
//! ```sh
//! cargo run -p api --example serve -- --listen 127.0.0.1:8080 --api-token dev --intersections 20
//! ```

use anyhow::Context;
use api::{ApiState, router};
use std::path::PathBuf;
use std::time::Duration;
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::pane::{Commit, ShardMeta};
use traffic_core::query::{MedianEntry, WindowResult};
use traffic_core::ranking::RankEntry;
use traffic_core::reading::{LampColour, LampState};
use traffic_core::window::WindowKey;
use traffic_core::{EngineConfig, Intersection, SequenceNumber};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{LampStore, Registry, ResultStore, StateStore, StatsSample, StatsStore};
use traffic_sim::rng::Rng;

struct Args {
    listen: String,
    token: Option<String>,
    data_dir: Option<PathBuf>,
    intersections: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:8080".into(),
        token: std::env::var("TRAFFIC_API_TOKEN").ok(),
        data_dir: None,
        intersections: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?,
            "--api-token" => a.token = Some(value()?),
            "--data-dir" => a.data_dir = Some(value()?.into()),
            "--intersections" => a.intersections = value()?.parse()?,
            // Accepted for the same command line as `traffic local`; the figures here are
            // made up at a fixed pace.
            "--speedup" => {
                value()?;
            }
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let store = EmbeddedStore::open(dir.join("traffic.redb"))?;
    let city = traffic_sim::generate_city(&traffic_sim::CityConfig {
        intersections: a.intersections,
        ..traffic_sim::CityConfig::default()
    })?;
    if store.intersections().await?.is_empty() {
        for x in &city.intersections {
            store.create_intersection(x).await?;
        }
    }
    let cfg = EngineConfig::default();
    let app = router(ApiState {
        ports: store.ports(),
        cfg: cfg.clone(),
        token: a.token.clone(),
        alarms: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(&a.listen).await?;
    eprintln!("dashboard on http://{}/", listener.local_addr()?);
    tokio::spawn(feed(store, cfg));
    axum::serve(listener, app).await?;
    Ok(())
}

/// Every 2 s: ten minutes of made-up event time.
async fn feed(store: EmbeddedStore, cfg: EngineConfig) {
    let mut rng = Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let now = chrono::Utc::now().timestamp_millis();
    let mut event_ms = now - now.rem_euclid(900_000);
    let mut seq = 0u128;
    let mut accepted = 0u64;
    loop {
        if let Err(e) = tick(&store, &cfg, &mut rng, event_ms, &mut seq, &mut accepted).await {
            eprintln!("feed: {e}");
        }
        event_ms += 600_000;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn tick(
    store: &EmbeddedStore,
    cfg: &EngineConfig,
    rng: &mut Rng,
    event_ms: i64,
    seq: &mut u128,
    accepted: &mut u64,
) -> anyhow::Result<()> {
    let xs: Vec<Intersection> = store.intersections().await?;
    if xs.is_empty() {
        return Ok(());
    }
    let mut results = Vec::new();
    for len in cfg.windows() {
        let key: WindowKey = len.window_of(event_ms);
        let mut speeds: Vec<RankEntry> = xs
            .iter()
            .map(|x| RankEntry {
                intersection_id: x.id.clone(),
                mean_speed_kmh: 15.0 + 40.0 * rng.uniform(),
            })
            .collect();
        speeds.sort_by(|a, b| b.mean_speed_kmh.total_cmp(&a.mean_speed_kmh));
        speeds.truncate(cfg.top_k);
        let global = 6.0 + 4.0 * rng.uniform();
        let mut above: Vec<MedianEntry> = xs
            .iter()
            .map(|x| MedianEntry {
                intersection_id: x.id.clone(),
                median_vehicles: global * (0.6 + 0.8 * rng.uniform()),
            })
            .filter(|m| m.median_vehicles > global)
            .collect();
        above.sort_by(|a, b| b.median_vehicles.total_cmp(&a.median_vehicles));
        results.push(WindowResult {
            window: key,
            closed: false,
            readings: (xs.len() * 4) as u64 * ((event_ms - key.start_ms) / 60_000 + 1) as u64,
            top: speeds,
            global_median_vehicles: global,
            above_median: above,
        });
        // The window before is closed now.
        let prev = WindowKey {
            length: *len,
            start_ms: key.start_ms - len.ms(),
        };
        if let Some(mut r) = store
            .results()
            .await?
            .into_iter()
            .find(|r| r.window == prev && !r.closed)
        {
            r.closed = true;
            results.push(r);
        }
    }
    store.put_results(&results).await?;

    // Retime a few intersections, as the merge does at the end of a pane.
    let pane = cfg.pane().window_of(event_ms);
    let from = pane;
    let mut timings = Vec::new();
    for (x, version) in store.intersections_versioned().await? {
        if rng.uniform() >= 0.3 {
            continue;
        }
        let cycle = 50.0 + 50.0 * rng.uniform();
        let share = 0.3 + 0.4 * rng.uniform();
        let mut phases = x.phases.clone();
        let n = phases.len().max(1) as f64;
        for (i, p) in phases.iter_mut().enumerate() {
            let s = if i == 0 {
                share
            } else {
                (1.0 - share) / (n - 1.0).max(1.0)
            };
            p.green_s = ((cycle - 4.0 * n) * s).max(5.0).round();
            p.red_s = (cycle - p.green_s - 4.0).max(0.0).round();
        }
        timings.push(traffic_ports::TimingUpdate {
            id: x.id.clone(),
            plan: None,
            phases,
            expected_version: version.clone(),
        });
    }
    store.set_timings(&timings, &from).await?;

    // Now and then a lamp breaks; repair orders fix lamps.
    for (id, l) in store.take_repairs().await? {
        store
            .put_lamp_states(&[((id, l), LightLamps::default())])
            .await?;
    }
    if rng.uniform() < 0.5 {
        let x = &xs[(rng.uniform() * xs.len() as f64) as usize % xs.len()];
        let l = x.lights[(rng.uniform() * x.lights.len() as f64) as usize % x.lights.len()].light;
        let lamp = LampColour::ALL[(rng.uniform() * 3.0) as usize % 3];
        let mut state = LightLamps {
            as_of_ms: Some(event_ms),
            ..LightLamps::default()
        };
        state.lamps.set(lamp, LampState::Broken);
        store.put_lamp_states(&[((x.id.clone(), l), state)]).await?;
        store
            .record_alarm(&Alarm {
                intersection_id: x.id.clone(),
                light: l,
                lamp,
                ts_ms: event_ms,
                position: None,
                silent: None,
            })
            .await?;
    }

    // Throughput and latency figures, and the shard counters.
    let wall = chrono::Utc::now().timestamp_millis();
    let records = (xs.len() * 4 * 10) as u64;
    // The merge's figures: its runs, and arrival to result (per window length) and to retiming.
    for (function, lat) in [
        ("ingest", 400.0),
        ("fault", 600.0),
        ("merge", 30.0),
        ("result_15m", 40_000.0),
        ("result_1h", 45_000.0),
        ("retiming", 560_000.0),
    ] {
        store
            .add_stats(&StatsSample {
                invocations: 4,
                records,
                accepted: records,
                latency_ms_sum: (records as f64 * lat * (0.5 + rng.uniform())) as u64,
                latency_ms_max: (lat * 3.0) as u64,
                ..StatsSample::new(function.parse()?, wall - wall.rem_euclid(60_000))
            })
            .await?;
    }
    let expected = (*seq > 0).then(|| SequenceNumber::from_u128(*seq));
    *seq += records as u128;
    *accepted += records;
    store
        .commit(
            &Commit {
                expected,
                expected_commits: 0,
                closed_ms: None,
                meta: ShardMeta {
                    shard_id: "shardId-000000000000".into(),
                    applied_through: Some(SequenceNumber::from_u128(*seq)),
                    max_event_ms: Some(event_ms),
                    counters: traffic_core::pane::Counters {
                        accepted: *accepted,
                        rejected: *accepted / 500,
                        late: *accepted / 2000,
                        duplicates: *accepted / 1000,
                        future: 0,
                    },
                    ..ShardMeta::default()
                },
                deltas: vec![],
            },
            wall,
        )
        .await?;
    Ok(())
}
