//! Configuration and ports, built once per process from the environment.
//!
//! `TRAFFIC_STORE` chooses the adapters: `embedded:<path>` opens the redb store at `<path>`
//! (the local mode, and a Lambda that only needs to start); other backends are added beside it.

use anyhow::Context;
use std::sync::Arc;
use traffic_core::EngineConfig;
use traffic_embedded::EmbeddedStore;
use traffic_ports::{AlarmPublisher, LampStore, Registry, ResultStore, StateStore, StatsStore};

/// Every port a function may need.
#[derive(Clone)]
pub struct Ports {
    /// Ingest state.
    pub state: Arc<dyn StateStore>,
    /// Intersections and timings.
    pub registry: Arc<dyn Registry>,
    /// Lamp states and alarm log.
    pub lamps: Arc<dyn LampStore>,
    /// Alarm delivery.
    pub publisher: Arc<dyn AlarmPublisher>,
    /// Merge results.
    pub results: Arc<dyn ResultStore>,
    /// Throughput and latency figures.
    pub stats: Arc<dyn StatsStore>,
}

impl Ports {
    /// All ports on one embedded store.
    pub fn embedded(store: EmbeddedStore) -> Self {
        let s = Arc::new(store);
        Self {
            state: s.clone(),
            registry: s.clone(),
            lamps: s.clone(),
            publisher: s.clone(),
            results: s.clone(),
            stats: s,
        }
    }

    /// Builds the ports `TRAFFIC_STORE` names.
    pub async fn from_env() -> anyhow::Result<Self> {
        let spec =
            std::env::var("TRAFFIC_STORE").unwrap_or_else(|_| "embedded:/tmp/traffic.redb".into());
        match spec.split_once(':') {
            Some(("embedded", path)) => Ok(Self::embedded(
                EmbeddedStore::open(path).with_context(|| format!("opening {path}"))?,
            )),
            _ => anyhow::bail!("TRAFFIC_STORE must be embedded:<path>, got {spec:?}"),
        }
    }
}

/// The engine configuration from the process environment.
pub fn engine_config_from_env() -> anyhow::Result<EngineConfig> {
    EngineConfig::from_lookup(|k| std::env::var(k).ok()).context("reading the configuration")
}
