//! The `merge` Lambda: wiring only (configuration once, clients once, the runtime).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use merge::{MergeHandler, MergeReport};
use traffic_functions::lambda::Lambda;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Lambda {
        config,
        ports,
        metrics,
    } = Lambda::start().await?;
    let merge = MergeHandler::from_ports(config.engine, config.provisional, &ports)
        .with_alarm_policy(config.alarms)
        .with_metrics(metrics);
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
