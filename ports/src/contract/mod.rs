//! The port-contract suite: laws every adapter of a port keeps, stated from the traits' own
//! documentation, written once and run against each adapter (feature `contract`).
//!
//! Each case is a plain `async fn case(store: &S) -> Outcome` generic over the port, in a module
//! per port: [`lamps`] and [`publication`] ([`crate::LampStore`]), [`registry`]
//! ([`crate::Registry`]), [`state`], [`deltas`] and [`rollups`] ([`crate::StateStore`]),
//! [`results`] ([`crate::ResultStore`]), [`stats`] ([`crate::StatsStore`]). A case uses ids of
//! its own, so cases may share a store; the harness gives each a fresh one anyway. The stream
//! laws, [`source`] ([`crate::RecordSource`], [`crate::CheckpointStore`]), take a stream and
//! a way to feed it instead of a store: plain tests run them on Kinesis
//! (`tests/aws/ports.rs`), the embedded log and the stream in memory (`tests/system/ports.rs`).
//!
//! [`port_contract!`](crate::port_contract) expands to one `#[tokio::test]` per case, named
//! `<port>::<case>` in the module it is invoked in, given a function that opens a fresh store:
//!
//! ```ignore
//! mod ports {
//!     async fn fresh(case: &'static str) -> anyhow::Result<(EmbeddedStore, tempfile::TempDir)> {
//!         let dir = tempfile::tempdir()?;
//!         Ok((EmbeddedStore::open(dir.path().join("t.redb"))?, dir))
//!     }
//!     traffic_ports::port_contract!(store = fresh);
//! }
//! ```
//!
//! The function returns the store and a guard kept alive until the case ends (a temporary
//! directory, the tables' names); attributes written before `store =` (`#[ignore = ".."]`) go
//! on every test. `tests/system/ports.rs` runs the suite on the embedded store,
//! `tests/aws/ports.rs` on DynamoDB.

pub mod deltas;
pub mod lamps;
pub mod publication;
pub mod registry;
pub mod results;
pub mod rollups;
pub mod source;
pub mod state;
pub mod stats;

use traffic_core::IntersectionId;
use traffic_core::city::Intersection;

/// What a case returns: `Err` (or a panic) says which law broke.
pub type Outcome = anyhow::Result<()>;

/// Fails the case with `msg` unless `cond` holds.
macro_rules! ensure_law {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(anyhow::anyhow!($($msg)+));
        }
    };
}
pub(crate) use ensure_law;

/// An intersection id of the suite's own, unique per case: `C-<case>-<n>`.
pub fn id(case: &str, n: usize) -> anyhow::Result<IntersectionId> {
    Ok(IntersectionId::parse(&format!("C-{case}-{n}"))?)
}

/// A valid intersection `id` with two lights and two phases (greens `green_s`, 30 s each
/// otherwise).
pub fn intersection(id: &IntersectionId, green_s: f64) -> anyhow::Result<Intersection> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": id.as_str(),
        "lat": 41.85,
        "lon": 12.60,
        "lights": [
            {"light": 0, "saturation_veh_h": 1800},
            {"light": 1, "saturation_veh_h": 1800}
        ],
        "phases": [
            {"lights": [0], "green_s": green_s, "red_s": 34},
            {"lights": [1], "green_s": 30, "red_s": green_s + 4.0}
        ]
    }))?)
}

/// Expands to one `#[tokio::test]` per case of every port, `<port>::<case>`, each opening its
/// store with the given async function: `fn(&'static str /* port-case */) ->
/// anyhow::Result<(S, G)>`, where `S` implements every port of the suite and `G` is kept alive
/// until the case ends. Attributes before `store =` are put on every test.
#[macro_export]
macro_rules! port_contract {
    ($(#[$attr:meta])* store = $make:path $(,)?) => {
        $crate::__port_contract_mod!(lamps, [$(#[$attr])*], $make, [
            lamp_states_round_trip_and_default_to_all_ok,
            lamp_summaries_when_kept_are_exact,
            record_alarm_is_idempotent_by_id,
            recorded_alarm_is_open_unpublished_and_due_at_its_time,
            ack_is_recorded_replaced_and_refused_for_unknown_ids,
            close_alarms_closes_the_lights_open_alarms_and_keeps_them_in_the_log,
            resolve_alarms_closes_only_the_selected_and_orders_no_repair,
            alarm_page_pages_every_alarm_once_newest_first,
            repair_closes_and_queues_one_order_taken_once,
            alarm_events_give_each_step_at_its_time,
        ]);
        $crate::__port_contract_mod!(publication, [$(#[$attr])*], $make, [
            held_alarm_is_due_only_when_its_hold_down_ends,
            claim_is_granted_once_until_released_or_expired,
            claim_of_a_published_or_unknown_alarm_is_settled,
            mark_published_settles_and_sets_last_published,
            held_alarm_closed_before_its_hold_down_is_settled,
        ]);
        $crate::__port_contract_mod!(registry, [$(#[$attr])*], $make, [
            create_then_read_and_refuse_a_second_create,
            intersections_page_covers_every_intersection_once_in_id_order,
            put_replaces_and_delete_reports_whether_there_was_one,
            version_changes_on_write_and_a_stale_one_is_refused,
            conditional_writes_on_a_deleted_intersection_are_not_found,
            set_timings_records_history_and_skips_stale_versions,
            set_proposals_changes_the_version_not_the_directory,
            replace_recording_appends_the_operators_change,
            operator_edits_are_found_by_their_time_with_their_author,
            directory_generation_changes_on_create_and_delete,
        ]);
        $crate::__port_contract_mod!(state, [$(#[$attr])*], $make, [
            lease_is_held_by_one_holder_until_it_expires_or_is_released,
            closed_mark_only_moves_forward,
            commit_is_conditional_on_the_stored_meta,
            commit_is_conditional_on_the_closed_mark,
            merge_progress_round_trips,
            merge_progress_does_not_move_the_closed_mark,
            shard_metas_hold_every_committed_shard_once,
        ]);
        $crate::__port_contract_mod!(deltas, [$(#[$attr])*], $make, [
            committed_deltas_read_back_by_key_in_the_order_asked,
            delta_panes_lists_each_pane_with_deltas_once_from_the_start_on,
            forget_keeps_the_panes_and_rollups_it_does_not_drop,
        ]);
        $crate::__port_contract_mod!(rollups, [$(#[$attr])*], $make, [
            rollups_are_exactly_those_of_the_length_starting_in_range,
            put_rollups_replaces_the_rollup_of_its_window,
            redrive_mark_is_written_with_its_commit_and_only_once,
            refused_redrive_writes_no_mark,
        ]);
        $crate::__port_contract_mod!(results, [$(#[$attr])*], $make, [
            results_replace_per_window_and_list_in_order,
            recent_results_and_pages_are_newest_first_and_complete,
            network_state_round_trips,
        ]);
        $crate::__port_contract_mod!(stats, [$(#[$attr])*], $make, [
            samples_add_up_per_function_and_minute,
            stats_are_those_from_a_minute_on_by_minute_then_function,
        ]);
    };
}

/// One module of [`port_contract!`]: a test per case of `$port`.
#[doc(hidden)]
#[macro_export]
macro_rules! __port_contract_mod {
    ($port:ident, $attrs:tt, $make:path, [$($case:ident),* $(,)?]) => {
        mod $port {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::__port_contract_case!($attrs, $make, $port, $case); )*
        }
    };
}

/// One test of [`port_contract!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __port_contract_case {
    ([$(#[$attr:meta])*], $make:path, $port:ident, $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $case() -> $crate::contract::Outcome {
            let (store, _guard) =
                $make(concat!(stringify!($port), "-", stringify!($case))).await?;
            $crate::contract::$port::$case(&store).await
        }
    };
}
