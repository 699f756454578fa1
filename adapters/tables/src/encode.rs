//! One table's rows of one window as a Parquet file (one row group, Snappy), through the
//! parquet crate's column writers.

use crate::{
    ALARM_EVENTS, PLAN_CHANGES, Table, WINDOW_INTERSECTIONS, WINDOW_PLANS, WINDOW_RANKINGS, WINDOWS,
};
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::sync::Arc;
use traffic_core::changes::{AlarmEventRow, PlanChangeRow};
use traffic_core::outputs::{WindowPlans, WindowTables};
use traffic_core::window::WindowKey;

/// One column's values, in row order.
enum Column {
    /// `string`, null where `None`.
    Text(Vec<Option<ByteArray>>),
    /// `timestamp`, ms since the epoch, UTC (stored without a zone, as Athena's are).
    Timestamp(Vec<i64>),
    /// `bigint`.
    Long(Vec<i64>),
    /// `int`.
    Int(Vec<i32>),
    /// `boolean`.
    Bool(Vec<bool>),
    /// `double`, null where `None`.
    Double(Vec<Option<f64>>),
    /// `array<bigint>`.
    LongList(Vec<Vec<i64>>),
}

/// Its Parquet declaration, for the message type.
fn declare(name: &str, sql_type: &str) -> Result<String> {
    Ok(match sql_type {
        "string" => format!("optional binary {name} (STRING);"),
        "timestamp" => format!("required int64 {name} (TIMESTAMP(MILLIS,false));"),
        "bigint" => format!("required int64 {name};"),
        "int" => format!("required int32 {name};"),
        "boolean" => format!("required boolean {name};"),
        "double" => format!("optional double {name};"),
        "array<bigint>" => format!(
            "required group {name} (LIST) {{ repeated group list {{ required int64 element; }} }}"
        ),
        other => {
            return Err(ParquetError::General(format!(
                "no Parquet type for {other}"
            )));
        }
    })
}

fn text<'a>(values: impl Iterator<Item = &'a str>) -> Column {
    opt_text(values.map(Some))
}

fn opt_text<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Column {
    Column::Text(
        values
            .map(|s| s.map(|s| ByteArray::from(s.as_bytes().to_vec())))
            .collect(),
    )
}

/// A count as Parquet's `int64`: counts here stay far below 2^63.
fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `table`'s columns for the window of `t`, in the table's order.
fn columns(table: &Table, t: &WindowTables) -> Result<Vec<Column>> {
    let rows = match table.name {
        n if n == WINDOWS.name => 1,
        n if n == WINDOW_INTERSECTIONS.name => t.intersections.len(),
        n if n == WINDOW_RANKINGS.name => t.rankings.len(),
        other => return Err(ParquetError::General(format!("no table {other}"))),
    };
    let window = window_columns(&t.window, rows);
    let s = &t.summary;
    let rest = match table.name {
        n if n == WINDOWS.name => vec![
            Column::Timestamp(vec![t.window.end_ms()]),
            Column::Long(vec![long(s.readings)]),
            Column::Long(vec![long(s.intersections)]),
            Column::Double(vec![Some(s.global_median_vehicles)]),
            Column::Long(vec![long(s.duplicates)]),
            Column::Long(vec![long(s.too_frequent)]),
        ],
        n if n == WINDOW_INTERSECTIONS.name => {
            let x = &t.intersections;
            vec![
                text(x.iter().map(|r| r.intersection_id.as_str())),
                Column::Long(x.iter().map(|r| long(r.figures.readings)).collect()),
                Column::Long(x.iter().map(|r| long(r.figures.vehicles)).collect()),
                Column::LongList(
                    x.iter()
                        .map(|r| r.figures.light_vehicles.iter().map(|v| long(*v)).collect())
                        .collect(),
                ),
                Column::Double(x.iter().map(|r| r.figures.mean_speed_kmh).collect()),
                Column::Double(x.iter().map(|r| r.figures.median_vehicles).collect()),
            ]
        }
        _ => {
            let x = &t.rankings;
            vec![
                text(x.iter().map(|r| r.ranking.as_str())),
                Column::Int(
                    x.iter()
                        .map(|r| i32::try_from(r.place).unwrap_or(i32::MAX))
                        .collect(),
                ),
                text(x.iter().map(|r| r.intersection_id.as_str())),
                Column::Double(x.iter().map(|r| Some(r.value)).collect()),
            ]
        }
    };
    Ok(window.into_iter().chain(rest).collect())
}

/// The columns every table starts with: the window's length and start, on each of `rows` rows.
fn window_columns(window: &WindowKey, rows: usize) -> [Column; 2] {
    let length = window.length.to_string();
    [
        text(std::iter::repeat_n(length.as_str(), rows)),
        Column::Timestamp(vec![window.start_ms; rows]),
    ]
}

/// `table`'s rows of the window of `t` as the bytes of a Parquet file.
pub fn encode(table: &Table, t: &WindowTables) -> Result<Vec<u8>> {
    write(table, columns(table, t)?)
}

/// The `window_plans` rows of a retiming round as the bytes of a Parquet file.
pub fn encode_plans(p: &WindowPlans) -> Result<Vec<u8>> {
    let r = &p.rows;
    let mut columns: Vec<Column> = window_columns(&p.window, r.len()).into();
    columns.extend([
        text(r.iter().map(|x| x.intersection_id.as_str())),
        text(r.iter().map(|x| x.mode.as_str())),
        Column::Bool(r.iter().map(|x| x.retimed).collect()),
        Column::Int(
            r.iter()
                .map(|x| i32::try_from(x.phase).unwrap_or(i32::MAX))
                .collect(),
        ),
        Column::Double(r.iter().map(|x| Some(x.cycle_s)).collect()),
        Column::Double(r.iter().map(|x| x.offset_s).collect()),
        Column::Double(r.iter().map(|x| Some(x.min_green_s)).collect()),
        Column::Double(r.iter().map(|x| Some(x.green_s)).collect()),
        Column::Double(r.iter().map(|x| Some(x.max_green_s)).collect()),
    ]);
    write(&WINDOW_PLANS, columns)
}

/// `plan_changes` rows as the bytes of a Parquet file.
pub fn encode_plan_changes(r: &[PlanChangeRow]) -> Result<Vec<u8>> {
    let columns = vec![
        Column::Timestamp(r.iter().map(|x| x.changed_at_ms).collect()),
        text(r.iter().map(|x| x.intersection_id.as_str())),
        text(r.iter().map(|x| x.changed_by)),
        opt_text(r.iter().map(|x| x.operator.as_deref())),
        Column::Int(r.iter().map(|x| int(x.phase)).collect()),
        Column::Double(r.iter().map(|x| Some(x.green_s)).collect()),
        Column::Double(r.iter().map(|x| Some(x.cycle_s)).collect()),
    ];
    write(&PLAN_CHANGES, columns)
}

/// `alarm_events` rows as the bytes of a Parquet file.
pub fn encode_alarm_events(r: &[AlarmEventRow]) -> Result<Vec<u8>> {
    let columns = vec![
        Column::Timestamp(r.iter().map(|x| x.event_at_ms).collect()),
        text(r.iter().map(|x| x.event)),
        text(r.iter().map(|x| x.alarm_id.as_str())),
        text(r.iter().map(|x| x.intersection_id.as_str())),
        Column::Int(r.iter().map(|x| int(x.light)).collect()),
        opt_text(r.iter().map(|x| x.lamp)),
        opt_text(r.iter().map(|x| x.silent)),
        Column::Timestamp(r.iter().map(|x| x.raised_at_ms).collect()),
        Column::Bool(r.iter().map(|x| x.held_down).collect()),
        opt_text(r.iter().map(|x| x.why.as_deref())),
        opt_text(r.iter().map(|x| x.by.as_deref())),
        opt_text(r.iter().map(|x| x.note.as_deref())),
    ];
    write(&ALARM_EVENTS, columns)
}

/// An index or a light as Parquet's `int32`.
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `columns`, in `table`'s order, as the bytes of a Parquet file of one row group.
fn write(table: &Table, columns: Vec<Column>) -> Result<Vec<u8>> {
    let mut message = format!("message {} {{ ", table.name);
    for (name, sql_type) in table.columns {
        message.push_str(&declare(name, sql_type)?);
        message.push(' ');
    }
    message.push('}');
    let schema = Arc::new(parse_message_type(&message)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props)?;
    let mut group = writer.next_row_group()?;
    let mut columns = columns.into_iter();
    while let Some(mut w) = group.next_column()? {
        let column = columns
            .next()
            .ok_or_else(|| ParquetError::General(format!("{}: too few columns", table.name)))?;
        match column {
            Column::Text(v) => {
                let defined: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                let present: Vec<ByteArray> = v.into_iter().flatten().collect();
                w.typed::<ByteArrayType>()
                    .write_batch(&present, Some(&defined), None)?
            }
            Column::Timestamp(v) | Column::Long(v) => {
                w.typed::<Int64Type>().write_batch(&v, None, None)?
            }
            Column::Int(v) => w.typed::<Int32Type>().write_batch(&v, None, None)?,
            Column::Bool(v) => w.typed::<BoolType>().write_batch(&v, None, None)?,
            Column::Double(v) => {
                let present: Vec<f64> = v.iter().flatten().copied().collect();
                let defined: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                w.typed::<DoubleType>()
                    .write_batch(&present, Some(&defined), None)?
            }
            Column::LongList(lists) => {
                // Each list's first element starts a row (repetition 0), the rest repeat it;
                // every element is defined (level 1: the list and its element present).
                let values: Vec<i64> = lists.iter().flatten().copied().collect();
                let repetition: Vec<i16> = lists
                    .iter()
                    .flat_map(|l| (0..l.len()).map(|i| i16::from(i > 0)))
                    .collect();
                let definition = vec![1; values.len()];
                w.typed::<Int64Type>()
                    .write_batch(&values, Some(&definition), Some(&repetition))?
            }
        };
        w.close()?;
    }
    group.close()?;
    writer.close()?;
    Ok(out)
}
