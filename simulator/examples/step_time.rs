//! Times one simulator step for a 10,000-intersection city (40,000 readings) at the morning
//! peak, and the cost of saving and restoring the state.
//!
//! ```sh
//! cargo run -p traffic-sim --release --example step_time [intersections] [steps]
//! ```

use std::time::{Duration, Instant};
use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, generate_city};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);

    let t = Instant::now();
    let city = generate_city(&CityConfig {
        intersections: n,
        ..CityConfig::default()
    })?;
    let generated = t.elapsed();
    let cfg = SimConfig {
        // 2026-01-05T07:30:00Z: into the morning peak, where arrivals are most numerous.
        start_ms: 1_767_571_200_000 + 7 * 3_600_000 + 30 * 60_000,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(&city, cfg)?;
    let controls = Controls::fixed(&city);

    let mut out = Vec::new();
    let mut times: Vec<Duration> = Vec::with_capacity(steps);
    let mut readings = 0usize;
    for _ in 0..steps {
        out.clear();
        let t = Instant::now();
        sim.step_into(&controls, &mut out);
        times.push(t.elapsed());
        readings = out.len();
    }
    // `step` allocates its output afresh each time.
    let t = Instant::now();
    let fresh = sim.step(&controls);
    let fresh_time = t.elapsed();

    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    println!("city of {n} intersections generated in {generated:.1?}");
    println!(
        "step_into: {readings} readings per step; over {steps} steps median {:.2?}, mean {mean:.2?}, max {:.2?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!("step (fresh Vec of {}): {fresh_time:.2?}", fresh.len());

    let t = Instant::now();
    let saved = serde_json::to_string(&sim)?;
    let save_time = t.elapsed();
    let t = Instant::now();
    let restored: Simulator = serde_json::from_str(&saved)?;
    let load_time = t.elapsed();
    println!(
        "state: {:.1} MB of JSON, saved in {save_time:.1?}, restored in {load_time:.1?} (equal: {})",
        saved.len() as f64 / 1e6,
        restored == sim
    );
    let t = sim.totals();
    println!(
        "after {} min: {} arrived, {} served, {} queued, mean delay {:.1} s/veh",
        steps + 1,
        t.arrived,
        t.served,
        t.queued,
        t.mean_delay_s_per_vehicle()
    );
    Ok(())
}
