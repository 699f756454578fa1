//! The `merge` Lambda: wiring only (configuration once, clients once, the runtime).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use merge::{MergeHandler, MergeReport};
use traffic_functions::lambda::Lambda;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let lambda = Lambda::start().await?;
    let merge = MergeHandler::from_ports(
        lambda.config.engine,
        lambda.config.provisional,
        &lambda.ports,
    )
    .with_alarm_policy(lambda.config.alarms)
    .with_metrics(lambda.metrics);
    let merge = &merge;
    run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let report: MergeReport = merge.handle(&event.payload).await?;
            Ok::<_, Error>(serde_json::json!({
                "closed": report.closed.len(),
                "provisional": report.provisional,
                "retimed": report.retimed,
                "kept": report.retiming_kept,
                "steady": report.retiming_steady,
                "limited": report.retiming_limited,
            }))
        },
    ))
    .await
}
