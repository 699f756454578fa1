//! [`OutputArchive`] on S3 (`ARCHIVE_BUCKET`): each closed window's outputs as three Parquet
//! objects (`PutObject`), under the keys `traffic_tables::key` gives, which the Glue tables of
//! the template read by partition projection. A window written again replaces its objects
//! with the same bytes. With no bucket configured, nothing is archived (said once in the log).

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::atomic::{AtomicBool, Ordering};
use traffic_core::outputs::WindowTables;
use traffic_ports::{OutputArchive, PortError, PortResult};

/// The media type of the objects (Parquet's registered one).
pub const PARQUET_MEDIA_TYPE: &str = "application/vnd.apache.parquet";

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
}

#[async_trait]
impl OutputArchive for S3Archive {
    async fn put_window(&self, tables: &WindowTables) -> PortResult<()> {
        let Some(bucket) = self.bucket.as_deref() else {
            if !self.said_unset.swap(true, Ordering::Relaxed) {
                tracing::info!("ARCHIVE_BUCKET is not set: the merge's outputs are not archived");
            }
            return Ok(());
        };
        let objects = traffic_tables::objects(tables)
            .map_err(|e| PortError::backend(format!("encoding {}", tables.window), e))?;
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
