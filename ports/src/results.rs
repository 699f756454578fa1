//! The merge's results per window ([`ResultStore`]) and the result events it publishes
//! ([`ResultEvents`]).

#[cfg(doc)]
use crate::Ports;
use crate::{PortResult, ResultPage};
use async_trait::async_trait;
use traffic_core::events::ResultEvent;
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};

/// Where the merge publishes the results others can subscribe to (an EventBridge bus on AWS,
/// the embedded store's `result_events` table locally): a window closed, timings changed
/// (`traffic_core::events`).
#[async_trait]
pub trait ResultEvents: Send + Sync {
    /// Publishes `events`, in order, all of them or an error: delivery is at least once (the
    /// merge publishes again what a failed call may have left out), so an adapter may send an
    /// event twice but never drops one and reports success.
    async fn publish_events(&self, events: &[ResultEvent]) -> PortResult<()>;
}

/// A [`ResultEvents`] that keeps nothing: the default of [`Ports::from_store`], for bundles
/// whose subscribers are not wired (the adapters' own bundles replace it).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResultEvents;

#[async_trait]
impl ResultEvents for NoResultEvents {
    async fn publish_events(&self, _events: &[ResultEvent]) -> PortResult<()> {
        Ok(())
    }
}

/// The merge's results per window.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Stores (or replaces) results, each under its window.
    async fn put_results(&self, results: &[WindowResult]) -> PortResult<()>;

    /// Windows of `length` starting at or after `from_ms` whose stored result is final (what
    /// a merge run needs: it reads no further back than its oldest pane).
    async fn closed_windows_from(
        &self,
        length: WindowLength,
        from_ms: i64,
    ) -> PortResult<Vec<WindowKey>>;

    /// All stored results, ordered by window length then start.
    async fn results(&self) -> PortResult<Vec<WindowResult>>;

    /// The newest `limit` results of windows of `length`, newest first (what the API serves:
    /// reading every result ever stored would grow without bound): all `limit` when as many
    /// exist, however many reads they take.
    async fn recent_results(
        &self,
        length: WindowLength,
        limit: usize,
    ) -> PortResult<Vec<WindowResult>>;

    /// One page of the results of windows of `length` starting before `before_ms` (from the
    /// newest when `None`), newest first: the public listing. One bounded read: up to `limit`
    /// windows, fewer when the store's page or byte budget filled, with where to continue
    /// whenever older windows exist; a store may read eventually consistently.
    async fn results_page(
        &self,
        length: WindowLength,
        before_ms: Option<i64>,
        limit: usize,
    ) -> PortResult<ResultPage>;

    /// Replaces the network state (every intersection over the newest window of the shortest
    /// length), for the operator's map.
    async fn put_network(&self, state: &NetworkState) -> PortResult<()>;

    /// The network state last stored, if any.
    async fn network(&self) -> PortResult<Option<NetworkState>>;
}
