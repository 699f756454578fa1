//! One simulated working day under fixed timings and under Webster retiming every 15 minutes
//! (from the vehicles the readings counted), with the same seed: the same arrivals, so the
//! difference in delay is the control's.
//!
//! ```sh
//! cargo run -p traffic-sim --release --example day [intersections]
//! ```

use traffic_core::webster::{self, WebsterConfig};
use traffic_core::{City, IntersectionId};
use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, Totals, generate_city};

const WINDOW_STEPS: usize = 15;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let city = generate_city(&CityConfig {
        intersections: n,
        ..CityConfig::default()
    })?;
    let cfg = SimConfig::default();
    let fixed = run(&city, &cfg, false)?;
    let adaptive = run(&city, &cfg, true)?;
    for (name, t) in [("fixed", fixed), ("webster every 15 min", adaptive)] {
        println!(
            "{name:>22}: {} arrived, {} served, {} queued at the end, mean delay {:.1} s/veh",
            t.arrived,
            t.served,
            t.queued,
            t.mean_delay_s_per_vehicle()
        );
    }
    Ok(())
}

fn run(city: &City, cfg: &SimConfig, adaptive: bool) -> Result<Totals, Box<dyn std::error::Error>> {
    let mut sim = Simulator::new(city, cfg.clone())?;
    let mut controls = Controls::fixed(city);
    let index: std::collections::HashMap<&IntersectionId, usize> = city
        .intersections
        .iter()
        .enumerate()
        .map(|(i, x)| (&x.id, i))
        .collect();
    let mut counts = vec![[0u64; 4]; city.intersections.len()];
    let wcfg = WebsterConfig::default();
    let mut peak_queue = 0;
    for step in 1..=24 * 60 {
        for r in sim.step(&controls) {
            if let Some(&i) = index.get(&r.intersection_id) {
                counts[i][r.light.get()] += u64::from(r.vehicles);
            }
        }
        peak_queue = peak_queue.max(sim.totals().queued);
        if adaptive && step % WINDOW_STEPS == 0 {
            for (i, x) in city.intersections.iter().enumerate() {
                let t = webster::retime(x, &counts[i], (WINDOW_STEPS * 60) as f64, &wcfg);
                controls.set_phases(x.id.clone(), webster::apply(&x.phases, &t));
            }
        }
        if step % WINDOW_STEPS == 0 {
            counts.iter_mut().for_each(|c| *c = [0; 4]);
        }
        if step % 120 == 0 {
            let t = sim.totals();
            println!(
                "{:>5} {:02}:00 queued {:>6}, mean delay so far {:.1} s/veh",
                if adaptive { "adapt" } else { "fixed" },
                step / 60,
                t.queued,
                t.mean_delay_s_per_vehicle()
            );
        }
    }
    println!("peak city-wide queue: {peak_queue} vehicles");
    Ok(sim.totals())
}
