//! The named queries: the text of `queries/*.sql`, which the template's
//! `AWS::Athena::NamedQuery` resources hold too, so that `traffic query --named` and Athena
//! run the same SQL.

use crate::{ArchiveError, ArchiveResult};

/// A named query: its name and its SQL, with `?` for each parameter (which its header's
/// `-- Parameters:` line describes, in order).
#[derive(Clone, Copy, Debug)]
pub struct NamedQuery {
    /// The file's stem, the named query's name in Athena.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// The named queries of `queries/`, by file stem, each with the file's text.
macro_rules! named_queries {
    ($($name:literal),* $(,)?) => {
        [$(NamedQuery {
            name: $name,
            sql: include_str!(concat!("../../../queries/", $name, ".sql")),
        }),*]
    };
}

/// Every named query, by name.
pub const NAMED_QUERIES: [NamedQuery; 4] = named_queries![
    "before-and-after",
    "lamp-failures",
    "top10-by-hour-of-day",
    "volumes-by-15-minutes",
];

impl NamedQuery {
    /// The named query called `name`, or an error listing them.
    pub fn get(name: &str) -> ArchiveResult<NamedQuery> {
        NAMED_QUERIES
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| {
                ArchiveError::Usage(format!(
                    "no named query {name:?}; they are {}",
                    NAMED_QUERIES.map(|q| q.name).join(", ")
                ))
            })
    }

    /// Its header (the leading `--` lines) as one line of text.
    fn header(&self) -> String {
        let lines: Vec<&str> = self
            .sql
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| l.trim_start_matches('-').trim())
            .collect();
        lines.join(" ")
    }

    /// What its header says of its parameters (`intersection id ('I-0001'), first day
    /// ('2026-01-05'), ...`).
    pub fn parameters(&self) -> String {
        self.header()
            .split_once("Parameters:")
            .map_or(String::new(), |(_, p)| p.trim().to_owned())
    }

    /// How many `?` placeholders its SQL has (outside comments; the queries hold no `?` in
    /// a string).
    pub fn placeholders(&self) -> usize {
        self.sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| l.matches('?').count())
            .sum()
    }

    /// What it answers: its header's first sentence (up to the first `:` or `.`).
    pub fn summary(&self) -> String {
        let text = self.header();
        let end = text.find([':', '.']).unwrap_or(text.len());
        text[..end].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_queries_is_a_named_query_and_names_its_parameters() -> anyhow::Result<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
        let mut files: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        files.sort();
        let names: Vec<&str> = NAMED_QUERIES.iter().map(|q| q.name).collect();
        assert_eq!(files, names);
        for q in NAMED_QUERIES {
            let examples = q.parameters().matches("('").count();
            assert_eq!(examples, q.placeholders(), "{}", q.name);
        }
        Ok(())
    }

    #[test]
    fn an_unknown_name_lists_the_named_queries() {
        let e = NamedQuery::get("nope").map(|q| q.name);
        assert!(
            matches!(&e, Err(ArchiveError::Usage(m)) if m.contains("lamp-failures")),
            "{e:?}"
        );
    }
}
