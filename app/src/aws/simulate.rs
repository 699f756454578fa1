//! `traffic simulate --stream NAME`: the simulated city against a real stream, taking its
//! timings and repairs from the registry each period (the closed loop of [`SimDriver`]).

use crate::driver::SimDriver;
use crate::stop::Stop;
use std::path::PathBuf;
use std::time::Duration;
use traffic_aws::AwsClients;
use traffic_aws::kinesis::KinesisSink;
use traffic_core::reading::LampColour;
use traffic_core::{City, IntersectionId, LightIndex};
use traffic_functions::Config;
use traffic_sim::SimConfig;

/// The simulator's settings: `seed`, first instant `start_ms`, lamp failure probability
/// `failure`, and the yellow and lost time Webster's method assumes (`webster`), so the field
/// runs the cycle the merge computed.
///
/// Without a start, the simulation must not run ahead of the stream's clock (a reading stamped
/// more than `TRAFFIC_MAX_CLOCK_SKEW` after it arrives is rejected as future): at real speed it
/// starts now (rounded down to the minute); faster, it starts in the past, so that `steps`
/// periods end now, or, unbounded, a day ago (it then runs ahead of the clock only after a
/// day's worth of simulated time, which is logged).
pub fn sim_config(
    seed: u64,
    start_ms: Option<i64>,
    failure: f64,
    webster: &traffic_core::webster::WebsterConfig,
    steps: Option<u64>,
    speedup: f64,
) -> SimConfig {
    let period_ms = i64::from(SimConfig::default().period_s) * 1000;
    let start_ms = start_ms.unwrap_or_else(|| {
        let now = chrono::Utc::now().timestamp_millis();
        let now = now - now.rem_euclid(60_000);
        if speedup <= 1.0 {
            now
        } else if let Some(n) = steps {
            now - i64::try_from(n).unwrap_or(i64::MAX / period_ms) * period_ms
        } else {
            tracing::warn!(
                speedup,
                "an unbounded simulation faster than real time starts a day in the past; past a \
                 day of simulated time its readings run ahead of the stream's clock and are \
                 rejected as future beyond TRAFFIC_MAX_CLOCK_SKEW"
            );
            now - 86_400_000
        }
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

/// A lamp to break before a given period of the simulation (`traffic simulate --break-lamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LampBreak {
    /// The intersection.
    pub intersection: IntersectionId,
    /// Its light.
    pub light: LightIndex,
    /// The lamp.
    pub colour: LampColour,
    /// The period (from 0) before which it breaks.
    pub period: u64,
}

impl std::str::FromStr for LampBreak {
    type Err = String;

    /// Parses `INTERSECTION:LIGHT:COLOUR@PERIOD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape =
            || format!("{s:?}: expected INTERSECTION:LIGHT:COLOUR@PERIOD, e.g. I-0002:1:green@5");
        let (lamp, period) = s.rsplit_once('@').ok_or_else(shape)?;
        let mut parts = lamp.rsplitn(3, ':');
        let (Some(colour), Some(light), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        let colour = LampColour::ALL
            .into_iter()
            .find(|c| c.as_str() == colour)
            .ok_or_else(|| format!("{s:?}: the colour must be red, yellow or green"))?;
        Ok(Self {
            intersection: IntersectionId::parse(id).map_err(|e| format!("{s:?}: {e}"))?,
            light: light
                .parse::<i64>()
                .map_err(|e| e.to_string())
                .and_then(|l| LightIndex::new(l).map_err(|e| e.to_string()))
                .map_err(|e| format!("{s:?}: {e}"))?,
            colour,
            period: period
                .parse()
                .map_err(|e| format!("{s:?}: the period is not a count: {e}"))?,
        })
    }
}

/// Steps `driver` every `period` (wall time) for `steps` periods or until `stop`, breaking
/// the lamps of `breaks` before their periods; returns the readings sent.
pub async fn run_simulator(
    mut driver: SimDriver,
    period: Duration,
    steps: Option<u64>,
    breaks: &[LampBreak],
    mut stop: Stop,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    let mut n = 0;
    let mut next = tokio::time::Instant::now();
    while steps.is_none_or(|s| n < s) && !stop.is_stopped() {
        for b in breaks.iter().filter(|b| b.period == n) {
            let sim = driver.simulator();
            anyhow::ensure!(
                sim.break_lamp(&b.intersection, b.light, b.colour),
                "--break-lamp: the city has no light {} at {}",
                b.light.get(),
                b.intersection
            );
            tracing::info!(intersection = %b.intersection, light = b.light.get(), lamp = b.colour.as_str(), period = n, "lamp broken");
        }
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
    /// Lamps to break at chosen periods.
    pub breaks: Vec<LampBreak>,
}

/// `traffic simulate`: loads the city into an empty registry, then runs the simulator into
/// the stream; returns the readings put.
pub async fn simulate(config: &Config, opts: &SimulateOptions, stop: Stop) -> anyhow::Result<u64> {
    let clients = AwsClients::from_env().await?;
    let ports = config.aws_ports_on(&clients, config.names.clone()).ports;
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
        opts.steps,
        opts.speedup,
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
    run_simulator(driver, period, opts.steps, &opts.breaks, stop).await
}

#[cfg(test)]
mod tests {
    use super::LampBreak;

    #[test]
    fn a_lamp_break_names_the_intersection_light_colour_and_period() {
        let b: LampBreak = "I-0002:1:green@5".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.intersection.as_str(), "I-0002");
        assert_eq!(b.light.get(), 1);
        assert_eq!(b.colour.as_str(), "green");
        assert_eq!(b.period, 5);
    }

    #[test]
    fn an_intersection_id_may_itself_contain_colons() {
        let b: LampBreak = "north:I-7:3:red@0"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.intersection.as_str(), "north:I-7");
        assert_eq!((b.light.get(), b.period), (3, 0));
    }

    #[test]
    fn a_malformed_lamp_break_is_refused_with_the_expected_shape() {
        for bad in [
            "I-0002:1:green",
            "I-0002:green@5",
            "I-0002:4:green@5",
            "I-0002:1:blue@5",
            "I-0002:1:green@-1",
            ":1:green@5",
        ] {
            let err = bad.parse::<LampBreak>().err();
            assert!(err.is_some(), "{bad} was accepted");
        }
        let err = "I-0002:1:green"
            .parse::<LampBreak>()
            .err()
            .unwrap_or_default();
        assert!(err.contains("INTERSECTION:LIGHT:COLOUR@PERIOD"), "{err}");
    }
}
