//! Where the merge writes each closed window's outputs for history ([`OutputArchive`]): the
//! archive bucket on AWS, the data directory's `archive/` locally, as Parquet by day.

use crate::PortResult;
#[cfg(doc)]
use crate::Ports;
use async_trait::async_trait;
use traffic_core::IntersectionId;
use traffic_core::changes::WindowChanges;
use traffic_core::outputs::{IntersectionRow, WindowPlans, WindowTables};
use traffic_core::window::WindowKey;

/// The archive of the merge's outputs (`traffic_core::outputs`).
#[async_trait]
pub trait OutputArchive: Send + Sync {
    /// Writes the rows of one closed window, replacing whatever an earlier run wrote for it:
    /// the same rows land under the same names in the same bytes, so a merge that writes a
    /// window again (a run redone after a failure) leaves the archive as it was.
    async fn put_window(&self, tables: &WindowTables) -> PortResult<()>;

    /// Writes the plans in force after a retiming round (`window_plans`) and the plans it
    /// changed (`plan_changes`, by `retiming`), replacing what an earlier run wrote for the
    /// same control window, in the same bytes when the round is redone.
    async fn put_plans(&self, plans: &WindowPlans) -> PortResult<()>;

    /// Writes what changed in a closed control window (operators' edits to `plan_changes`,
    /// alarms' steps to `alarm_events`; a table without rows is not written), replacing what
    /// an earlier run wrote for it, in the same bytes.
    async fn put_changes(&self, changes: &WindowChanges) -> PortResult<()>;

    /// `id`'s rows of `window_intersections` in `windows`: one for each window the archive
    /// holds in which it had readings, in the order of `windows` (the history of an
    /// intersection the dashboard draws). A window not archived is left out, not an error.
    async fn intersection_windows(
        &self,
        id: &IntersectionId,
        windows: &[WindowKey],
    ) -> PortResult<Vec<(WindowKey, IntersectionRow)>>;

    /// Every intersection's row of `window_intersections` in `window`, by id; `None` when the
    /// archive does not hold the window (open, not closed yet, or before the archive).
    async fn window_rows(&self, window: &WindowKey) -> PortResult<Option<Vec<IntersectionRow>>>;
}

/// An [`OutputArchive`] that keeps nothing: the default of [`Ports::from_store`], where no
/// archive is configured.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoArchive;

#[async_trait]
impl OutputArchive for NoArchive {
    async fn put_window(&self, _tables: &WindowTables) -> PortResult<()> {
        Ok(())
    }

    async fn put_plans(&self, _plans: &WindowPlans) -> PortResult<()> {
        Ok(())
    }

    async fn put_changes(&self, _changes: &WindowChanges) -> PortResult<()> {
        Ok(())
    }

    async fn intersection_windows(
        &self,
        _id: &IntersectionId,
        _windows: &[WindowKey],
    ) -> PortResult<Vec<(WindowKey, IntersectionRow)>> {
        Ok(Vec::new())
    }

    async fn window_rows(&self, _window: &WindowKey) -> PortResult<Option<Vec<IntersectionRow>>> {
        Ok(None)
    }
}
