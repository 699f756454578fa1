//! The simulator through its public API: capacity, queues, retiming, speeds, lamps,
//! determinism and resuming.

use proptest::prelude::*;
use traffic_core::{City, IntersectionId, LampColour, LampState, LightIndex, Phase, Reading};
use traffic_sim::{CityConfig, Controls, DemandProfile, SimConfig, Simulator, generate_city};

const HOUR_MS: i64 = 3_600_000;
/// 2026-01-05T00:00:00Z.
const MIDNIGHT: i64 = 1_767_571_200_000;

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn light(i: i64) -> LightIndex {
    LightIndex::new(i).unwrap_or_else(|e| panic!("{e}"))
}

/// One intersection as city-file JSON: saturation of every light, timings of phases [0,2]
/// and [1,3], demand level with north–south as the major axis.
fn crossing_json(
    name: &str,
    saturation: f64,
    ns: (f64, f64),
    ew: (f64, f64),
    level: f64,
    minor_ratio: f64,
) -> String {
    let lights: Vec<String> = (0..4)
        .map(|l| format!(r#"{{"light":{l},"saturation_veh_h":{saturation}}}"#))
        .collect();
    format!(
        r#"{{"id":"{name}","lat":41.89,"lon":12.49,"lights":[{}],
           "phases":[{{"lights":[0,2],"green_s":{},"red_s":{}}},{{"lights":[1,3],"green_s":{},"red_s":{}}}],
           "demand_level":{level},"major_axis":"NS","minor_ratio":{minor_ratio},"free_flow_kmh":50}}"#,
        lights.join(","),
        ns.0,
        ns.1,
        ew.0,
        ew.1
    )
}

fn city_of(crossings: &[String]) -> City {
    City::parse(&format!(r#"{{"intersections":[{}]}}"#, crossings.join(",")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn constant(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        profile: DemandProfile::Constant,
        lamp_failure_probability: 0.0,
        ..SimConfig::default()
    }
}

fn sim(city: &City, cfg: SimConfig) -> Simulator {
    Simulator::new(city, cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn phases(ns: (f64, f64), ew: (f64, f64)) -> Vec<Phase> {
    let p = |lights: [i64; 2], (green_s, red_s): (f64, f64)| Phase {
        lights: lights.iter().map(|&l| light(l)).collect(),
        green_s,
        red_s,
        extra: Default::default(),
    };
    vec![p([0, 2], ns), p([1, 3], ew)]
}

fn of_light(readings: &[Reading], l: i64) -> Vec<&Reading> {
    readings
        .iter()
        .filter(|r| r.light.get() == l as usize)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn departures_never_exceed_saturation_times_green_share_times_period(
        saturation in 300.0f64..2500.0,
        level in 0.0f64..4000.0,
        ratio in 0.0f64..1.5,
        period_s in 1u32..=600,
        timings in prop::collection::vec(((1.0f64..120.0, 0.0f64..120.0), (1.0f64..120.0, 0.0f64..120.0)), 1..25),
    ) {
        let city = city_of(&[crossing_json("X", saturation, (30.0, 34.0), (30.0, 34.0), level, ratio)]);
        let cfg = SimConfig { period_s, ..constant(3) };
        let mut s = sim(&city, cfg);
        let x = id("X");
        let mut bound = [0.0f64; 4];
        let mut served = [0u64; 4];
        for &(ns, ew) in &timings {
            let mut c = Controls::new();
            c.set_phases(x.clone(), phases(ns, ew));
            let readings = s.step(&c);
            prop_assert_eq!(readings.len(), 4);
            for r in readings {
                let (g, red) = if r.light.get() % 2 == 0 { ns } else { ew };
                // Effective green equals displayed green with the default yellow and lost time.
                let cap = saturation * g / (g + 4.0 + red) * f64::from(period_s) / 3600.0;
                let l = r.light.get();
                // One period: at most its capacity plus the carried fraction (< 1).
                prop_assert!(f64::from(r.vehicles) < cap + 1.0, "{} > {}", r.vehicles, cap);
                bound[l] += cap;
                served[l] += u64::from(r.vehicles);
                // Cumulatively the carry never adds capacity.
                prop_assert!(served[l] as f64 <= bound[l] + 1e-6, "{} > {}", served[l], bound[l]);
            }
        }
    }
}

#[test]
fn a_queue_grows_in_the_morning_peak_and_drains_by_noon() {
    // Major approach: 900 veh/h at the peak against 1800 · 30/68 = 794 veh/h of capacity.
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        900.0,
        0.3,
    )]);
    let cfg = SimConfig {
        start_ms: MIDNIGHT + 7 * HOUR_MS,
        profile: DemandProfile::Daily,
        lamp_failure_probability: 0.0,
        ..SimConfig::default()
    };
    let mut s = sim(&city, cfg);
    let fixed = Controls::fixed(&city);
    let queue = |s: &Simulator| s.light(&id("X"), light(0)).map(|l| l.queue).unwrap_or(0);
    let mut at_0730 = 0;
    for minute in 0..(5 * 60) {
        s.step(&fixed);
        if minute == 29 {
            at_0730 = queue(&s);
        }
        if minute == 119 {
            // 09:00: the peak has built a queue well beyond one cycle's capacity.
            assert!(queue(&s) > at_0730 + 30, "{} vs {at_0730}", queue(&s));
        }
    }
    // 12:00: demand 0.62 · 900 = 560 veh/h, well under capacity: the queue is gone.
    assert!(queue(&s) < 10, "{}", queue(&s));
    // The minor approach (270 veh/h) never queued beyond a few vehicles.
    assert!(s.light(&id("X"), light(1)).map(|l| l.queue).unwrap_or(99) < 10);
}

#[test]
fn retiming_reaches_the_model_more_green_serves_more_of_a_queued_approach() {
    // North–south demand 1100 veh/h, over the 794 veh/h that 30 s of a 68 s cycle serve.
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        1100.0,
        0.3,
    )]);
    let mut fixed_sim = sim(&city, constant(11));
    let mut retimed_sim = sim(&city, constant(11));
    let fixed = Controls::fixed(&city);
    let mut retimed = Controls::new();
    // Same 68 s cycle, 46 s of green to north–south: 1218 veh/h of capacity.
    retimed.set_phases(id("X"), phases((46.0, 18.0), (14.0, 50.0)));
    let (mut a, mut b) = (0u64, 0u64);
    for _ in 0..60 {
        a += of_light(&fixed_sim.step(&fixed), 0)
            .iter()
            .map(|r| u64::from(r.vehicles))
            .sum::<u64>();
        b += of_light(&retimed_sim.step(&retimed), 0)
            .iter()
            .map(|r| u64::from(r.vehicles))
            .sum::<u64>();
    }
    assert!(b > a + 200, "retimed {b} vs fixed {a}");
    let status = retimed_sim.light(&id("X"), light(0));
    assert_eq!(status.map(|s| s.green_s), Some(46.0));
    // Both runs saw the same arrivals (common random numbers); the retimed one delays less.
    assert_eq!(fixed_sim.totals().arrived, retimed_sim.totals().arrived);
    assert!(retimed_sim.mean_delay_s_per_vehicle() < fixed_sim.mean_delay_s_per_vehicle());
}

#[test]
fn an_intersection_left_out_of_the_controls_keeps_its_last_timings() {
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        500.0,
        0.5,
    )]);
    let mut s = sim(&city, constant(1));
    let mut c = Controls::new();
    c.set_phases(id("X"), phases((40.0, 24.0), (20.0, 44.0)));
    s.step(&c);
    s.step(&Controls::new());
    let l = s.light(&id("X"), light(1));
    assert_eq!(l.map(|l| (l.green_s, l.red_s)), Some((20.0, 44.0)));
}

#[test]
fn speeds_fall_as_saturation_rises() {
    let levels = [100.0, 300.0, 500.0, 650.0, 750.0, 900.0];
    let crossings: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(i, &l)| crossing_json(&format!("X{i}"), 1800.0, (30.0, 34.0), (30.0, 34.0), l, 0.3))
        .collect();
    let city = city_of(&crossings);
    let mut s = sim(&city, constant(5));
    let fixed = Controls::fixed(&city);
    let mut weighted = vec![(0.0f64, 0u64); levels.len()];
    for _ in 0..120 {
        for r in s.step(&fixed) {
            if r.light.get() == 0 {
                let i: usize = r.intersection_id.as_str()[1..].parse().unwrap_or(0);
                weighted[i].0 += r.mean_speed_kmh * f64::from(r.vehicles);
                weighted[i].1 += u64::from(r.vehicles);
            }
        }
    }
    let means: Vec<f64> = weighted.iter().map(|(v, n)| v / *n as f64).collect();
    assert!(means.windows(2).all(|w| w[1] < w[0]), "{means:?}");
    assert!(means[0] > 48.0 && means[0] <= 50.0, "{means:?}");
    // The oversaturated approach crawls.
    assert!(means[levels.len() - 1] < 15.0, "{means:?}");
}

#[test]
fn a_reading_without_vehicles_reports_speed_zero() {
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        0.0,
        0.0,
    )]);
    let mut s = sim(&city, constant(1));
    for r in s.step(&Controls::fixed(&city)) {
        assert_eq!((r.vehicles, r.mean_speed_kmh), (0, 0.0));
    }
}

#[test]
fn a_broken_lamp_stays_broken_until_repaired_then_reads_ok() {
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        500.0,
        0.5,
    )]);
    let mut s = sim(&city, constant(1));
    let fixed = Controls::fixed(&city);
    assert!(s.break_lamp(&id("X"), light(2), LampColour::Green));
    for _ in 0..5 {
        let r = s.step(&fixed);
        assert_eq!(of_light(&r, 2)[0].lamps.green, LampState::Broken);
        assert_eq!(of_light(&r, 0)[0].lamps.green, LampState::Ok);
    }
    let mut repaired = fixed.clone();
    repaired.repair(id("X"), light(2));
    let r = s.step(&repaired);
    assert_eq!(of_light(&r, 2)[0].lamps, Default::default());
    let r = s.step(&fixed);
    assert_eq!(of_light(&r, 2)[0].lamps, Default::default());
}

#[test]
fn random_lamp_failures_persist_in_every_later_reading() {
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        500.0,
        0.5,
    )]);
    let cfg = SimConfig {
        lamp_failure_probability: 0.05,
        ..constant(9)
    };
    let mut s = sim(&city, cfg);
    let fixed = Controls::fixed(&city);
    let mut broken = [[false; 3]; 4];
    let mut failures = 0;
    for _ in 0..200 {
        for r in s.step(&fixed) {
            for (c, colour) in LampColour::ALL.into_iter().enumerate() {
                let now = r.lamps.get(colour) == LampState::Broken;
                let before = &mut broken[r.light.get()][c];
                assert!(now || !*before, "a {colour:?} lamp mended itself");
                failures += usize::from(now && !*before);
                *before = now;
            }
        }
    }
    // 800 readings at 5 %: about 40 draws, fewer distinct lamps (some hit a broken one).
    assert!(failures >= 6, "{failures}");
}

#[test]
fn the_same_seed_gives_the_same_readings_and_another_seed_others() {
    let city = generate_city(&CityConfig {
        intersections: 25,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let run = |seed: u64| {
        let cfg = SimConfig {
            seed,
            start_ms: MIDNIGHT + 8 * HOUR_MS,
            lamp_failure_probability: 0.01,
            ..SimConfig::default()
        };
        let mut s = sim(&city, cfg);
        let fixed = Controls::fixed(&city);
        (0..10).flat_map(|_| s.step(&fixed)).collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a.len(), 25 * 4 * 10);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

/// Controls that change during the run: a retiming at step 3, a repair at step 7.
fn controls_at(step: usize, city: &City) -> Controls {
    let mut c = Controls::fixed(city);
    if step >= 3 {
        c.set_phases(id("I-0005"), phases((44.0, 20.0), (16.0, 48.0)));
    }
    if step == 7 {
        c.repair(id("I-0002"), light(1));
    }
    c
}

#[test]
fn a_simulator_saved_and_restored_through_json_continues_as_the_uninterrupted_one() {
    let city = generate_city(&CityConfig {
        intersections: 30,
        seed: 4,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = SimConfig {
        seed: 77,
        start_ms: MIDNIGHT + 7 * HOUR_MS + 43 * 60_000,
        lamp_failure_probability: 0.02,
        ..SimConfig::default()
    };
    let mut whole = sim(&city, cfg.clone());
    let mut broken = sim(&city, cfg);
    for s in [&mut whole, &mut broken] {
        s.break_lamp(&id("I-0002"), light(1), LampColour::Red);
    }
    let uninterrupted: Vec<Reading> = (0..10)
        .flat_map(|i| whole.step(&controls_at(i, &city)))
        .collect();

    let mut resumed: Vec<Reading> = (0..5)
        .flat_map(|i| broken.step(&controls_at(i, &city)))
        .collect();
    let saved = serde_json::to_string(&broken).unwrap_or_default();
    drop(broken);
    let mut restored: Simulator = serde_json::from_str(&saved).unwrap_or_else(|e| panic!("{e}"));
    resumed.extend((5..10).flat_map(|i| restored.step(&controls_at(i, &city))));

    assert_eq!(resumed, uninterrupted);
    assert_eq!(restored, whole);
    // Bit for bit, including every float of the state.
    assert_eq!(
        serde_json::to_string(&restored).unwrap_or_default(),
        serde_json::to_string(&whole).unwrap_or_default()
    );
    assert_eq!(restored.now_ms(), MIDNIGHT + 7 * HOUR_MS + 53 * 60_000);
}

#[test]
fn a_corrupt_saved_state_is_refused() {
    let city = generate_city(&CityConfig {
        intersections: 2,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let s = sim(&city, SimConfig::default());
    let json = serde_json::to_string(&s).unwrap_or_default();
    let bad = json.replacen(r#""first_light":4"#, r#""first_light":3"#, 1);
    assert_ne!(bad, json);
    assert!(serde_json::from_str::<Simulator>(&bad).is_err());
}

#[test]
fn readings_follow_the_contract_and_are_stamped_at_the_end_of_the_period() {
    let city = generate_city(&CityConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let cfg = SimConfig {
        start_ms: MIDNIGHT + 8 * HOUR_MS,
        ..SimConfig::default()
    };
    let mut s = sim(&city, cfg);
    let readings = s.step(&Controls::fixed(&city));
    assert_eq!(readings.len(), s.readings_per_step());
    assert_eq!(readings.len(), 200);
    for (r, (x, l)) in readings.iter().zip(
        city.intersections
            .iter()
            .flat_map(|x| x.lights.iter().map(move |l| (x, l))),
    ) {
        assert_eq!(r.intersection_id, x.id);
        assert_eq!(r.light, l.light);
        assert_eq!(r.ts_ms, MIDNIGHT + 8 * HOUR_MS + 60_000);
        assert_eq!(r.position.map(|p| (p.lat, p.lon)), Some((x.lat, x.lon)));
        assert_eq!(Reading::parse(r.to_json().as_bytes()).as_ref(), Ok(r));
    }
    assert!(readings.iter().any(|r| r.vehicles > 0));
}

#[test]
fn no_vehicle_is_lost_arrivals_are_served_or_still_queued() {
    let city = generate_city(&CityConfig {
        intersections: 100,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = SimConfig {
        start_ms: MIDNIGHT + 7 * HOUR_MS,
        ..SimConfig::default()
    };
    let mut s = sim(&city, cfg);
    let fixed = Controls::fixed(&city);
    let mut counted = 0u64;
    for _ in 0..90 {
        counted += s
            .step(&fixed)
            .iter()
            .map(|r| u64::from(r.vehicles))
            .sum::<u64>();
    }
    let t = s.totals();
    assert_eq!(t.served, counted);
    assert_eq!(t.arrived, t.served + t.queued);
    assert!(
        t.mean_delay_s_per_vehicle() > 5.0 && t.mean_delay_s_per_vehicle() < 300.0,
        "{t:?}"
    );
}

#[test]
fn bad_controls_are_reported_by_check_and_skipped_by_step() {
    let city = city_of(&[crossing_json(
        "X",
        1800.0,
        (30.0, 34.0),
        (30.0, 34.0),
        500.0,
        0.5,
    )]);
    let mut s = sim(&city, constant(1));
    let mut c = Controls::new();
    c.set_phases(id("Y"), phases((30.0, 34.0), (30.0, 34.0)));
    assert!(s.check_controls(&c).is_err());
    let mut c = Controls::new();
    c.set_phases(id("X"), phases((-1.0, 34.0), (30.0, 34.0)));
    assert!(s.check_controls(&c).is_err());
    s.step(&c);
    assert_eq!(s.light(&id("X"), light(0)).map(|l| l.green_s), Some(30.0));
    assert_eq!(s.check_controls(&Controls::fixed(&city)), Ok(()));
}

#[test]
fn the_generated_city_passes_validation_and_round_trips_through_json() {
    let city = generate_city(&CityConfig {
        intersections: 500,
        seed: 99,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(city.validate(), Ok(()));
    let json = serde_json::to_string(&city).unwrap_or_default();
    assert_eq!(City::parse(&json), Ok(city.clone()));
    // And the simulator reads back the demand the generator wrote.
    let s = sim(&city, SimConfig::default());
    let x = &city.intersections[17];
    let d = s.demand(&x.id).unwrap_or_else(|| panic!("no demand"));
    assert_eq!(
        x.extra.get("demand_level").and_then(|v| v.as_f64()),
        Some(d.level_veh_h)
    );
}

#[test]
fn a_city_without_demand_fields_gets_demand_from_the_seed() {
    let city = City::parse(
        r#"{"intersections":[{"id":"I-0001","lat":41.85,"lon":12.60,
      "lights":[{"light":0,"saturation_veh_h":1800},{"light":1,"saturation_veh_h":1800},
                {"light":2,"saturation_veh_h":1800},{"light":3,"saturation_veh_h":1800}],
      "phases":[{"lights":[0,2],"green_s":30,"red_s":34},{"lights":[1,3],"green_s":30,"red_s":34}]}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = sim(&city, SimConfig::default()).demand(&id("I-0001"));
    let b = sim(&city, SimConfig::default()).demand(&id("I-0001"));
    assert!(a.is_some_and(|d| (150.0..=700.0).contains(&d.level_veh_h)));
    assert_eq!(a, b);
}
