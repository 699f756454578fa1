//! `traffic query`: SQL over the archive a local run wrote (`<data dir>/archive`), on DuckDB,
//! or one of the named queries Athena runs over the AWS archive, with the same text.

use crate::local::archive;
use std::path::Path;
use traffic_archive::named::{NAMED_QUERIES, NamedQuery};
use traffic_archive::query::{Answer, Archive};

/// How an answer is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns, for a terminal.
    Table,
    /// RFC 4180, a header line first.
    Csv,
    /// A JSON array of objects, a row each.
    Json,
}

/// What to run: SQL as given, or a named query with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Any SQL over the archive's tables.
    Sql(String),
    /// A named query (`queries/NAME.sql`) and its parameters, in order.
    Named(String, Vec<String>),
}

/// Runs `query` over the archive of `data_dir`.
pub fn answer(data_dir: &Path, query: &Query) -> anyhow::Result<Answer> {
    let dir = archive::dir(data_dir);
    let archive = Archive::open(&dir)?;
    Ok(match query {
        Query::Sql(sql) => archive.query(sql, &[])?,
        Query::Named(name, params) => {
            let q = NamedQuery::get(name)?;
            anyhow::ensure!(
                params.len() == q.placeholders(),
                "{name} takes {} parameters ({}), {} given",
                q.placeholders(),
                q.parameters(),
                params.len()
            );
            archive.query(q.sql, params)?
        }
    })
}

/// The answer as `format` prints it.
pub fn print(answer: &Answer, format: QueryFormat) -> String {
    match format {
        QueryFormat::Table => answer.table(),
        QueryFormat::Csv => answer.csv(),
        QueryFormat::Json => answer.json() + "\n",
    }
}

/// The named queries, a line each: name, what it answers, its parameters.
pub fn list() -> String {
    NAMED_QUERIES
        .iter()
        .map(|q| {
            format!(
                "{}: {}\n    parameters: {}\n",
                q.name,
                q.summary(),
                q.parameters()
            )
        })
        .collect()
}
