//! The archive on one machine: what Firehose writes to S3 on AWS (infra/template.yaml,
//! `ReadingsArchive`), written under a data directory with the same table and columns, and
//! DuckDB to run the same SQL over it that Athena runs there (`queries/*.sql`).
//!
//! - [`layout`]: where the files go (`readings/dt=YYYY-MM-DD/…parquet`, as the Glue table's
//!   partition projection reads them) and how far each shard was archived;
//! - [`writer`]: a shard's records, from its first to its last sequence number, as one Parquet
//!   object per day (a record that is not a reading into `errors/`, as Firehose does);
//! - [`query`]: the tables as DuckDB views over those files, a query's answer as CSV, JSON or
//!   a text table;
//! - [`named`]: the named queries, the text of `queries/*.sql`.

pub mod layout;
pub mod named;
pub mod query;
pub mod writer;

/// What went wrong with the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing its files.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// DuckDB refused or failed a statement (a query's own errors among them).
    #[error("{0}")]
    Sql(#[from] duckdb::Error),
    /// A named query that does not exist, or the wrong number of parameters for one.
    #[error("{0}")]
    Usage(String),
}

/// The archive's results.
pub type ArchiveResult<T> = Result<T, ArchiveError>;

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io { context, source }
}
