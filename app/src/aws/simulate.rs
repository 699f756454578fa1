//! `traffic simulate --stream NAME`: the simulated city against a real stream, taking its
//! timings and repairs from the registry each period (the closed loop of [`SimDriver`]).

use crate::driver::SimDriver;
use crate::stop::Stop;
use std::path::PathBuf;
use std::time::Duration;
use traffic_aws::AwsClients;
use traffic_aws::kinesis::KinesisSink;
use traffic_core::City;
use traffic_functions::Config;
use traffic_sim::SimConfig;

/// The simulator's settings: `seed`, first instant `start_ms` (default now, rounded down to
/// the minute), lamp failure probability `failure`, and the yellow and lost time Webster's
/// method assumes (`webster`), so the field runs the cycle the merge computed.
pub fn sim_config(
    seed: u64,
    start_ms: Option<i64>,
    failure: f64,
    webster: &traffic_core::webster::WebsterConfig,
) -> SimConfig {
    let start_ms = start_ms.unwrap_or_else(|| {
        let now = chrono::Utc::now().timestamp_millis();
        now - now.rem_euclid(60_000)
    });
    SimConfig {
        seed,
        start_ms,
        lamp_failure_probability: failure,
        yellow_s: webster.yellow_s,
        lost_time_per_phase_s: webster.lost_time_per_phase_s,
        ..SimConfig::default()
    }
}

/// Steps `driver` every `period` (wall time) for `steps` periods or until `stop`; returns the
/// readings sent.
pub async fn run_simulator(
    mut driver: SimDriver,
    period: Duration,
    steps: Option<u64>,
    mut stop: Stop,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    let mut n = 0;
    let mut next = tokio::time::Instant::now();
    while steps.is_none_or(|s| n < s) && !stop.is_stopped() {
        let s = driver.step().await?;
        sent += s.readings.len() as u64;
        n += 1;
        if !s.controls.retimed.is_empty() || s.controls.repaired > 0 {
            tracing::info!(
                retimed = s.controls.retimed.len(),
                repaired = s.controls.repaired,
                "controls updated from the registry"
            );
        }
        next += period;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait() => {}
        }
    }
    Ok(sent)
}

/// What `traffic simulate` runs.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// The stream to put readings into.
    pub stream: String,
    /// The city.
    pub city: City,
    /// Seed of the traffic.
    pub seed: u64,
    /// First simulated instant, epoch ms (default now).
    pub start_ms: Option<i64>,
    /// Periods to run; without it, until stopped.
    pub steps: Option<u64>,
    /// Simulated seconds per wall second.
    pub speedup: f64,
    /// Probability that a reading breaks one of its light's lamps.
    pub failure_probability: f64,
    /// Also append the readings to this file.
    pub record: Option<PathBuf>,
}

/// `traffic simulate`: loads the city into an empty registry, then runs the simulator into
/// the stream; returns the readings put.
pub async fn simulate(config: &Config, opts: &SimulateOptions, stop: Stop) -> anyhow::Result<u64> {
    let clients = AwsClients::from_env().await;
    let ports =
        traffic_aws::AwsPorts::new(&clients, config.names.clone(), config.store.clone()).ports;
    let city = &opts.city;
    if ports.registry.intersections().await?.is_empty() {
        for x in &city.intersections {
            ports.registry.put_intersection(x).await?;
        }
        eprintln!(
            "registry was empty: loaded {} intersections",
            city.intersections.len()
        );
    }
    let cfg = sim_config(
        opts.seed,
        opts.start_ms,
        opts.failure_probability,
        &config.engine.webster,
    );
    let period = Duration::from_secs_f64(f64::from(cfg.period_s) / opts.speedup.max(1e-3));
    let mut driver = SimDriver::new(
        city,
        cfg,
        KinesisSink::new(clients.kinesis.clone(), &opts.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?;
    if let Some(p) = &opts.record {
        driver = driver.record_to(p)?;
    }
    eprintln!(
        "simulating {} intersections into {} (a period every {:?}); Ctrl-C stops",
        city.intersections.len(),
        opts.stream,
        period
    );
    run_simulator(driver, period, opts.steps, stop).await
}
