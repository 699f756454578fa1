//! The integration tests that need no AWS (handlers with real event JSON, the fault
//! scenarios, replay, the local runner, the command line); one binary, so that they link once.

mod support;

mod alarm_lifecycle;
mod batch_logs;
mod cli;
mod clock_drift;
mod events;
mod fault_flapping;
mod handlers;
mod health;
mod local;
mod metrics_emf;
mod ports;
mod region;
mod replay;
mod routing;
mod scenarios;
mod stalls;
mod suite;
