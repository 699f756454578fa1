//! `traffic aws-measure --intersections 1000 --minutes 30` on the emulator: a city
//! through the real adapters and the event source mapping with the template's defaults, two
//! full panes, and what DynamoDB would bill for it: at most 20 write and 20 read units per
//! 1,000 readings for the delta state and its merge, and the whole system's units within
//! the bounds below.

mod aws_support;

use aws_support::aws_env;
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
    };
    aws_measure(&config, opts).await?;
    let got = aws_support::receive_alarms(c, &queue, std::time::Duration::from_secs(5), |_| false)
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
