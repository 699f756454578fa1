//! `traffic aws-measure --intersections 1000 --minutes 30` on the emulator: a city
//! through the real adapters and the event source mapping with the template's defaults, two
//! full panes, and what DynamoDB would bill for it: at most 20 write and 20 read units per
//! 1,000 readings for the delta state and its merge, and the whole system's units within
//! the bounds below.

use crate::support::{Meter, aws_env};
use traffic_app::aws::measure::{Measurement, is_read_operation};
use traffic_app::aws::{MeasureOptions, aws_measure};
use traffic_functions::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_city_of_1000_intersections_bills_at_most_20_write_and_20_read_state_units_per_1000_readings()
-> anyhow::Result<()> {
    let Some(env) = aws_env("measure").await else {
        return Ok(());
    };
    let config = Config::from_lookup(|_| None)?;
    // The functions' calls go through the meter, which counts them again from the wire.
    let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
    let meter = Meter::start(&endpoint)?;
    let opts = MeasureOptions {
        stream: traffic_app::aws::measure::StreamKind::Memory,
        resources: env.resources(traffic_app::aws::measure::TEMPLATE.shards),
        city: traffic_sim::generate_city(&traffic_sim::CityConfig {
            intersections: 1_000,
            seed: 1,
            ..traffic_sim::CityConfig::default()
        })?,
        seed: 1,
        minutes: 30,
        start_ms: None,
        functions_endpoint: Some(meter.endpoint.clone()),
    };
    let r = opts.resources.clone();
    let lights: u64 = opts
        .city
        .intersections
        .iter()
        .map(|x| x.lights.len() as u64)
        .sum();
    let m = aws_measure(&config, opts).await?;
    println!("{}", serde_json::to_string(&m)?);
    assert_eq!(m.readings, lights * 30);
    // What the run counted agrees with the meter's count of the same calls, function by
    // function, within 5 %.
    agrees_with_the_meter(&m, &meter)?;
    // Thirty minutes from a whole hour: the first pane closes at minute 30's merge; the
    // second would need readings past its end plus the lateness.
    assert!(m.windows_closed >= 1, "{m:?}");
    // The targets on the state's design: the delta state that ingest commits and the
    // merge's rollups, marks and lease.
    let state = m.units_per_1000_readings_of(&["ingest:state", "merge:state"]);
    assert!(
        state.write_units <= 20.0 && state.read_units <= 20.0,
        "the delta state and its merge: {state:?} per 1,000 readings: {:?}",
        m.per_1000_readings_by_table
    );
    // The whole system's reads are within the same target; so are its writes but for the
    // merge's retiming, which in a 30-minute run is the first of a new city: every
    // intersection moves from the city file's timings (2 write units each, once). Later
    // quarters write only the intersections that move by WEBSTER_MIN_CHANGE_S (the README's
    // "What it costs" has the longer runs).
    assert!(
        m.read_units_per_1000_readings <= 20.0,
        "{} read units per 1,000 readings: {:?}",
        m.read_units_per_1000_readings,
        m.per_1000_readings_by_table
    );
    let retiming = m.units_per_1000_readings_of(&["merge:registry"]);
    assert!(
        m.write_units_per_1000_readings - retiming.write_units <= 20.0,
        "{} write units per 1,000 readings, {} of them the retiming: {:?}",
        m.write_units_per_1000_readings,
        retiming.write_units,
        m.per_1000_readings_by_table
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn aws_measure_publishes_lamp_alarms_at_the_configured_severities() -> anyhow::Result<()> {
    let Some(env) = aws_env("measuresev").await else {
        return Ok(());
    };
    let c = &env.clients;
    let resources = env.resources(1);
    // The topic exists before the run (setup keeps what exists), with a queue on it.
    let topic = traffic_aws::setup::ensure_topic(c, &resources.topic).await?;
    let queue = traffic_aws::setup::ensure_queue(c, &format!("{}-sev", env.prefix)).await?;
    traffic_aws::setup::subscribe_queue(c, &topic, &queue).await?;
    let config = Config::from_lookup(|k| {
        (k == "ALARM_SEVERITIES").then(|| "red=minor,yellow=minor,green=minor".to_owned())
    })?;
    // The measurement's lamps break with probability 0.0002 per reading: this city and seed
    // break a few in ten minutes.
    let opts = MeasureOptions {
        stream: traffic_app::aws::measure::StreamKind::Memory,
        resources: resources.clone(),
        city: traffic_sim::generate_city(&traffic_sim::CityConfig {
            intersections: 400,
            seed: 1,
            ..traffic_sim::CityConfig::default()
        })?,
        seed: 1,
        minutes: 10,
        start_ms: None,
        functions_endpoint: None,
    };
    aws_measure(&config, opts).await?;
    let got =
        crate::support::receive_alarms(c, &queue, std::time::Duration::from_secs(5), |_| false)
            .await?;
    anyhow::ensure!(!got.is_empty(), "no alarm published");
    for d in &got {
        anyhow::ensure!(
            d.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("[minor]"))
                && d.attributes.get("severity").map(String::as_str) == Some("minor"),
            "{d:?}"
        );
    }
    env.cleanup(&resources, Some(&topic), &[&queue]).await;
    Ok(())
}

/// Each function's write and read units as the run counted them against the meter's count of
/// its calls (`traffic-<function>` in their user agent): within 5 % each, and, where they
/// differ, a table by operation that says where.
fn agrees_with_the_meter(m: &Measurement, meter: &Meter) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut table = String::from("function  operation  run W  meter W  run R  meter R\n");
    for (function, usage) in &m.by_function {
        let metered = meter.units_by_operation(&format!("traffic-{function}"))?;
        let mut ops: std::collections::BTreeMap<String, (f64, f64, f64, f64)> =
            std::collections::BTreeMap::new();
        for (key, u) in &usage.by_operation {
            let op = key.split_once(':').map_or(key.as_str(), |(_, op)| op);
            let e = ops.entry(op.to_owned()).or_default();
            if is_read_operation(op) {
                e.2 += u.units;
            } else {
                e.0 += u.units;
            }
        }
        for (op, (w, r)) in &metered {
            let e = ops.entry(op.clone()).or_default();
            e.1 += w;
            e.3 += r;
        }
        for (op, (rw, mw, rr, mr)) in &ops {
            table.push_str(&format!(
                "{function}  {op}  {rw:.1}  {mw:.1}  {rr:.1}  {mr:.1}\n"
            ));
            if (rw - mw).abs() + (rr - mr).abs() > 0.0 {
                // Where they differ, the meter's count by table, and the run's.
                let run: Vec<_> = usage
                    .by_operation
                    .iter()
                    .filter(|(k, _)| k.ends_with(&format!(":{op}")))
                    .map(|(k, u)| format!("{k} {:.1}", u.units))
                    .collect();
                let by_table = meter.units_of(&format!("traffic-{function}"), op)?;
                table.push_str(&format!("    run {run:?}, meter {by_table:?}\n"));
            }
        }
        let (mw, mr): (f64, f64) = metered
            .values()
            .fold((0.0, 0.0), |(w, r), (a, b)| (w + a, r + b));
        for (what, run, metered) in [
            ("write", usage.write_units, mw),
            ("read", usage.read_units, mr),
        ] {
            if (run - metered).abs() > 0.05 * metered.max(1.0) {
                problems.push(format!(
                    "{function}: {run:.1} {what} units counted, the meter {metered:.1}"
                ));
            }
        }
    }
    println!("{table}");
    anyhow::ensure!(problems.is_empty(), "{problems:?}\n{table}");
    Ok(())
}
