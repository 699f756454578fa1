//! Per-record problems of one batch, summarised: a batch of 10,000 bad records (a producer
//! misconfigured) is one WARN line per kind of problem, with the count and the first
//! [`EXAMPLES`] records (sequence number, partition key, reason), not 10,000 lines.
//!
//! The functions note each problem as they meet it ([`Problems::note`]: the reason is only
//! formatted for the examples kept) and log the summary once the batch is done
//! ([`Problems::log`]); each record's own line is at DEBUG.

use std::collections::BTreeMap;
use std::fmt::Display;

/// Examples kept per kind of problem.
pub const EXAMPLES: usize = 3;

/// One record with a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Why it was set aside.
    pub reason: String,
}

/// Records of one kind of problem: how many, and the first few.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kind {
    /// Records noted.
    pub count: u64,
    /// The first [`EXAMPLES`] of them, in the order noted.
    pub examples: Vec<Example>,
}

/// The problems of one batch, by kind (a short stable name, such as `unknown intersection`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    kinds: BTreeMap<&'static str, Kind>,
}

impl Problems {
    /// Notes a record set aside for `kind`; `reason` is formatted only when kept as an example.
    pub fn note(
        &mut self,
        kind: &'static str,
        sequence_number: &dyn Display,
        partition_key: &str,
        reason: &dyn Display,
    ) {
        let k = self.kinds.entry(kind).or_default();
        k.count += 1;
        if k.examples.len() < EXAMPLES {
            k.examples.push(Example {
                sequence_number: sequence_number.to_string(),
                partition_key: partition_key.to_owned(),
                reason: reason.to_string(),
            });
        }
    }

    /// Adds `other`'s problems (its examples after this one's, up to [`EXAMPLES`]).
    pub fn merge(&mut self, other: Problems) {
        for (kind, o) in other.kinds {
            let k = self.kinds.entry(kind).or_default();
            k.count += o.count;
            let room = EXAMPLES.saturating_sub(k.examples.len());
            k.examples.extend(o.examples.into_iter().take(room));
        }
    }

    /// The records of `kind`, if any was noted.
    pub fn kind(&self, kind: &str) -> Option<&Kind> {
        self.kinds.get(kind)
    }

    /// Every kind noted, by name.
    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, &Kind)> {
        self.kinds.iter().map(|(k, v)| (*k, v))
    }

    /// Records noted, every kind.
    pub fn total(&self) -> u64 {
        self.kinds.values().map(|k| k.count).sum()
    }

    /// No problem noted.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// One WARN line per kind: `function`, `kind`, `count`, and `examples` (the first few as
    /// `<sequence number> <partition key>: <reason>`, separated by `; `).
    pub fn log(&self, function: &str) {
        for (kind, k) in &self.kinds {
            tracing::warn!(
                function,
                kind,
                count = k.count,
                examples = %Examples(&k.examples),
                "records set aside in this batch"
            );
        }
    }
}

/// Examples as one field.
struct Examples<'a>(&'a [Example]);

impl Display for Examples<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{} {:?}: {}",
                e.sequence_number, e.partition_key, e.reason
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(n: u64, kind: &'static str) -> Problems {
        let mut p = Problems::default();
        for i in 0..n {
            p.note(kind, &i, &format!("I-{i:04}"), &format_args!("reason {i}"));
        }
        p
    }

    #[test]
    fn counts_every_record_and_keeps_the_first_three_examples() {
        let mut p = noted(1000, "unknown intersection");
        p.note("future", &7, "I-0007", &"stamped after its arrival");
        let k = p.kind("unknown intersection").cloned().unwrap_or_default();
        assert_eq!(k.count, 1000);
        assert_eq!(k.examples.len(), EXAMPLES);
        assert_eq!(
            k.examples[0],
            Example {
                sequence_number: "0".into(),
                partition_key: "I-0000".into(),
                reason: "reason 0".into()
            }
        );
        assert_eq!(k.examples[2].sequence_number, "2");
        assert_eq!(p.kind("future").map(|k| k.count), Some(1));
        assert_eq!(p.total(), 1001);
        assert_eq!(p.kinds().count(), 2);
        assert!(Problems::default().is_empty());
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_earliest_examples_capped() {
        let mut a = noted(2, "wrong shard");
        a.merge(noted(5, "wrong shard"));
        a.merge(noted(1, "invalid reading"));
        let k = a.kind("wrong shard").cloned().unwrap_or_default();
        assert_eq!(k.count, 7);
        let seqs: Vec<_> = k
            .examples
            .iter()
            .map(|e| e.sequence_number.as_str())
            .collect();
        assert_eq!(seqs, ["0", "1", "0"]);
        assert_eq!(a.kind("invalid reading").map(|k| k.count), Some(1));
    }

    #[test]
    fn the_summary_is_one_line_per_kind_with_count_and_examples() {
        use crate::logging::{LogBuffer, json_subscriber};
        let buffer = LogBuffer::default();
        let subscriber =
            json_subscriber(tracing_subscriber::EnvFilter::new("warn"), buffer.clone());
        let mut p = noted(500, "unknown intersection");
        p.merge(noted(4, "invalid reading"));
        tracing::subscriber::with_default(subscriber, || p.log("ingest"));
        let text = buffer.contents();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let unknown = lines
            .iter()
            .find(|l| l["kind"] == "unknown intersection")
            .cloned()
            .unwrap_or_default();
        assert_eq!(unknown["level"], "WARN");
        assert_eq!(unknown["function"], "ingest");
        assert_eq!(unknown["count"], 500);
        assert_eq!(
            unknown["examples"],
            r#"0 "I-0000": reason 0; 1 "I-0001": reason 1; 2 "I-0002": reason 2"#
        );
    }
}
