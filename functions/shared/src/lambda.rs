//! What every Lambda `main` does alike: [`Lambda::start`] reads the configuration once, starts
//! logging as it says and builds the AWS ports and the metric sink it names; [`serve_batches`]
//! runs a [`BatchHandler`] on the Kinesis batches the runtime delivers.

use crate::{BatchHandler, Config, Metrics, init_tracing_with};
use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use traffic_ports::Ports;

/// What a Lambda function starts from, built once per process.
pub struct Lambda {
    /// The configuration, from the environment.
    pub config: Config,
    /// The AWS ports the configuration names.
    pub ports: Ports,
    /// Where metric lines go, as the configuration says.
    pub metrics: Metrics,
}

impl Lambda {
    /// Reads the configuration from the environment, starts logging (at `info` unless a
    /// variable sets the level), and builds the ports and the metric sink.
    pub async fn start() -> Result<Self, Error> {
        let config = Config::from_env()?;
        init_tracing_with("info", &config.log);
        let ports = config.aws_ports().await?.ports;
        let metrics = Metrics::from_config(&config);
        Ok(Self {
            config,
            ports,
            metrics,
        })
    }
}

/// Serves `handler` on the Kinesis batches the Lambda runtime delivers, answering each with
/// its partial batch response.
pub async fn serve_batches(handler: &impl BatchHandler) -> Result<(), Error> {
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(handler.handle(&event.payload).await)
        },
    ))
    .await
}
