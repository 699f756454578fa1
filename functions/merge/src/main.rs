//! The `merge` Lambda: wiring only (tracing, configuration, ports, the runtime).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use merge::{Merge, MergeReport, Provisional};
use traffic_functions::init_tracing;
use traffic_functions::wiring::{Ports, engine_config_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = engine_config_from_env()?;
    let provisional: Provisional = std::env::var("TRAFFIC_PROVISIONAL")
        .map(|s| s.parse())
        .unwrap_or(Ok(Provisional::All))?;
    let ports = Ports::from_env().await?;
    let merge = Merge {
        cfg: &cfg,
        provisional,
        state: ports.state.as_ref(),
        registry: ports.registry.as_ref(),
        results: ports.results.as_ref(),
        stream: ports.stream.as_deref(),
    };
    let merge = &merge;
    run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let report: MergeReport = merge.handle(&event.payload).await?;
            Ok::<_, Error>(serde_json::json!({
                "closed": report.closed.len(),
                "provisional": report.provisional,
                "retimed": report.retimed,
            }))
        },
    ))
    .await
}
