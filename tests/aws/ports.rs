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

/// The stream laws (`traffic_ports::contract::source`) on a Kinesis stream of two shards;
/// `tests/system/ports.rs` runs them on the embedded log and the stream in memory.
struct KinesisFeed {
    source: traffic_aws::KinesisSource,
    sink: traffic_aws::kinesis::KinesisSink,
    _env: AwsEnv,
}

#[async_trait::async_trait]
impl traffic_ports::contract::source::Feed for KinesisFeed {
    fn source(&self) -> &dyn traffic_ports::RecordSource {
        &self.source
    }

    async fn put(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()> {
        let entry = traffic_aws::kinesis::Entry {
            partition_key: key.to_owned(),
            data,
        };
        self.sink.put(&[entry]).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_kinesis_stream_reads_each_shard_in_order_from_the_oldest_and_after_any()
-> anyhow::Result<()> {
    let env = aws_env("source-order")
        .await
        .ok_or_else(|| anyhow::anyhow!("no AWS endpoint"))?;
    let stream = env.resources(2).stream;
    traffic_aws::setup::ensure_stream(&env.clients, &stream, 2).await?;
    let feed = KinesisFeed {
        source: traffic_aws::KinesisSource::new(&env.clients, &stream).await?,
        sink: traffic_aws::kinesis::KinesisSink::new(env.clients.kinesis.clone(), &stream),
        _env: env,
    };
    traffic_ports::contract::source::each_shard_reads_its_records_in_order_from_the_oldest_and_after_any(&feed).await
}
