//! `traffic aws-local`: the whole system against AWS's APIs at `AWS_ENDPOINT_URL` (or AWS):
//! resources created if missing, the simulator, both mappings and the merge timer.

use super::setup::{env_lines, setup};
use super::simulate::{run_simulator, sim_config};
use crate::driver::SimDriver;
use crate::runner::{Runner, RunnerOptions};
use crate::stop::Stop;
use std::time::Duration;
use traffic_aws::AwsClients;
use traffic_aws::kinesis::KinesisSink;
use traffic_aws::setup::Resources;
use traffic_core::City;
use traffic_functions::Config;

/// What `traffic aws-local` runs.
#[derive(Clone, Debug)]
pub struct AwsLocalOptions {
    /// The resources.
    pub resources: Resources,
    /// The city.
    pub city: City,
    /// Seed of the traffic.
    pub seed: u64,
    /// Only consume the stream (someone else runs `traffic simulate`).
    pub no_simulator: bool,
    /// Simulated seconds per wall second for the built-in simulator.
    pub speedup: f64,
    /// Probability that a reading breaks one of its light's lamps.
    pub failure_probability: f64,
    /// How the mappings read and the merge runs.
    pub runner: RunnerOptions,
    /// Stop after this many simulated periods.
    pub steps: Option<u64>,
}

/// `traffic aws-local`; returns what the mappings and the merge did, and the DynamoDB
/// requests made.
pub async fn aws_local(
    config: &Config,
    opts: AwsLocalOptions,
    mut stop: Stop,
) -> anyhow::Result<serde_json::Value> {
    let clients = AwsClients::from_env().await?;
    let (created, _) = setup(&clients, &opts.resources, &opts.city, &config.engine).await?;
    for line in env_lines(&created) {
        eprintln!("{line}");
    }
    let aws = config.aws_ports_on(&clients, created.names.clone());
    let stream = &opts.resources.stream;
    let runner = Runner::start(
        config.engine.clone(),
        aws.ports.clone(),
        &clients,
        stream,
        // `fault` and `merge` handle alarms as the configuration says.
        RunnerOptions {
            alarms: config.alarms.clone(),
            ..opts.runner.clone()
        },
    )
    .await?;
    eprintln!("traffic aws-local on {stream}: Ctrl-C stops");
    if opts.no_simulator {
        stop.wait().await;
    } else {
        let sim = sim_config(
            opts.seed,
            None,
            opts.failure_probability,
            &config.engine.webster,
            opts.steps,
            opts.speedup,
        );
        let period = Duration::from_secs_f64(f64::from(sim.period_s) / opts.speedup.max(1e-3));
        let driver = SimDriver::new(
            &opts.city,
            sim,
            KinesisSink::new(clients.kinesis.clone(), stream),
            aws.ports.registry.clone(),
            aws.ports.lamps.clone(),
        )?;
        let sent = run_simulator(driver, period, opts.steps, &[], stop.clone()).await?;
        runner.wait_for_records(sent, Duration::from_secs(60)).await;
    }
    let progress = runner.progress().snapshot();
    let merges = runner.merges().runs();
    runner.stop().await;
    Ok(serde_json::json!({
        "mappings": progress,
        "merge_runs": merges,
        "dynamodb": aws.store.metrics().snapshot(),
    }))
}
