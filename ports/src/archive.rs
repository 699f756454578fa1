//! Where the merge writes each closed window's outputs for history ([`OutputArchive`]): the
//! archive bucket on AWS, the data directory's `archive/` locally, as Parquet by day.

use crate::PortResult;
#[cfg(doc)]
use crate::Ports;
use async_trait::async_trait;
use traffic_core::outputs::WindowTables;

/// The archive of the merge's outputs (`traffic_core::outputs`).
#[async_trait]
pub trait OutputArchive: Send + Sync {
    /// Writes the rows of one closed window, replacing whatever an earlier run wrote for it:
    /// the same rows land under the same names in the same bytes, so a merge that writes a
    /// window again (a run redone after a failure) leaves the archive as it was.
    async fn put_window(&self, tables: &WindowTables) -> PortResult<()>;
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
}
