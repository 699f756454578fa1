//! Where the archive's files go under its directory, as on S3 under the archive bucket:
//!
//! ```text
//! readings/dt=2026-01-05/shardId-000000000000-00000000000000000001-00000000000000004000.parquet
//! errors/readings/dt=2026-01-05/shardId-000000000000-00000000000000004001-00000000000000004001.jsonl
//! ```
//!
//! A file holds one shard's records from its first to its last sequence number (both in its
//! name), so a range written again after a crash lands on the same name, and the names say
//! how far each shard was archived ([`archived_up_to`]).

use crate::{ArchiveResult, io};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The readings table's folder under the archive's directory.
pub const READINGS: &str = "readings";
/// Where records that are not readings go, as Firehose's error output.
pub const ERRORS: &str = "errors/readings";

/// The file of `shard`'s records `first..=last` of day `dt` (`2026-01-05`) under `root`
/// (the archive's directory, or its `errors/readings`), with `extension`.
pub fn file(root: &Path, dt: &str, shard: &str, first: u64, last: u64, extension: &str) -> PathBuf {
    root.join(format!("dt={dt}"))
        .join(format!("{shard}-{first:020}-{last:020}.{extension}"))
}

/// A file's shard and last sequence number, from its name.
fn parse(name: &str) -> Option<(String, u64)> {
    let stem = name.rsplit_once('.')?.0;
    let (rest, last) = stem.rsplit_once('-')?;
    let (shard, first) = rest.rsplit_once('-')?;
    first.parse::<u64>().ok()?;
    Some((shard.to_owned(), last.parse().ok()?))
}

/// Per shard, the last sequence number some file of `dir` (readings or errors) holds.
pub fn archived_up_to(dir: &Path) -> ArchiveResult<BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for root in [dir.join(READINGS), dir.join(ERRORS)] {
        if !root.exists() {
            continue;
        }
        let days = std::fs::read_dir(&root).map_err(io(format!("listing {}", root.display())))?;
        for day in days {
            let day = day
                .map_err(io(format!("listing {}", root.display())))?
                .path();
            if !day.is_dir() {
                continue;
            }
            let files =
                std::fs::read_dir(&day).map_err(io(format!("listing {}", day.display())))?;
            for f in files {
                let f = f.map_err(io(format!("listing {}", day.display())))?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") {
                    continue;
                }
                if let Some((shard, last)) = parse(&name) {
                    let at = out.entry(shard).or_insert(last);
                    *at = (*at).max(last);
                }
            }
        }
    }
    Ok(out)
}

/// Every Parquet file of the readings table, at any depth under its day folders, sorted.
pub fn readings_files(dir: &Path) -> ArchiveResult<Vec<PathBuf>> {
    table_files(dir, READINGS)
}

/// Every Parquet file of `table` (its folder under the archive's directory), at any depth
/// under its day folders, sorted.
pub fn table_files(dir: &Path, table: &str) -> ArchiveResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut folders = vec![dir.join(table)];
    // Bounded by the tree: each folder is listed once.
    while let Some(folder) = folders.pop() {
        if !folder.is_dir() {
            continue;
        }
        let entries =
            std::fs::read_dir(&folder).map_err(io(format!("listing {}", folder.display())))?;
        for e in entries {
            let p = e
                .map_err(io(format!("listing {}", folder.display())))?
                .path();
            if p.is_dir() {
                folders.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_name_says_its_shard_and_last_sequence_number() {
        let f = file(
            Path::new("a"),
            "2026-01-05",
            "shardId-000000000001",
            7,
            42,
            "parquet",
        );
        assert_eq!(
            f,
            Path::new(
                "a/dt=2026-01-05/shardId-000000000001-00000000000000000007-00000000000000000042.parquet"
            )
        );
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(parse(&name), Some(("shardId-000000000001".to_owned(), 42)));
        assert_eq!(parse("notes.txt"), None);
    }

    #[test]
    fn how_far_each_shard_was_archived_is_the_largest_last_number_of_its_files()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for (root, dt, shard, first, last) in [
            (READINGS, "2026-01-05", "shardId-000000000000", 1, 10),
            (READINGS, "2026-01-06", "shardId-000000000000", 11, 20),
            (ERRORS, "2026-01-06", "shardId-000000000000", 21, 21),
            (READINGS, "2026-01-05", "shardId-000000000001", 1, 5),
        ] {
            let f = file(&dir.path().join(root), dt, shard, first, last, "parquet");
            std::fs::create_dir_all(f.parent().unwrap_or(dir.path()))?;
            std::fs::write(f, b"")?;
        }
        let got = archived_up_to(dir.path())?;
        assert_eq!(got.get("shardId-000000000000"), Some(&21));
        assert_eq!(got.get("shardId-000000000001"), Some(&5));
        assert_eq!(readings_files(dir.path())?.len(), 3);
        Ok(())
    }
}
