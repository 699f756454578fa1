//! How far Webster's timings move from one quarter to the next in the simulated city, when
//! every quarter's proposal is applied: per hour of a day, the share of intersections whose
//! largest green or red move is at least 1, 2, 3 and 5 s. It is what `WEBSTER_MIN_CHANGE_S`
//! (3 s by default) is weighed against: the moves under it are mostly the noise of a quarter's
//! counts.
//!
//! ```sh
//! cargo run -p traffic-sim --release --example retime_moves [intersections] [hours]
//! ```

use std::collections::HashMap;
use traffic_core::control::largest_change_s;
use traffic_core::webster::{WebsterConfig, apply, retime};
use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, generate_city};

/// The moves counted, s.
const MOVES: [f64; 4] = [1.0, 2.0, 3.0, 5.0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000);
    let hours: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(24);
    let city = generate_city(&CityConfig {
        intersections: n,
        ..CityConfig::default()
    })?;
    let sim_cfg = SimConfig::default();
    let quarter_steps = (900 / sim_cfg.period_s.max(1)).max(1);
    let window_s = f64::from(quarter_steps * sim_cfg.period_s);
    let mut sim = Simulator::new(&city, sim_cfg)?;
    let mut controls = Controls::fixed(&city);
    let webster = WebsterConfig::default();
    let mut in_force: HashMap<_, _> = city
        .intersections
        .iter()
        .map(|x| (x.id.clone(), x.phases.clone()))
        .collect();

    println!("| hour | quarters | moved >= 1 s | >= 2 s | >= 3 s | >= 5 s |");
    println!("|---|---|---|---|---|---|");
    let mut hour = [0usize; MOVES.len()];
    let mut judged = 0usize;
    for q in 0..hours * 4 {
        let mut vehicles: HashMap<_, [u64; 4]> = HashMap::new();
        for _ in 0..quarter_steps {
            for r in sim.step(&controls) {
                vehicles.entry(r.intersection_id.clone()).or_default()[r.light.get()] +=
                    u64::from(r.vehicles);
            }
        }
        for x in &city.intersections {
            let Some(now) = in_force.get_mut(&x.id) else {
                continue;
            };
            let counts = vehicles.get(&x.id).copied().unwrap_or_default();
            let proposed = apply(now, &retime(x, &counts, window_s, &webster));
            // The first quarter moves from the city file's timings: not a quarter-to-quarter
            // move, so not counted.
            if q > 0 {
                let moved = largest_change_s(now, &proposed);
                for (i, m) in MOVES.iter().enumerate() {
                    hour[i] += usize::from(moved >= *m);
                }
                judged += 1;
            }
            controls.set_phases(x.id.clone(), proposed.clone());
            *now = proposed;
        }
        if q % 4 == 3 {
            let share = |k: usize| 100.0 * k as f64 / judged.max(1) as f64;
            println!(
                "| {:02}:00 | {} | {:.0} % | {:.0} % | {:.0} % | {:.0} % |",
                q / 4,
                judged / n.max(1),
                share(hour[0]),
                share(hour[1]),
                share(hour[2]),
                share(hour[3]),
            );
            hour = [0; MOVES.len()];
            judged = 0;
        }
    }
    Ok(())
}
