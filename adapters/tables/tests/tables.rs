//! The merge's output tables as Parquet: the rows read back as written, under names and in
//! bytes that depend on the rows alone, and the directory archive writes them so.

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use traffic_core::IntersectionId;
use traffic_core::outputs::{
    Figures, IntersectionRow, Ranking, RankingRow, WindowRow, WindowTables,
};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::OutputArchive;
use traffic_tables::{TABLES, WINDOW_INTERSECTIONS, WINDOW_RANKINGS, WINDOWS, dir::DirArchive};

const T0: i64 = 1_767_596_400_000; // 2026-01-05T07:00:00Z

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn tables() -> WindowTables {
    WindowTables {
        window: WindowKey {
            length: WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m")),
            start_ms: T0,
        },
        summary: WindowRow {
            readings: 7,
            intersections: 2,
            global_median_vehicles: 2.5,
            duplicates: 1,
            too_frequent: 0,
        },
        intersections: vec![
            IntersectionRow {
                intersection_id: id("I-0001"),
                figures: Figures {
                    readings: 4,
                    vehicles: 12,
                    light_vehicles: [3, 4, 5, 0],
                    mean_speed_kmh: Some(41.5),
                    median_vehicles: Some(3.0),
                },
            },
            IntersectionRow {
                intersection_id: id("I-0002"),
                figures: Figures {
                    readings: 3,
                    vehicles: 0,
                    light_vehicles: [0; 4],
                    mean_speed_kmh: None,
                    median_vehicles: Some(0.0),
                },
            },
        ],
        rankings: vec![
            RankingRow {
                ranking: Ranking::Top,
                place: 1,
                intersection_id: id("I-0001"),
                value: 41.5,
            },
            RankingRow {
                ranking: Ranking::AboveMedian,
                place: 1,
                intersection_id: id("I-0001"),
                value: 3.0,
            },
        ],
    }
}

/// A file's rows, each as its fields' text.
fn rows(bytes: Vec<u8>) -> Vec<Vec<String>> {
    let reader =
        SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap_or_else(|e| panic!("{e}"));
    reader
        .get_row_iter(None)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|row| {
            row.unwrap_or_else(|e| panic!("{e}"))
                .get_column_iter()
                .map(|(_, f)| match f {
                    Field::Str(s) => s.clone(),
                    Field::Double(d) => d.to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The file declares `table`'s columns, in order.
fn assert_declares(table: &traffic_tables::Table, bytes: Vec<u8>) {
    let reader =
        SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let declared: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, declared, "{}", table.name);
}

#[test]
fn each_table_reads_back_the_rows_of_the_window() {
    let t = tables();
    let windows = rows(traffic_tables::encode(&WINDOWS, &t).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0][0], "15m");
    assert_eq!(windows[0][3..], ["7", "2", "2.5", "1", "0"]);

    let x =
        rows(traffic_tables::encode(&WINDOW_INTERSECTIONS, &t).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(x.len(), 2);
    assert_eq!(
        x[0][2..],
        ["I-0001", "4", "12", "[3, 4, 5, 0]", "41.5", "3"]
    );
    assert_eq!(x[1][2..], ["I-0002", "3", "0", "[0, 0, 0, 0]", "null", "0"]);

    let r = rows(traffic_tables::encode(&WINDOW_RANKINGS, &t).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(r[0][2..], ["top", "1", "I-0001", "41.5"]);
    assert_eq!(r[1][2..], ["above_median", "1", "I-0001", "3"]);
}

#[test]
fn each_file_declares_the_columns_of_its_table() {
    let t = tables();
    for table in TABLES {
        let bytes = traffic_tables::encode(&table, &t).unwrap_or_else(|e| panic!("{e}"));
        assert_declares(&table, bytes);
    }
}

#[test]
fn a_window_is_named_by_table_day_and_window_and_encoded_the_same_every_time() {
    let t = tables();
    let first = traffic_tables::objects(&t).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "windows/dt=2026-01-05/15m-20260105T070000Z.parquet",
            "window_intersections/dt=2026-01-05/15m-20260105T070000Z.parquet",
            "window_rankings/dt=2026-01-05/15m-20260105T070000Z.parquet",
        ]
    );
    assert_eq!(
        traffic_tables::objects(&t).unwrap_or_else(|e| panic!("{e}")),
        first
    );
}

#[tokio::test]
async fn the_directory_archive_writes_a_window_again_in_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let archive = DirArchive::new(dir.path());
    let t = tables();
    archive
        .put_window(&t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = |key: &str| std::fs::read(dir.path().join(key)).unwrap_or_else(|e| panic!("{e}"));
    let objects = traffic_tables::objects(&t).unwrap_or_else(|e| panic!("{e}"));
    for (key, bytes) in &objects {
        assert_eq!(&read(key), bytes);
    }
    archive
        .put_window(&t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (key, bytes) in &objects {
        assert_eq!(&read(key), bytes, "{key} written again");
    }
    // No temporary file is left behind.
    let day = dir.path().join("windows/dt=2026-01-05");
    assert_eq!(
        std::fs::read_dir(day)
            .unwrap_or_else(|e| panic!("{e}"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_intersections_history_reads_its_row_of_each_archived_window() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let archive = DirArchive::new(dir.path());
    let t = tables();
    archive
        .put_window(&t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The next quarter was never archived: left out, not an error.
    let next = WindowKey {
        start_ms: T0 + 900_000,
        ..t.window
    };
    let got = archive
        .intersection_windows(&id("I-0002"), &[t.window, next])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, [(t.window, t.intersections[1].clone())]);
    let none = archive
        .intersection_windows(&id("I-0009"), &[t.window])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_rounds_plans_read_back_row_by_row_under_the_control_windows_name() {
    use traffic_core::outputs::{PlanRow, WindowPlans};
    use traffic_core::signal::ControlMode;
    let window = tables().window;
    let row = |phase: u32, green_s: f64| PlanRow {
        intersection_id: id("I-0001"),
        mode: ControlMode::Adaptive,
        retimed: phase == 0,
        phase,
        cycle_s: 60.0,
        offset_s: None,
        min_green_s: 5.0,
        green_s,
        max_green_s: 50.0,
    };
    let plans = WindowPlans {
        window,
        rows: vec![row(0, 31.5), row(1, 20.5)],
    };
    let objects = traffic_tables::plans_objects(&plans).unwrap_or_else(|e| panic!("{e}"));
    let (key, bytes) = objects[0].clone();
    assert_eq!(
        key,
        "window_plans/dt=2026-01-05/15m-20260105T070000Z.parquet"
    );
    // The plan the round changed, in `plan_changes`, in force from the window's end.
    assert_eq!(
        objects[1].0,
        "plan_changes/dt=2026-01-05/retiming-15m-20260105T070000Z.parquet"
    );
    let changed = rows(objects[1].1.clone());
    assert_eq!(
        changed,
        [[
            "2026-01-05 07:15:00.000 +00:00",
            "I-0001",
            "retiming",
            "null",
            "0",
            "31.5",
            "60"
        ]]
    );
    let got = rows(bytes.clone());
    assert_eq!(
        got[0][2..],
        [
            "I-0001", "adaptive", "true", "0", "60", "null", "5", "31.5", "50"
        ]
    );
    assert_eq!(got[1][4..6], ["false", "1"]);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let archive = DirArchive::new(dir.path());
    archive
        .put_plans(&plans)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read(dir.path().join(&key)).unwrap_or_default(),
        bytes
    );
}

#[tokio::test]
async fn a_windows_edits_and_alarm_steps_read_back_with_who_and_why() {
    use traffic_core::changes::{AlarmEventRow, PlanChangeRow, WindowChanges};
    use traffic_tables::{ALARM_EVENTS, PLAN_CHANGES};
    let window = tables().window;
    let phases: Vec<traffic_core::city::Phase> = serde_json::from_str(
        r#"[{"lights": [0, 2], "green_s": 30, "red_s": 33}, {"lights": [1, 3], "green_s": 27, "red_s": 36}]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let edited_at = T0 + 300_000;
    let event = |event, at, why: Option<&str>, by: Option<&str>| AlarmEventRow {
        event_at_ms: at,
        event,
        alarm_id: format!("I-0002#1#red#{T0}"),
        intersection_id: id("I-0002"),
        light: 1,
        lamp: Some("red"),
        silent: None,
        raised_at_ms: T0,
        held_down: false,
        why: why.map(str::to_owned),
        by: by.map(str::to_owned),
        note: None,
    };
    let changes = WindowChanges {
        window,
        plan_changes: PlanChangeRow::edit(&id("I-0001"), edited_at, Some("op-1"), &phases, 3.0),
        alarm_events: vec![
            event("raised", T0, None, None),
            event("acknowledged", T0 + 60_000, None, Some("op-2")),
            event("closed", T0 + 120_000, Some("lamp reported ok"), None),
        ],
    };
    let objects = traffic_tables::changes_objects(&changes).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "plan_changes/dt=2026-01-05/operator-15m-20260105T070000Z.parquet",
            "alarm_events/dt=2026-01-05/15m-20260105T070000Z.parquet"
        ]
    );
    let edits = rows(objects[0].1.clone());
    assert_eq!(edits.len(), 2);
    assert_eq!(
        edits[1][1..],
        ["I-0001", "operator", "op-1", "1", "27", "66"]
    );
    let steps = rows(objects[1].1.clone());
    let column = |name: &str| ALARM_EVENTS.columns.iter().position(|(n, _)| *n == name);
    let (event, why, by) = (column("event"), column("why"), column("acknowledged_by"));
    let pick = |r: &Vec<String>, c: Option<usize>| c.map(|c| r[c].clone()).unwrap_or_default();
    let got: Vec<[String; 3]> = steps
        .iter()
        .map(|r| [pick(r, event), pick(r, why), pick(r, by)])
        .collect();
    assert_eq!(
        got,
        [
            ["raised", "null", "null"],
            ["acknowledged", "null", "op-2"],
            ["closed", "lamp reported ok", "null"]
        ]
        .map(|r| r.map(str::to_owned))
    );
    for (table, (_, bytes)) in [PLAN_CHANGES, ALARM_EVENTS].iter().zip(&objects) {
        assert_declares(table, bytes.clone());
    }

    // A window where nothing changed writes nothing; one written again, the same bytes.
    let quiet = WindowChanges {
        window,
        plan_changes: Vec::new(),
        alarm_events: Vec::new(),
    };
    assert!(
        traffic_tables::changes_objects(&quiet)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let archive = DirArchive::new(dir.path());
    for _ in 0..2 {
        archive
            .put_changes(&changes)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (key, bytes) in &objects {
            assert_eq!(
                &std::fs::read(dir.path().join(key)).unwrap_or_default(),
                bytes
            );
        }
    }
}
