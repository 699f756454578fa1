//! The port-contract suite (`traffic_ports::contract`) on DynamoDB (moto, or the endpoint in
//! `AWS_ENDPOINT_URL`): every case on tables of its own. `tests/system/ports.rs` runs the same
//! cases on the embedded store.

use crate::support::{AwsEnv, aws_env};
use traffic_aws::DynamoStore;
use traffic_aws::setup::Resources;

/// The case's endpoint and tables, kept for the case (an emulator is thrown away with its
/// tables, as the other tests here leave theirs).
#[allow(dead_code)]
struct Tables {
    env: AwsEnv,
    resources: Resources,
}

/// A store on fresh tables named after the case.
async fn fresh(case: &'static str) -> anyhow::Result<(DynamoStore, Tables)> {
    let env = aws_env(case)
        .await
        .ok_or_else(|| anyhow::anyhow!("{case}: no AWS endpoint"))?;
    let (r, _, store) = env.fresh_store().await?;
    Ok((store, Tables { env, resources: r }))
}

traffic_ports::port_contract!(
    #[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
    store = fresh
);
