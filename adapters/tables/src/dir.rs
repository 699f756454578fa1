//! The merge's output tables in a directory: `traffic local`'s `archive/`, beside the raw
//! readings, where `traffic query` reads them.

use async_trait::async_trait;
use std::path::PathBuf;
use traffic_core::IntersectionId;
use traffic_core::changes::WindowChanges;
use traffic_core::outputs::{IntersectionRow, WindowPlans, WindowTables};
use traffic_core::window::WindowKey;
use traffic_ports::{OutputArchive, PortError, PortResult};

/// An [`OutputArchive`] writing each object as a file under `root`, through a temporary name
/// and a rename: a reader sees a window's file whole or not at all.
#[derive(Clone, Debug)]
pub struct DirArchive {
    root: PathBuf,
}

impl DirArchive {
    /// The archive under `root` (created as files are written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn put(&self, objects: Vec<(String, Vec<u8>)>) -> PortResult<()> {
        for (key, bytes) in objects {
            self.write(&key, &bytes).map_err(|e| {
                PortError::backend(format!("writing {}", self.root.join(&key).display()), e)
            })?;
        }
        Ok(())
    }

    fn write(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.root.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("parquet.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    }
}

#[async_trait]
impl OutputArchive for DirArchive {
    async fn put_window(&self, tables: &WindowTables) -> PortResult<()> {
        self.put(crate::objects(tables)?)
    }

    async fn put_plans(&self, plans: &WindowPlans) -> PortResult<()> {
        self.put(crate::plans_objects(plans)?)
    }

    async fn put_changes(&self, changes: &WindowChanges) -> PortResult<()> {
        self.put(crate::changes_objects(changes)?)
    }

    async fn intersection_windows(
        &self,
        id: &IntersectionId,
        windows: &[WindowKey],
    ) -> PortResult<Vec<(WindowKey, IntersectionRow)>> {
        let mut out = Vec::new();
        for w in windows {
            let path = self.root.join(crate::key(&crate::WINDOW_INTERSECTIONS, w));
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(PortError::backend(format!("reading {}", path.display()), e)),
            };
            let row = crate::row_in(bytes, id, &path.display().to_string())?;
            out.extend(row.map(|r| (*w, r)));
        }
        Ok(out)
    }

    async fn window_rows(&self, window: &WindowKey) -> PortResult<Option<Vec<IntersectionRow>>> {
        let path = self
            .root
            .join(crate::key(&crate::WINDOW_INTERSECTIONS, window));
        match std::fs::read(&path) {
            Ok(bytes) => crate::rows_in(bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::backend(format!("reading {}", path.display()), e)),
        }
    }
}
