//! [`OutputArchive`] on S3 (`ARCHIVE_BUCKET`): each closed window's outputs as three Parquet
//! objects (`PutObject`), under the keys `traffic_tables::key` gives, which the Glue tables of
//! the template read by partition projection. A window written again replaces its objects
//! with the same bytes. With no bucket configured, nothing is archived (said once in the log).
//!
//! An intersection's history reads one `window_intersections` object a window
//! (`GetObject`, [`READS_AT_ONCE`] at a time), by the key the window gives: no listing; a
//! closed window's download reads its one object.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::atomic::{AtomicBool, Ordering};
use traffic_core::IntersectionId;
use traffic_core::changes::WindowChanges;
use traffic_core::outputs::{IntersectionRow, WindowPlans, WindowTables};
use traffic_core::window::WindowKey;
use traffic_ports::{OutputArchive, PortError, PortResult};

/// The media type of the objects (Parquet's registered one).
pub const PARQUET_MEDIA_TYPE: &str = "application/vnd.apache.parquet";

/// Objects an intersection's history reads at once.
pub const READS_AT_ONCE: usize = 16;

/// The merge's outputs in an S3 bucket.
#[derive(Debug)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: Option<String>,
    said_unset: AtomicBool,
}

impl S3Archive {
    /// The archive in `bucket` through `client`; `None`: archive nothing.
    pub fn new(client: aws_sdk_s3::Client, bucket: Option<String>) -> Self {
        Self {
            client,
            bucket,
            said_unset: AtomicBool::new(false),
        }
    }

    /// Puts `objects` (key, bytes) in the bucket, one `PutObject` each.
    async fn put(&self, objects: Vec<(String, Vec<u8>)>) -> PortResult<()> {
        let Some(bucket) = self.bucket.as_deref() else {
            if !self.said_unset.swap(true, Ordering::Relaxed) {
                tracing::info!("ARCHIVE_BUCKET is not set: the merge's outputs are not archived");
            }
            return Ok(());
        };
        for (key, bytes) in objects {
            self.client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .content_type(PARQUET_MEDIA_TYPE)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| port_error(format!("writing s3://{bucket}/{key}"), e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl OutputArchive for S3Archive {
    async fn put_window(&self, tables: &WindowTables) -> PortResult<()> {
        self.put(traffic_tables::objects(tables)?).await
    }

    async fn put_plans(&self, plans: &WindowPlans) -> PortResult<()> {
        self.put(traffic_tables::plans_objects(plans)?).await
    }

    async fn put_changes(&self, changes: &WindowChanges) -> PortResult<()> {
        self.put(traffic_tables::changes_objects(changes)?).await
    }

    async fn intersection_windows(
        &self,
        id: &IntersectionId,
        windows: &[WindowKey],
    ) -> PortResult<Vec<(WindowKey, IntersectionRow)>> {
        let Some(bucket) = self.bucket.as_deref() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for chunk in windows.chunks(READS_AT_ONCE) {
            // Each window's object, or none where it was never written, in the chunk's order.
            let mut objects: Vec<Option<Vec<u8>>> = vec![None; chunk.len()];
            let mut reads = tokio::task::JoinSet::new();
            for (i, w) in chunk.iter().enumerate() {
                let key = traffic_tables::key(&traffic_tables::WINDOW_INTERSECTIONS, w);
                let get = self.client.get_object().bucket(bucket).key(&key);
                reads.spawn(async move {
                    let object = match get.send().await {
                        Ok(o) => o,
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                            return Ok((i, None));
                        }
                        Err(e) => return Err(port_error(format!("reading {key}"), e)),
                    };
                    let body = object.body.collect().await;
                    let bytes =
                        body.map_err(|e| PortError::backend(format!("reading {key}"), e))?;
                    Ok((i, Some(bytes.into_bytes().to_vec())))
                });
            }
            while let Some(done) = reads.join_next().await {
                let (i, bytes) =
                    done.map_err(|e| PortError::backend("reading the archive", e))??;
                objects[i] = bytes;
            }
            for (w, bytes) in chunk.iter().zip(objects) {
                let Some(bytes) = bytes else { continue };
                let source = format!(
                    "s3://{bucket}/{}",
                    traffic_tables::key(&traffic_tables::WINDOW_INTERSECTIONS, w)
                );
                out.extend(traffic_tables::row_in(bytes, id, &source)?.map(|r| (*w, r)));
            }
        }
        Ok(out)
    }

    async fn window_rows(&self, window: &WindowKey) -> PortResult<Option<Vec<IntersectionRow>>> {
        let Some(bucket) = self.bucket.as_deref() else {
            return Ok(None);
        };
        let key = traffic_tables::key(&traffic_tables::WINDOW_INTERSECTIONS, window);
        let object = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(port_error(format!("reading {key}"), e)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| PortError::backend(format!("reading {key}"), e))?;
        let source = format!("s3://{bucket}/{key}");
        traffic_tables::rows_in(bytes.into_bytes().to_vec(), &source).map(Some)
    }
}
