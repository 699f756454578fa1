//! The functions over one set of ports, built in one place: `ingest` and `fault` as batch
//! handlers for the event source mapping, `merge` to run on a timer or at the end.

use crate::esm::{Mapping, MappingConfig};
use fault::FaultHandler;
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, MergeReport, Provisional};
use std::sync::Arc;
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;
use traffic_ports::Ports;

/// The names of the two stream consumers (mappings, checkpoints, statistics).
pub const CONSUMERS: [&str; 2] = ["ingest", "fault"];

/// `ingest`, `fault` and `merge` over one set of ports.
pub struct Functions {
    /// Engine parameters.
    pub cfg: EngineConfig,
    /// The ports.
    pub ports: Ports,
    /// `ingest`.
    pub ingest: Arc<IngestHandler>,
    /// `fault`.
    pub fault: Arc<FaultHandler>,
    /// `merge`.
    pub merge: MergeHandler,
}

impl Functions {
    /// The functions over `ports`; the merge reports the open windows `provisional` says;
    /// `fault` and `merge` handle alarms by `alarms` (`ALARM_HOLD_DOWN`, `ALARM_SEVERITIES`,
    /// `ALARM_RETENTION_DAYS`: a mode passes its [`traffic_functions::Config`]'s).
    pub fn from_ports(
        cfg: EngineConfig,
        provisional: Provisional,
        alarms: &AlarmPolicy,
        ports: Ports,
    ) -> Self {
        Self {
            ingest: Arc::new(IngestHandler::from_ports(cfg.clone(), &ports)),
            fault: Arc::new(
                FaultHandler::from_ports(cfg.clone(), &ports).with_alarm_policy(alarms.clone()),
            ),
            merge: MergeHandler::from_ports(cfg.clone(), provisional, &ports)
                .with_alarm_policy(alarms.clone()),
            cfg,
            ports,
        }
    }

    /// The same functions with the merge holding its lease under a fixed name (a process that
    /// alone runs the merge on its own store, and takes its lease back after a restart).
    pub fn with_merge_holder(mut self, holder: &str) -> Self {
        self.merge = self.merge.with_holder(holder);
        self
    }

    /// The two mappings, `ingest` and `fault`, each with the settings `config` gives for its
    /// name.
    pub fn mappings(&self, config: impl Fn(&str) -> MappingConfig) -> Vec<Mapping> {
        vec![
            Mapping {
                config: config(CONSUMERS[0]),
                handler: self.ingest.clone(),
            },
            Mapping {
                config: config(CONSUMERS[1]),
                handler: self.fault.clone(),
            },
        ]
    }

    /// Runs the merge once.
    pub async fn merge(&self, closing: CloseUpTo) -> anyhow::Result<MergeReport> {
        Ok(self.merge.run(closing).await?)
    }
}
