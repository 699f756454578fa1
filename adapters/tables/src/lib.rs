//! The merge's output tables as Parquet: each closed window's rows
//! (`traffic_core::outputs::WindowTables`) become one object per table, named by the table,
//! the day the window starts on and the window, the same on S3 and on disk:
//!
//! ```text
//! windows/dt=2026-01-05/15m-20260105T070000Z.parquet
//! window_intersections/dt=2026-01-05/15m-20260105T070000Z.parquet
//! window_rankings/dt=2026-01-05/15m-20260105T070000Z.parquet
//! window_plans/dt=2026-01-05/15m-20260105T070000Z.parquet
//! plan_changes/dt=2026-01-05/retiming-15m-20260105T070000Z.parquet
//! plan_changes/dt=2026-01-05/operator-15m-20260105T070000Z.parquet
//! alarm_events/dt=2026-01-05/15m-20260105T070000Z.parquet
//! ```
//!
//! (`window_plans` and `plan_changes/…/retiming-`: after the merge's retiming round from that
//! control window; `plan_changes/…/operator-` and `alarm_events`: what operators and alarms did
//! in it, written only when something did.)
//!
//! The encoding is a function of the rows alone (no write time, no random file id), so a window
//! written again is written in the same bytes: a redone merge leaves the archive as it was.
//! [`dir::DirArchive`] keeps them in a directory (`traffic local`); the AWS adapter puts them
//! in the archive bucket. The columns are those of the Glue tables in `infra/template.yaml`
//! ([`TABLES`]).

mod decode;
pub mod dir;
mod encode;

pub use decode::{intersection_row, intersection_rows, row_in, rows_in};
pub use encode::{encode, encode_alarm_events, encode_plan_changes, encode_plans};
use traffic_core::changes::{PlanChangeRow, WindowChanges};
use traffic_core::outputs::{WindowPlans, WindowTables};
use traffic_core::window::WindowKey;
use traffic_ports::{PortError, PortResult};

/// A table of the merge's outputs: its name (its folder and Glue table) and its columns as the
/// Glue table and a SQL `CREATE TABLE` declare them (`dt`, the partition, left out).
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The table's name, and its folder under the archive.
    pub name: &'static str,
    /// `name type` pairs, in the files' column order (types as Athena and DuckDB spell them).
    pub columns: &'static [(&'static str, &'static str)],
}

/// One row per closed window.
pub const WINDOWS: Table = Table {
    name: "windows",
    columns: &[
        ("length", "string"),
        ("window_start", "timestamp"),
        ("window_end", "timestamp"),
        ("readings", "bigint"),
        ("intersections", "bigint"),
        ("global_median_vehicles", "double"),
        ("duplicates", "bigint"),
        ("too_frequent", "bigint"),
    ],
};

/// One row per intersection with readings in a closed window.
pub const WINDOW_INTERSECTIONS: Table = Table {
    name: "window_intersections",
    columns: &[
        ("length", "string"),
        ("window_start", "timestamp"),
        ("intersection_id", "string"),
        ("readings", "bigint"),
        ("vehicles", "bigint"),
        ("light_vehicles", "array<bigint>"),
        ("mean_speed_kmh", "double"),
        ("median_vehicles", "double"),
    ],
};

/// One row per place in a closed window's top-k (`top`) and above-median list.
pub const WINDOW_RANKINGS: Table = Table {
    name: "window_rankings",
    columns: &[
        ("length", "string"),
        ("window_start", "timestamp"),
        ("ranking", "string"),
        ("place", "int"),
        ("intersection_id", "string"),
        ("value", "double"),
    ],
};

/// One row per phase of every intersection's plan after a retiming round (`retimed`: the
/// merge changed it in that round), by control window.
pub const WINDOW_PLANS: Table = Table {
    name: "window_plans",
    columns: &[
        ("length", "string"),
        ("window_start", "timestamp"),
        ("intersection_id", "string"),
        ("mode", "string"),
        ("retimed", "boolean"),
        ("phase", "int"),
        ("cycle_s", "double"),
        ("offset_s", "double"),
        ("min_green_s", "double"),
        ("green_s", "double"),
        ("max_green_s", "double"),
    ],
};

/// One row per phase of a plan changed: by an operator (`operator`: who, when the edit said)
/// or by the merge's retiming round (`changed_at`: the end of the window it retimed from).
pub const PLAN_CHANGES: Table = Table {
    name: "plan_changes",
    columns: &[
        ("changed_at", "timestamp"),
        ("intersection_id", "string"),
        ("changed_by", "string"),
        ("operator", "string"),
        ("phase", "int"),
        ("green_s", "double"),
        ("cycle_s", "double"),
    ],
};

/// One row per step of an alarm's lifecycle (`raised`, `acknowledged`, `closed`); the rows of
/// one alarm share its `alarm_id`.
pub const ALARM_EVENTS: Table = Table {
    name: "alarm_events",
    columns: &[
        ("event_at", "timestamp"),
        ("event", "string"),
        ("alarm_id", "string"),
        ("intersection_id", "string"),
        ("light", "int"),
        ("lamp", "string"),
        ("silent", "string"),
        ("raised_at", "timestamp"),
        ("held_down", "boolean"),
        ("why", "string"),
        ("acknowledged_by", "string"),
        ("note", "string"),
    ],
};

/// The tables of each closed window's results ([`objects`]).
pub const TABLES: [Table; 3] = [WINDOWS, WINDOW_INTERSECTIONS, WINDOW_RANKINGS];

/// Every table of the merge's outputs: the results', `window_plans` and `plan_changes`
/// ([`plans_objects`]), `alarm_events` ([`changes_objects`]).
pub const ALL_TABLES: [Table; 6] = [
    WINDOWS,
    WINDOW_INTERSECTIONS,
    WINDOW_RANKINGS,
    WINDOW_PLANS,
    PLAN_CHANGES,
    ALARM_EVENTS,
];

/// The object of `table` for `window`, relative to the archive's root.
pub fn key(table: &Table, window: &WindowKey) -> String {
    key_as(table, "", window)
}

/// The object of `table` for `window` whose name starts with `prefix` (`retiming-`,
/// `operator-`: two writers of one table, one object each).
fn key_as(table: &Table, prefix: &str, window: &WindowKey) -> String {
    let start = traffic_core::time::format_rfc3339_ms(window.start_ms);
    // 2026-01-05T07:00:00.000Z -> 20260105T070000Z
    let compact: String = start[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!(
        "{}/dt={}/{prefix}{}-{compact}Z.parquet",
        table.name,
        &start[..10],
        window.length
    )
}

/// Every object one closed window adds to the archive: (key, Parquet bytes), one per table.
pub fn objects(tables: &WindowTables) -> PortResult<Vec<(String, Vec<u8>)>> {
    TABLES
        .iter()
        .map(|t| Ok((key(t, &tables.window), encode(t, tables)?)))
        .collect::<Result<_, parquet::errors::ParquetError>>()
        .map_err(|e| PortError::backend(format!("encoding {}", tables.window), e))
}

/// The objects of a retiming round: its `window_plans`, and its `plan_changes` when it changed
/// a plan: (key, Parquet bytes).
pub fn plans_objects(plans: &WindowPlans) -> PortResult<Vec<(String, Vec<u8>)>> {
    let failed = |e| PortError::backend(format!("encoding the plans of {}", plans.window), e);
    let mut out = vec![(
        key(&WINDOW_PLANS, &plans.window),
        encode_plans(plans).map_err(failed)?,
    )];
    let changed = PlanChangeRow::retimings(plans);
    if !changed.is_empty() {
        out.push((
            key_as(&PLAN_CHANGES, "retiming-", &plans.window),
            encode_plan_changes(&changed).map_err(failed)?,
        ));
    }
    Ok(out)
}

/// The objects of what changed in a control window: operators' edits (`plan_changes`) and
/// alarms' steps (`alarm_events`), each only when it has rows.
pub fn changes_objects(changes: &WindowChanges) -> PortResult<Vec<(String, Vec<u8>)>> {
    let failed = |e| PortError::backend(format!("encoding the changes of {}", changes.window), e);
    let mut out = Vec::new();
    if !changes.plan_changes.is_empty() {
        out.push((
            key_as(&PLAN_CHANGES, "operator-", &changes.window),
            encode_plan_changes(&changes.plan_changes).map_err(failed)?,
        ));
    }
    if !changes.alarm_events.is_empty() {
        out.push((
            key(&ALARM_EVENTS, &changes.window),
            encode_alarm_events(&changes.alarm_events).map_err(failed)?,
        ));
    }
    Ok(out)
}
