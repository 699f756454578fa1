//! `traffic aws-measure --intersections 1000 --minutes 30` on the emulator (issue 12): a city
//! through the real adapters and the event source mapping with the template's defaults, two
//! full panes and more, and what DynamoDB would bill for it.

mod aws_support;

use aws_support::aws_env;
use traffic_app::aws::{MeasureOptions, aws_measure};
use traffic_functions::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_of_1000_intersections_bills_at_most_20_write_and_20_read_units_per_1000_readings()
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
    assert!(m.windows_closed >= 2, "{m:?}");
    assert!(
        m.write_units_per_1000_readings <= 20.0,
        "{} write units per 1,000 readings: {:?}",
        m.write_units_per_1000_readings,
        m.by_function
    );
    assert!(
        m.read_units_per_1000_readings <= 20.0,
        "{} read units per 1,000 readings: {:?}",
        m.read_units_per_1000_readings,
        m.by_function
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}
