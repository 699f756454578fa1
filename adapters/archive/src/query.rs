//! The archive's tables as DuckDB sees them, and a query's answer as CSV, JSON or a table.
//!
//! `readings` is a view over `readings/dt=*/**.parquet` with `dt` from the folder names, a
//! string as in the Glue table (an empty table of the same columns before anything was
//! archived). Values come out as Athena prints them: timestamps `2026-01-05 07:00:00.000`,
//! numbers as numbers, NULL as an empty CSV cell or JSON `null`.

use crate::ArchiveResult;
use crate::layout::{READINGS, table_files};
use chrono::DateTime;
use duckdb::types::{TimeUnit, ValueRef};
use duckdb::{Connection, params_from_iter};
use serde_json::Value;
use std::path::Path;

/// The readings table's columns, as the Glue table declares them (`dt` last, the partition).
pub const READINGS_COLUMNS: &str = "intersection_id VARCHAR, light INTEGER, ts TIMESTAMP, \
     vehicles INTEGER, mean_speed_kmh DOUBLE, lamps STRUCT(red VARCHAR, yellow VARCHAR, green VARCHAR), \
     lat DOUBLE, lon DOUBLE, dt VARCHAR";

/// The columns of one of the merge's output tables as DuckDB declares them (`dt` last), from
/// the Glue types of `traffic_tables`.
fn duckdb_columns(columns: &[(&str, &str)]) -> String {
    let mut out: Vec<String> = columns
        .iter()
        .map(|(name, glue)| {
            let t = match *glue {
                "string" => "VARCHAR",
                "timestamp" => "TIMESTAMP",
                "bigint" => "BIGINT",
                "int" => "INTEGER",
                "boolean" => "BOOLEAN",
                "array<bigint>" => "BIGINT[]",
                "double" => "DOUBLE",
                other => other,
            };
            format!("{name} {t}")
        })
        .collect();
    out.push("dt VARCHAR".to_owned());
    out.join(", ")
}

/// An archive opened for queries.
pub struct Archive {
    conn: Connection,
}

/// A query's answer: its columns and its rows, each value as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each a value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Archive {
    /// The archive under `dir` (which may hold nothing yet).
    pub fn open(dir: &Path) -> ArchiveResult<Self> {
        let conn = Connection::open_in_memory()?;
        let outputs = traffic_tables::ALL_TABLES.map(|t| (t.name, duckdb_columns(t.columns)));
        let tables = std::iter::once((READINGS, READINGS_COLUMNS.to_owned())).chain(outputs);
        for (name, columns) in tables {
            if table_files(dir, name)?.is_empty() {
                conn.execute_batch(&format!("CREATE TABLE {name} ({columns})"))?;
                continue;
            }
            // Any depth under a day's folder: Firehose adds folders of its own there where
            // its prefix names no time, and Athena reads a partition's folder recursively.
            let glob = dir
                .join(name)
                .join("**")
                .join("*.parquet")
                .to_string_lossy()
                .replace('\'', "''");
            conn.execute_batch(&format!(
                "CREATE VIEW {name} AS SELECT * FROM read_parquet('{glob}', \
                 hive_partitioning = true, hive_types = {{'dt': VARCHAR}})"
            ))?;
        }
        Ok(Self { conn })
    }

    /// Runs `sql` with `params` for its `?` placeholders, in order, each a string (DuckDB
    /// casts it where the query compares or casts it).
    pub fn query(&self, sql: &str, params: &[String]) -> ArchiveResult<Answer> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        let columns: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        let mut out = Answer {
            columns,
            rows: Vec::new(),
        };
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(out.columns.len());
            for i in 0..out.columns.len() {
                values.push(json_value(row.get_ref(i)?));
            }
            out.rows.push(values);
        }
        Ok(out)
    }
}

/// A DuckDB value as JSON: NULL, booleans, numbers and strings as themselves, timestamps as
/// Athena prints them, anything else as DuckDB's own text of it.
fn json_value(v: ValueRef<'_>) -> Value {
    primitive(v).unwrap_or_else(|| owned_json(v.to_owned()))
}

/// A value that is not nested, as JSON; `None` for a nested one.
fn primitive(v: ValueRef<'_>) -> Option<Value> {
    Some(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Boolean(b) => Value::Bool(b),
        ValueRef::TinyInt(n) => n.into(),
        ValueRef::SmallInt(n) => n.into(),
        ValueRef::Int(n) => n.into(),
        ValueRef::BigInt(n) => n.into(),
        ValueRef::UTinyInt(n) => n.into(),
        ValueRef::USmallInt(n) => n.into(),
        ValueRef::UInt(n) => n.into(),
        ValueRef::UBigInt(n) => n.into(),
        ValueRef::HugeInt(n) => {
            i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), Value::from)
        }
        ValueRef::Float(x) => {
            serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number)
        }
        ValueRef::Double(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        // Exact in its text; as JSON, the nearest double (as Athena's JSON gives it).
        ValueRef::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Timestamp(unit, n) => Value::String(timestamp(unit, n)),
        ValueRef::Date32(days) => Value::String(
            DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                .map_or_else(|| days.to_string(), |t| t.format("%Y-%m-%d").to_string()),
        ),
        _ => return None,
    })
}

/// A nested value (a struct such as `lamps`, a list, an enum) as JSON: objects, arrays and
/// strings; anything else as DuckDB's own text of it.
fn owned_json(v: duckdb::types::Value) -> Value {
    use duckdb::types::Value as V;
    match v {
        V::Struct(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), owned_json(v.clone())))
                .collect(),
        ),
        V::List(items) | V::Array(items) => {
            Value::Array(items.into_iter().map(owned_json).collect())
        }
        V::Enum(s) => Value::String(s),
        V::Union(inner) => owned_json(*inner),
        other => {
            primitive(ValueRef::from(&other)).unwrap_or_else(|| Value::String(format!("{other:?}")))
        }
    }
}

/// A timestamp as Athena prints one: `2026-01-05 07:00:00.000`.
fn timestamp(unit: TimeUnit, n: i64) -> String {
    let micros = match unit {
        TimeUnit::Second => n.saturating_mul(1_000_000),
        TimeUnit::Millisecond => n.saturating_mul(1000),
        TimeUnit::Microsecond => n,
        TimeUnit::Nanosecond => n / 1000,
    };
    DateTime::from_timestamp_micros(micros).map_or_else(
        || n.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
    )
}

impl Answer {
    /// RFC 4180 CSV: a header line, a line a row; strings quoted when they must be, NULL empty.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let line = |cells: Vec<String>| cells.join(",") + "\r\n";
        out.push_str(&line(self.columns.iter().map(|c| cell(c)).collect()));
        for row in &self.rows {
            out.push_str(&line(row.iter().map(|v| cell(&text(v))).collect()));
        }
        out
    }

    /// A JSON array of objects, a row each, its members in the columns' order.
    pub fn json(&self) -> String {
        let keys: Vec<String> = self
            .columns
            .iter()
            .map(|c| Value::String(c.clone()).to_string())
            .collect();
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let members: Vec<String> = keys
                    .iter()
                    .zip(row)
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            })
            .collect();
        format!("[{}]", rows.join(","))
    }

    /// A text table with aligned columns (numbers to the right), for a terminal.
    pub fn table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(text).collect())
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.columns[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().all(|r| r[i].is_number() || r[i].is_null()))
            .collect();
        let fmt = |values: &[String]| -> String {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if numeric[i] {
                        format!("{v:>w$}", w = widths[i])
                    } else {
                        format!("{v:<w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = fmt(&self.columns) + "\n";
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        for r in &cells {
            out.push_str(&fmt(r));
            out.push('\n');
        }
        out.push_str(&format!("({} rows)\n", self.rows.len()));
        out
    }
}

/// A value as text: strings as themselves, NULL empty, the rest as JSON writes them.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
