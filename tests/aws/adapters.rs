//! The DynamoDB and SNS adapters against the emulator, port by port, with the semantics of the
//! embedded store: conditional commits, batches past the per-request limits, the registry,
//! lamp states and alarms, repairs, statistics and results.

use crate::support::{AwsEnv, assert_same, aws_env};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;
use traffic_aws::setup::Resources;
use traffic_aws::{AwsNames, DynamoStore, KinesisShards, StoreOptions};
use traffic_core::SequenceNumber;
use traffic_core::ShardId;
use traffic_core::delta::{Delta, DeltaKey, DeltaReading};
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::latency::{ArrivalTotals, LatencyState};
use traffic_core::pane::{Commit, DeltaRef, MergeMarks, MergeState, ShardMeta};
use traffic_core::query::{MedianEntry, WindowResult};
use traffic_core::reading::{LampColour, LampState, Lamps, Position};
use traffic_core::rollup::{CompactionCounts, Rollup};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{
    LampStore, PortError, RecordSource, Registry, ResultStore, Series, StateStore, StatsSample,
    StatsStore, StreamShards, TimingUpdate,
};
use traffic_sim::{CityConfig, generate_city};

async fn store(test: &str) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let (r, _, s) = env.fresh_store().await?;
    Ok(Some((env, r, s)))
}

fn meta(shard: &str, seq: u128) -> ShardMeta {
    ShardMeta {
        shard_id: shard.into(),
        applied_through: Some(SequenceNumber::from_u128(seq)),
        max_event_ms: Some(P0 + seq as i64),
        ..ShardMeta::default()
    }
}

/// 2026-01-05T08:00:00Z, a pane start.
const P0: i64 = 1_767_600_000_000;

fn pane(start_ms: i64) -> WindowKey {
    WindowLength::from_ms(900_000)
        .unwrap_or_else(|| panic!("15m"))
        .window_of(start_ms)
}

/// The delta of commit `commit` of `shard` to the pane at `start_ms`: `n` readings of
/// intersections `I-0000`.. at the pane's first minute.
fn delta(start_ms: i64, shard: &str, commit: u64, n: usize) -> Delta {
    let mut d = Delta::new(
        DeltaKey {
            pane_start_ms: start_ms,
            shard_id: shard.into(),
            commit,
            part: 0,
        },
        pane(start_ms),
    );
    for i in 0..n {
        d.push(
            &id(&format!("I-{:04}", i / 4)),
            DeltaReading {
                light: light((i % 4) as i64),
                ts_ms: start_ms + 60_000,
                vehicles: (i % 23) as u32,
                speed_milli: 30_000 + (i % 300) as u64 * 100,
            },
        );
    }
    d
}

/// A commit of `deltas` moving `shard` from `expected` to `seq`, folded against `closed_ms`.
fn commit(
    shard: &str,
    expected: Option<u128>,
    seq: u128,
    closed_ms: Option<i64>,
    deltas: Vec<Delta>,
) -> Commit {
    let mut m = meta(shard, seq);
    m.deltas = deltas
        .iter()
        .map(|d| DeltaRef {
            pane_start_ms: d.key.pane_start_ms,
            commit: d.key.commit,
            parts: 1,
        })
        .collect();
    Commit {
        expected: expected.map(SequenceNumber::from_u128),
        expected_commits: 0,
        closed_ms,
        meta: m,
        deltas,
    }
}

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn light(l: i64) -> LightIndex {
    LightIndex::new(l).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_commit_writes_its_deltas_then_a_meta_conditional_on_the_checkpoint_and_the_closed_mark()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("commit").await? else {
        return Ok(());
    };
    let now = P0 + 3_600_000;
    let first = commit(
        "s0",
        None,
        5,
        None,
        vec![delta(P0, "s0", 1, 40), delta(P0 + 900_000, "s0", 1, 8)],
    );
    s.commit(&first, now).await?;
    // A second "first" commit and a stale one are refused: their deltas are written (they
    // expire unlisted), the meta is not.
    for expected in [None, Some(4)] {
        let stray = commit(
            "s0",
            expected,
            9,
            None,
            vec![delta(P0 + 1_800_000, "s0", 2, 4)],
        );
        let e = s.commit(&stray, now).await;
        assert!(matches!(e, Err(PortError::Conflict(_))), "{e:?}");
    }
    let (m, marks) = s.load_shard(&ShardId::from("s0")).await?;
    assert_eq!(m.as_ref(), Some(&first.meta));
    assert_eq!(marks, MergeMarks::default());
    assert_eq!(
        s.delta_panes(P0).await?,
        vec![P0, P0 + 900_000, P0 + 1_800_000]
    );
    assert_eq!(
        s.delta_panes(P0 + 900_000).await?,
        vec![P0 + 900_000, P0 + 1_800_000]
    );
    // The deltas come back in the order asked, a missing one left out.
    let keys: Vec<DeltaKey> = [(1, 0), (7, 0)]
        .iter()
        .map(|(commit, part)| DeltaKey {
            pane_start_ms: P0,
            shard_id: "s0".into(),
            commit: *commit,
            part: *part,
        })
        .collect();
    assert_eq!(s.deltas(&keys, true).await?, vec![delta(P0, "s0", 1, 40)]);
    assert_eq!(
        s.deltas(&keys[..1], false).await?,
        vec![delta(P0, "s0", 1, 40)]
    );

    // The merge moves its closed mark: a batch folded against the old mark is refused, one
    // folded against the new mark goes through.
    s.advance_closed_mark(P0 + 900_000).await?;
    let stale = commit("s0", Some(5), 7, None, vec![]);
    assert!(matches!(
        s.commit(&stale, now).await,
        Err(PortError::Conflict(_))
    ));
    s.commit(&commit("s0", Some(5), 7, Some(P0 + 900_000), vec![]), now)
        .await?;
    s.commit(
        &commit(
            "s1",
            None,
            3,
            Some(P0 + 900_000),
            vec![delta(P0 + 900_000, "s1", 1, 4)],
        ),
        now,
    )
    .await?;
    let metas = s.shard_metas().await?;
    assert_eq!(
        metas
            .iter()
            .map(|m| (m.shard_id.as_str(), m.applied_through.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("s0", Some(SequenceNumber::from_u128(7))),
            ("s1", Some(SequenceNumber::from_u128(3)))
        ]
    );
    let (_, marks) = s.load_shard(&ShardId::from("s1")).await?;
    assert_eq!(marks.closed_ms, Some(P0 + 900_000));
    // Units are computed from the items: every call billed at least one unit.
    let used = s.metrics().snapshot();
    assert!(
        used.write_capacity_units >= used.write_requests as f64,
        "{used:?}"
    );
    assert!(
        used.read_capacity_units >= 0.5 * used.read_requests as f64,
        "{used:?}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_commit_bills_write_units_in_proportion_to_its_readings_not_to_the_pane_so_far()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("units").await? else {
        return Ok(());
    };
    // Fifteen commits of 2,000 readings each to one pane: every commit bills the same.
    let mut billed = Vec::new();
    let mut expected = None;
    for c in 1..=15u64 {
        let before = s.metrics().snapshot();
        let seq = u128::from(c) * 10;
        s.commit(
            &commit("s0", expected, seq, None, vec![delta(P0, "s0", c, 2_000)]),
            P0,
        )
        .await?;
        expected = Some(seq);
        billed.push(s.metrics().snapshot().since(&before).write_capacity_units);
    }
    let bytes = delta(P0, "s0", 1, 2_000).encode().len();
    println!("a commit of 2,000 readings: delta {bytes} bytes, write units {billed:?}");
    // The delta's KBs plus the transaction (condition check and meta, twice each), plus the
    // pane index entry and the shard index entry on the first commit only.
    let delta_units = bytes.div_ceil(1024) as f64;
    assert!(billed[1..].iter().all(|b| *b == billed[1]), "{billed:?}");
    assert!(
        billed[1] <= delta_units + 2.0 * 2.0 + 2.0 * 2.0,
        "{billed:?} vs {delta_units}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn rollups_come_back_by_window_and_a_newer_version_replaces_the_old() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("rollups").await? else {
        return Ok(());
    };
    let hour = WindowLength::from_ms(3_600_000).unwrap_or_else(|| panic!("1h"));
    let rollup = |start: i64, through: i64, n: usize| {
        let mut r = Rollup::compact(pane(P0), [&delta(P0, "s0", 1, n)], 5_000, 200);
        r.window = hour.window_of(start);
        r.through_ms = through;
        r
    };
    let a = rollup(P0, P0 + 900_000, 40);
    let b = rollup(P0 + 3_600_000, P0 + 3_600_000 + 1_800_000, 8);
    s.put_rollups(&[a.clone(), b.clone()], P0).await?;
    assert_eq!(
        s.rollups(hour, P0, P0 + 3_600_000).await?,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        s.rollups(hour, P0 + 1, P0 + 3_600_000).await?,
        vec![b.clone()]
    );
    assert!(
        s.rollups(pane(P0).length, P0, P0 + 3_600_000)
            .await?
            .is_empty()
    );
    // The window's prefix grows: the new version replaces the old in one header write.
    let a2 = rollup(P0, P0 + 1_800_000, 400);
    s.put_rollups(std::slice::from_ref(&a2), P0 + 1_800_000)
        .await?;
    assert_eq!(s.rollups(hour, P0, P0).await?, vec![a2]);

    // A rollup larger than an item is cut into parts within the item size.
    let names = AwsNames {
        state_table: Some(r.state_table.clone()),
        ..AwsNames::default()
    };
    let opts = StoreOptions {
        max_item_bytes: 4 * 1024,
        ..StoreOptions::default()
    };
    let small = DynamoStore::new(env.clients.dynamodb.clone(), names, opts);
    let big = rollup(P0 + 7_200_000, P0 + 7_200_000 + 900_000, 4_000);
    small.put_rollups(std::slice::from_ref(&big), P0).await?;
    assert_eq!(
        small.rollups(hour, P0 + 7_200_000, P0 + 7_200_000).await?,
        vec![big]
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_merge_state_moves_forward_only() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("mergestate").await? else {
        return Ok(());
    };
    assert_eq!(s.merge_state().await?, MergeState::default());
    s.advance_closed_mark(P0 + 1_800_000).await?;
    // Never back.
    s.advance_closed_mark(P0 + 900_000).await?;
    let progress = MergeState {
        // A progress with an older closed mark leaves the stored mark alone.
        marks: MergeMarks {
            closed_ms: Some(P0 + 900_000),
            compacted_ms: Some(P0 + 900_000),
        },
        caught_up_since: BTreeMap::from([(ShardId::from("shardId-000000000001"), P0 + 5)]),
        compaction: CompactionCounts {
            duplicates: 3,
            too_frequent: 2,
        },
        latency: LatencyState {
            seen_commits: BTreeMap::from([(ShardId::from("shardId-000000000001"), 7)]),
            pending: BTreeMap::from([(
                WindowLength::from_ms(3_600_000)
                    .unwrap_or_else(|| panic!("1h"))
                    .window_of(P0),
                ArrivalTotals {
                    readings: 4,
                    sum_ms: 4 * i128::from(P0 + 10),
                    first_ms: P0 + 5,
                },
            )]),
        },
    };
    s.put_merge_progress(&progress).await?;
    assert_eq!(
        s.merge_state().await?,
        MergeState {
            marks: MergeMarks {
                closed_ms: Some(P0 + 1_800_000),
                ..progress.marks
            },
            ..progress.clone()
        }
    );
    s.advance_closed_mark(P0 + 2_700_000).await?;
    assert_eq!(s.merge_state().await?.marks.closed_ms, Some(P0 + 2_700_000));
    assert_eq!(
        s.load_shard(&ShardId::from("none")).await?.1.compacted_ms,
        Some(P0 + 900_000)
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn two_merges_taking_the_lease_together_get_exactly_one() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("lease").await? else {
        return Ok(());
    };
    let now = P0;
    for round in 0..20 {
        // Two merges on their own tasks (and store clones), started together.
        let take = |who: String| {
            let s = s.clone();
            tokio::spawn(async move { s.take_lease(&who, now, now + 60_000).await })
        };
        let (a, b) = (take(format!("a{round}")), take(format!("b{round}")));
        let (a, b) = (a.await??, b.await??);
        assert!(a ^ b, "round {round}: {a} {b}");
        let winner = if a {
            format!("a{round}")
        } else {
            format!("b{round}")
        };
        // The holder may take it again (a retried invocation); nobody else may.
        assert!(s.take_lease(&winner, now + 1, now + 60_000).await?);
        assert!(!s.take_lease("c", now + 59_999, now + 120_000).await?);
        // A release by someone else changes nothing; the holder's frees it.
        s.release_lease("c").await?;
        assert!(!s.take_lease("c", now + 1, now + 60_000).await?);
        s.release_lease(&winner).await?;
    }
    // An expired lease is taken over.
    assert!(s.take_lease("old", now, now + 1_000).await?);
    assert!(s.take_lease("new", now + 1_000, now + 61_000).await?);
    assert!(!s.take_lease("old", now + 1_001, now + 2_000).await?);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_registry_keeps_intersections_and_their_timing_history() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("registry").await? else {
        return Ok(());
    };
    let city = generate_city(&CityConfig {
        intersections: 30,
        ..CityConfig::default()
    })?;
    for x in &city.intersections {
        s.create_intersection(x).await?;
    }
    let dup = s.create_intersection(&city.intersections[0]).await;
    assert!(matches!(dup, Err(PortError::AlreadyExists(_))), "{dup:?}");
    let mut all = s.intersections().await?;
    all.sort_by(|a, b| a.id.cmp(&b.id));
    // Pages of 7 in id order, as the API serves them: 7, 7, 7, 7, 2 and no next.
    let mut paged = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let (page, next) = s.intersections_page(after.as_ref(), 7).await?;
        assert!(page.len() <= 7);
        paged.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(
        paged.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
        all.iter().map(|x| x.id.clone()).collect::<Vec<_>>()
    );
    let last = all.last().map(|x| x.id.clone());
    assert_eq!(
        s.intersections_page(last.as_ref(), 7).await?,
        (vec![], None)
    );
    // The city's extra fields round-trip; DynamoDB has one number type, so a whole float
    // (`238.0`) comes back as the integer it equals (`238`).
    assert_same(
        &serde_json::to_value(&all)?,
        &serde_json::to_value(&city.intersections)?,
        "intersections",
    );
    assert!(s.delete_intersection(&city.intersections[29].id).await?);
    assert!(!s.delete_intersection(&city.intersections[29].id).await?);
    // Retiming skips the deleted intersection and keeps a history, oldest first.
    let mut phases = city.intersections[0].phases.clone();
    for (i, from) in ["15m@2026-01-05T08:00:00Z", "15m@2026-01-05T08:15:00Z"]
        .iter()
        .enumerate()
    {
        phases[0].green_s = 20.0 + i as f64;
        // The plan goes with the timings; an offset (when coordinated) round-trips, as does none.
        let plan = traffic_core::plan::Plan {
            offset_s: (i == 1).then_some(12.5),
            ..traffic_core::plan::plan(&phases, 4.0, None, &Default::default())
        };
        let (_, version) = s
            .intersection_versioned(&city.intersections[0].id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        let skipped = s
            .set_timings(
                &[
                    TimingUpdate {
                        id: city.intersections[0].id.clone(),
                        plan: Some(plan.clone()),
                        phases: phases.clone(),
                        expected_version: version,
                    },
                    TimingUpdate {
                        id: city.intersections[29].id.clone(),
                        plan: None,
                        phases: phases.clone(),
                        expected_version: traffic_ports::Version::new("deleted meanwhile"),
                    },
                ],
                &from.parse()?,
            )
            .await?;
        assert_eq!(skipped, vec![city.intersections[29].id.clone()]);
        let stored = s.intersection(&city.intersections[0].id).await?;
        assert_eq!(stored.and_then(|x| x.plan), Some(plan), "{from}");
    }
    let x = s
        .intersection(&city.intersections[0].id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(x.phases, phases);
    assert_eq!(x.retimed_from.as_deref(), Some("15m@2026-01-05T08:15:00Z"));
    assert!(s.intersection(&city.intersections[29].id).await?.is_none());
    let h = s.timing_history(&city.intersections[0].id).await?;
    assert_eq!(
        h.iter().map(|t| t.from.to_string()).collect::<Vec<_>>(),
        vec!["15m@2026-01-05T08:00:00Z", "15m@2026-01-05T08:15:00Z"]
    );
    assert_eq!(h[1].phases, phases);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

fn lamps(green: LampState, at: i64) -> LightLamps {
    LightLamps {
        lamps: Lamps {
            green,
            ..Lamps::default()
        },
        as_of_ms: Some(at),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn lamp_states_alarms_and_repairs_behave_as_in_the_embedded_store() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("lamps").await? else {
        return Ok(());
    };
    // 150 lights: more than one BatchGetItem (100 keys) and BatchWriteItem (25 items).
    let lights: Vec<(IntersectionId, LightIndex)> = (0..38)
        .flat_map(|i| (0..4).map(move |l| (id(&format!("I-{i:04}")), light(l))))
        .take(150)
        .collect();
    let fresh = s.lamp_states(&lights).await?;
    assert!(fresh.values().all(|v| *v == LightLamps::default()));
    let states: Vec<_> = lights
        .iter()
        .map(|k| (k.clone(), lamps(LampState::Ok, 1)))
        .collect();
    s.put_lamp_states(&states).await?;
    // Changing one light keeps the others of its intersection.
    s.put_lamp_states(&[((id("I-0001"), light(2)), lamps(LampState::Broken, 2))])
        .await?;
    let again = s.lamp_states(&lights).await?;
    assert_eq!(again.len(), 150);
    assert_eq!(
        again[&(id("I-0001"), light(2))],
        lamps(LampState::Broken, 2)
    );
    assert_eq!(again[&(id("I-0001"), light(3))], lamps(LampState::Ok, 1));

    let alarm = Alarm {
        intersection_id: id("I-0001"),
        light: light(2),
        lamp: LampColour::Green,
        ts_ms: 2,
        position: Some(Position {
            lat: 41.9,
            lon: 12.5,
        }),
        silent: None,
    };
    let first = s.record_alarm(&alarm).await?;
    assert!(!first.published);
    s.mark_published(&alarm.id()).await?;
    let second = s.record_alarm(&alarm).await?;
    assert!(second.published, "a retry finds the published record");
    assert!(matches!(
        s.mark_published(&"I-9#0#red#1".parse()?).await,
        Err(PortError::NotFound(_))
    ));
    let at = traffic_core::time::parse_rfc3339_ms("2026-01-05T09:00:00Z");
    let at = at.ok_or_else(|| anyhow::anyhow!("time"))?;
    let closed = s.repair(&id("I-0001"), light(2), at).await?;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].repaired_at_ms, Some(at));
    assert!(s.repair(&id("I-0001"), light(2), at + 1).await?.is_empty());
    assert_eq!(s.take_repairs().await?, vec![(id("I-0001"), light(2))]);
    assert!(s.take_repairs().await?.is_empty(), "an order is taken once");
    let all = s.alarms().await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].alarm, alarm);
    assert!(all[0].published);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn statistics_add_up_and_results_come_back_in_window_order() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("results").await? else {
        return Ok(());
    };
    let sample = |function: Series, minute: i64, max: u64| StatsSample {
        function,
        minute_ms: minute,
        invocations: 1,
        records: 10,
        accepted: 9,
        latency_ms_sum: 100,
        latency_ms_max: max,
        read_units: 0.5,
        write_units: 3.0,
    };
    s.add_stats(&sample(Series::Ingest, 60_000, 30)).await?;
    s.add_stats(&sample(Series::Ingest, 60_000, 50)).await?;
    s.add_stats(&sample(Series::Ingest, 60_000, 20)).await?;
    s.add_stats(&sample(Series::Fault, 60_000, 5)).await?;
    s.add_stats(&sample(Series::Ingest, 120_000, 5)).await?;
    let got = s.stats(60_000).await?;
    assert_eq!(
        got.iter()
            .map(|g| (
                g.minute_ms,
                g.function,
                g.invocations,
                g.records,
                g.latency_ms_max
            ))
            .collect::<Vec<_>>(),
        vec![
            (60_000, Series::Fault, 1, 10, 5),
            (60_000, Series::Ingest, 3, 30, 50),
            (120_000, Series::Ingest, 1, 10, 5)
        ]
    );
    assert_eq!(s.stats(120_000).await?.len(), 1);
    // The capacity units a function recorded add up too.
    assert_eq!((got[1].read_units, got[1].write_units), (1.5, 9.0));

    let key = |len: i64, start: i64| WindowKey {
        length: WindowLength::from_ms(len).unwrap_or_else(|| panic!("length")),
        start_ms: start,
    };
    let result = |k: WindowKey, closed: bool| {
        let mut r = Rollup::compact(
            pane(k.start_ms),
            [&delta(k.start_ms, "s", 1, 40)],
            5_000,
            200,
        );
        r.window = k;
        r.finish(closed, 10)
    };
    let keys = [
        key(3_600_000, 1_767_600_000_000),
        key(900_000, 1_767_600_900_000),
        key(900_000, 1_767_600_000_000),
    ];
    s.put_results(&[
        result(keys[0], false),
        result(keys[1], false),
        result(keys[2], true),
    ])
    .await?;
    let back = s.results().await?;
    assert_eq!(
        back.iter().map(|r| r.window).collect::<Vec<_>>(),
        vec![keys[2], keys[1], keys[0]]
    );
    assert_eq!(back[0], result(keys[2], true));
    // The only closed window, whichever length is asked from the start of time.
    assert_eq!(
        s.closed_windows_from(keys[2].length, i64::MIN).await?,
        vec![keys[2]]
    );
    // Bounded reads: the closed windows of one length from a start on, and the newest
    // results of one length.
    let fifteen = keys[2].length;
    assert_eq!(
        s.closed_windows_from(fifteen, keys[2].start_ms).await?,
        vec![keys[2]]
    );
    assert!(
        s.closed_windows_from(fifteen, keys[1].start_ms)
            .await?
            .is_empty()
    );
    assert!(s.closed_windows_from(keys[0].length, 0).await?.is_empty());
    let recent = s.recent_results(fifteen, 1).await?;
    assert_eq!(
        recent.iter().map(|r| r.window).collect::<Vec<_>>(),
        vec![keys[1]]
    );
    let recent = s.recent_results(fifteen, 5).await?;
    assert_eq!(
        recent.iter().map(|r| r.window).collect::<Vec<_>>(),
        vec![keys[1], keys[2]]
    );
    assert_eq!(s.recent_results(keys[0].length, 5).await?.len(), 1);
    assert!(s.recent_results(fifteen, 0).await?.is_empty());
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_city_of_100000_intersections_stores_its_results_and_network_state_whole()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("network").await? else {
        return Ok(());
    };
    assert_eq!(s.network().await?, None);
    let state = |start: &str, n: usize| traffic_core::query::NetworkState {
        length: "15m".into(),
        start: start.into(),
        end: "2026-01-05T08:15:00Z".into(),
        closed: false,
        intersections: (0..n)
            .map(|i| traffic_core::query::IntersectionState {
                intersection_id: id(&format!("I-{i:06}")),
                mean_speed_kmh: (i % 7 != 0).then_some(20.0 + i as f64 / 100.0),
                vehicles: i as u64,
                readings: 4,
            })
            .collect(),
    };
    // 100,000 intersections: in parts, every one listed.
    let big = state("2026-01-05T08:00:00Z", 100_000);
    s.put_network(&big).await?;
    assert_eq!(s.network().await?.as_ref(), Some(&big));
    // A small one replaces it in one item.
    let newer = state("2026-01-05T08:15:00Z", 3);
    s.put_network(&newer).await?;
    assert_eq!(s.network().await?, Some(newer));

    // A window whose 100,000 intersections are all above the median: the
    // result commits, closed and provisional, and comes back whole.
    let k = pane(P0);
    let above: Vec<MedianEntry> = (0..100_000)
        .map(|i| MedianEntry {
            intersection_id: id(&format!("I-{i:06}")),
            median_vehicles: 10.0 + (i % 50) as f64 / 2.0,
        })
        .collect();
    let result = |closed: bool| WindowResult {
        window: k,
        closed,
        readings: 400_000,
        top: Vec::new(),
        global_median_vehicles: 9.5,
        above_median: above.clone(),
    };
    let before = s.metrics().snapshot();
    s.put_results(&[result(false)]).await?;
    assert_eq!(s.results().await?, vec![result(false)]);
    s.put_results(&[result(true)]).await?;
    assert_eq!(s.recent_results(k.length, 1).await?, vec![result(true)]);
    let used = s.metrics().snapshot().since(&before);
    println!(
        "a result with 100,000 intersections above the median, written twice and read twice: {used:?}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_write_conditional_on_a_version_applies_only_if_nothing_changed() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("versions").await? else {
        return Ok(());
    };
    let city = generate_city(&CityConfig {
        intersections: 2,
        ..CityConfig::default()
    })?;
    let x = city.intersections[0].clone();
    s.create_intersection(&x).await?;
    let (read, v1) = s
        .intersection_versioned(&x.id)
        .await?
        .unwrap_or_else(|| panic!("stored"));
    assert_eq!(read.id, x.id);
    let mut renamed = read.clone();
    renamed.lat += 0.001;
    let v2 = s.replace_intersection_if(&renamed, &v1).await?;
    assert_ne!(v2, v1);
    // A second writer still holding v1 is refused; the store keeps the first write.
    let late = s.replace_intersection_if(&read, &v1).await;
    assert!(matches!(late, Err(PortError::Conflict(_))), "{late:?}");
    assert_eq!(s.intersection(&x.id).await?, Some(renamed.clone()));
    // A retiming computed from the version before the edit is skipped: the edit stays.
    let retiming = |expected_version: &traffic_ports::Version| TimingUpdate {
        id: x.id.clone(),
        plan: None,
        phases: x.phases.clone(),
        expected_version: expected_version.clone(),
    };
    let skipped = s
        .set_timings(&[retiming(&v1)], &"15m@2026-01-05T08:00:00Z".parse()?)
        .await?;
    assert_eq!(skipped, vec![x.id.clone()]);
    assert_eq!(s.intersection(&x.id).await?, Some(renamed.clone()));
    assert!(s.timing_history(&x.id).await?.is_empty());
    // One computed from the current version applies, and is a change too.
    let skipped = s
        .set_timings(&[retiming(&v2)], &"15m@2026-01-05T08:00:00Z".parse()?)
        .await?;
    assert!(skipped.is_empty());
    let (_, v3) = s
        .intersection_versioned(&x.id)
        .await?
        .unwrap_or_else(|| panic!("stored"));
    assert_ne!(v3, v2);
    let stale = s.delete_intersection_if(&x.id, &v2).await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");
    s.delete_intersection_if(&x.id, &v3).await?;
    assert_eq!(s.intersection(&x.id).await?, None);
    let gone = s.replace_intersection_if(&renamed, &v3).await;
    assert!(matches!(gone, Err(PortError::NotFound(_))), "{gone:?}");
    let gone = s.delete_intersection_if(&x.id, &v3).await;
    assert!(matches!(gone, Err(PortError::NotFound(_))), "{gone:?}");
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_consumer_at_the_last_record_of_a_shard_has_caught_up() -> anyhow::Result<()> {
    let Some(env) = aws_env("caughtup").await else {
        return Ok(());
    };
    let r = env.resources(1);
    traffic_aws::setup::ensure_stream(&env.clients, &r.stream, 1).await?;
    let shards = KinesisShards::new(env.clients.kinesis.clone(), Some(r.stream.clone()));
    let shard = shards
        .shards()
        .await?
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_else(|| panic!("a shard"));
    // An empty shard: nothing to read from its start.
    assert!(shards.caught_up(&shard, None).await?);
    let sink = traffic_aws::kinesis::KinesisSink::new(env.clients.kinesis.clone(), &r.stream);
    let entries: Vec<traffic_aws::kinesis::Entry> = (0..3u8)
        .map(|i| traffic_aws::kinesis::Entry {
            partition_key: "I-0001".into(),
            data: vec![i],
        })
        .collect();
    sink.put(&entries).await?;
    let source = traffic_aws::KinesisSource::new(&env.clients, &r.stream).await?;
    let read = source
        .read(&shard, traffic_ports::ReadFrom::OLDEST, 10)
        .await?;
    assert_eq!(read.records.len(), 3);
    let last = read.records.last().map(|r| r.seq.clone());
    assert!(!shards.caught_up(&shard, None).await?);
    let last = last.unwrap_or_else(|| panic!("put"));
    assert!(shards.caught_up(&shard, Some(&last)).await?);
    assert!(!shards.caught_up(&shard, Some(&read.records[1].seq)).await?);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_backfill_of_year_old_readings_expires_a_retention_after_it_was_written()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("expiry").await? else {
        return Ok(());
    };
    // Readings of a year ago, written now: counted from their event time they would already
    // be past the retention, and gone before the merge compacts them.
    let year_ago = P0 - 365 * 86_400_000;
    let now = P0 + 3_600_000;
    s.commit(
        &commit("s0", None, 3, None, vec![delta(year_ago, "s0", 1, 12)]),
        now,
    )
    .await?;
    let scan = env
        .clients
        .dynamodb
        .scan()
        .table_name(&r.state_table)
        .send()
        .await?;
    let expiries: Vec<i64> = scan
        .items()
        .iter()
        .filter_map(|i| i.get("expires_at"))
        .filter_map(|v| v.as_n().ok())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(!expiries.is_empty(), "the delta and its index expire");
    let expected = StoreOptions::default().expires_at(now);
    assert!(expected > now / 1000, "a retention from now");
    assert!(
        expiries.iter().all(|e| *e == expected),
        "{expiries:?} vs {expected}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_lamps_not_ok_are_summarised_exactly_and_an_older_tables_are_found_again_as_unknown()
-> anyhow::Result<()> {
    use traffic_core::lamps::LampSummary;
    let Some((env, r, s)) = store("not-ok").await? else {
        return Ok(());
    };
    let none = BTreeMap::new();
    assert_eq!(s.lamp_summaries().await?, Some(none.clone()), "a new table");
    s.put_lamp_states(&[
        ((id("I-0001"), light(2)), lamps(LampState::Broken, 2)),
        ((id("I-0002"), light(0)), lamps(LampState::Ok, 2)),
    ])
    .await?;
    let broken_green = Lamps {
        green: LampState::Broken,
        ..Lamps::default()
    };
    let only_1 = BTreeMap::from([(
        id("I-0001"),
        LampSummary::NotOk(BTreeMap::from([(light(2), broken_green)])),
    )]);
    assert_eq!(s.lamp_summaries().await?, Some(only_1.clone()));
    // A table whose lamp states were written before the summaries' parts existed (the older
    // single item): found by one scan, as unknown (read until its lamps are next written).
    let x = generate_city(&CityConfig {
        intersections: 1,
        ..CityConfig::default()
    })?
    .intersections
    .remove(0);
    assert_eq!(x.id, id("I-0001"));
    s.create_intersection(&x).await?;
    for p in 0..traffic_aws::lamp_summary::SUMMARY_PARTS {
        env.clients
            .dynamodb
            .delete_item()
            .table_name(&r.registry_table)
            .key(
                "pk",
                AttributeValue::S(traffic_aws::lamp_summary::part_pk(p)),
            )
            .key("sk", AttributeValue::S("state".into()))
            .send()
            .await?;
    }
    let unknown = BTreeMap::from([(id("I-0001"), LampSummary::Unknown)]);
    assert_eq!(s.lamp_summaries().await?, Some(unknown));
    // Written again: exact; back to ok: forgotten.
    s.put_lamp_states(&[((id("I-0001"), light(2)), lamps(LampState::Broken, 3))])
        .await?;
    assert_eq!(s.lamp_summaries().await?, Some(only_1));
    s.put_lamp_states(&[((id("I-0001"), light(2)), lamps(LampState::Ok, 4))])
        .await?;
    assert_eq!(s.lamp_summaries().await?, Some(none));
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_registry_keeps_control_modes_proposals_and_who_changed_the_timings()
-> anyhow::Result<()> {
    use traffic_core::control::{Control, ControlMode, Proposal};
    use traffic_core::safe_timing::TimingLimits;
    use traffic_ports::{ChangedBy, ProposalUpdate, TimingChange};
    let Some((env, r, s)) = store("control").await? else {
        return Ok(());
    };
    let city = generate_city(&CityConfig {
        intersections: 2,
        ..CityConfig::default()
    })?;
    let mut x = city.intersections[0].clone();
    x.control = Control {
        mode: ControlMode::Manual,
        limits: Some(TimingLimits {
            min_green_s: vec![Some(12.5), None],
            max_cycle_s: Some(90.0),
            max_green_change: Some(0.2),
        }),
    };
    s.create_intersection(&x).await?;
    // Webster's proposal, recorded as the merge does: conditional on the version read.
    let (_, version) = s
        .intersection_versioned(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    let vehicles = [120, 30, 110, 25];
    let timing = traffic_core::webster::retime(
        &x,
        &vehicles,
        900.0,
        &traffic_core::webster::WebsterConfig::default(),
    );
    let phases = traffic_core::webster::apply(&x.phases, &timing);
    x.proposal = Some(Proposal::of(
        &x,
        &vehicles,
        "15m@2026-01-05T08:00:00Z".parse()?,
        &timing,
        phases,
    ));
    let generation = s.directory_generation().await?;
    let update = ProposalUpdate {
        id: x.id.clone(),
        proposal: x
            .proposal
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no proposal"))?,
        expected_version: version.clone(),
    };
    let before = s.metrics().snapshot();
    assert_eq!(
        s.set_proposals(std::slice::from_ref(&update)).await?,
        vec![]
    );
    let proposal_units = s.metrics().snapshot().since(&before).write_capacity_units;
    // The version moved, so the same proposal from the old version is skipped; the directory
    // did not change (the functions' caches are not reloaded for a proposal).
    let (_, recorded) = s
        .intersection_versioned(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_ne!(recorded, version);
    assert_eq!(s.set_proposals(&[update]).await?, vec![x.id.clone()]);
    assert_eq!(s.directory_generation().await?, generation);
    let back = s
        .intersection(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_same(
        &serde_json::to_value(&back)?,
        &serde_json::to_value(&x)?,
        "control and proposal",
    );
    assert_eq!(back.control, x.control);
    // An intersection without a control stores none and reads as adaptive.
    s.create_intersection(&city.intersections[1]).await?;
    let plain = s
        .intersection(&city.intersections[1].id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(plain.control, Control::default());
    assert_eq!(plain.proposal, None);

    // Two retimings with an operator's edit between them: the history says who, in order.
    let mut phases = x.phases.clone();
    let mut history_units = 0.0;
    for (i, from) in ["15m@2026-01-05T08:00:00Z", "15m@2026-01-05T08:15:00Z"]
        .iter()
        .enumerate()
    {
        if i == 1 {
            let at = traffic_core::time::parse_rfc3339_ms("2026-01-05T08:20:00Z")
                .ok_or_else(|| anyhow::anyhow!("time"))?;
            let mut edited = phases.clone();
            edited[0].green_s = 33.0;
            let change =
                TimingChange::by_operator(pane(at).length, at, Some("ops@example".into()), edited);
            let before = s.metrics().snapshot();
            s.record_timing_change(&x.id, &change).await?;
            history_units = s.metrics().snapshot().since(&before).write_capacity_units;
        }
        phases[0].green_s = 20.0 + i as f64;
        let (_, version) = s
            .intersection_versioned(&x.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        let skipped = s
            .set_timings(
                &[TimingUpdate {
                    id: x.id.clone(),
                    plan: None,
                    phases: phases.clone(),
                    expected_version: version,
                }],
                &from.parse()?,
            )
            .await?;
        assert!(skipped.is_empty());
    }
    let h = s.timing_history(&x.id).await?;
    let who: Vec<_> = h
        .iter()
        .map(|t| {
            let at = t.at_ms.map(traffic_core::time::format_rfc3339_ms);
            (t.by, t.from.to_string(), at, t.operator.clone())
        })
        .collect();
    assert_eq!(
        who,
        vec![
            (
                ChangedBy::Retiming,
                "15m@2026-01-05T08:00:00Z".to_owned(),
                None,
                None
            ),
            (
                ChangedBy::Operator,
                "15m@2026-01-05T08:00:00Z".to_owned(),
                Some("2026-01-05T08:20:00Z".to_owned()),
                Some("ops@example".to_owned())
            ),
            (
                ChangedBy::Retiming,
                "15m@2026-01-05T08:15:00Z".to_owned(),
                None,
                None
            ),
        ]
    );
    assert_eq!(h[1].phases[0].green_s, 33.0);
    let proposal_bytes = serde_json::to_vec(&x.proposal)?.len();
    println!(
        "control: a manual intersection's proposal write {proposal_units} write units (proposal {proposal_bytes} bytes of JSON, a two-phase crossing); an operator's history entry {history_units} write units (the entry, and the edit filed by its day for the archive)"
    );
    assert!(proposal_units <= 2.0 && history_units <= 2.0);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_functions_list_the_intersections_again_only_when_the_directory_generation_moved()
-> anyhow::Result<()> {
    use std::time::Duration;
    use traffic_functions::directory::Directory;
    use traffic_ports::UsageMeter;
    let Some((env, r, s)) = store("directory").await? else {
        return Ok(());
    };
    let city = generate_city(&CityConfig {
        intersections: 40,
        ..CityConfig::default()
    })?;
    let (first, rest) = city.intersections.split_at(1);
    for x in rest {
        s.create_intersection(x).await?;
    }
    let g0 = s.directory_generation().await?.unwrap_or_default();
    assert_eq!(g0, 39, "one step per intersection created");
    // Checked at every lookup (ttl 0): listed once, then only the generation is read.
    let dir = Directory::new(Duration::ZERO, Duration::ZERO);
    let ids: Vec<_> = city.intersections.iter().map(|x| x.id.clone()).collect();
    assert_eq!(dir.lookup(&s, &ids).await?.len(), 39);
    let before = s.usage();
    for _ in 0..5 {
        assert_eq!(dir.lookup(&s, &ids).await?.len(), 39);
    }
    let checks = s.usage().since(&before);
    assert_eq!(
        (checks.read_requests, checks.read_units),
        (5, 2.5),
        "five eventually consistent GetItems of the generation, no listing: {checks:?}"
    );
    // A retiming is not a change of the directory.
    let t = TimingUpdate {
        id: rest[0].id.clone(),
        plan: None,
        phases: rest[0].phases.clone(),
        expected_version: s
            .intersection_versioned(&rest[0].id)
            .await?
            .map_or_else(|| traffic_ports::Version::new(""), |(_, v)| v),
    };
    s.set_timings(&[t], &pane(0)).await?;
    assert_eq!(s.directory_generation().await?, Some(g0));
    // A created intersection is found at the next check; a deleted one is gone.
    s.create_intersection(&first[0]).await?;
    assert_eq!(dir.lookup(&s, &ids).await?.len(), 40);
    assert!(s.delete_intersection(&rest[0].id).await?);
    assert_eq!(s.directory_generation().await?, Some(g0 + 2));
    let after = dir.lookup(&s, &ids).await?;
    assert_eq!(after.len(), 39);
    assert!(!after.contains_key(&rest[0].id));
    // Without a check due, nothing is read at all.
    let lazy = Directory::new(Duration::from_secs(3600), Duration::from_secs(3600));
    lazy.lookup(&s, &ids).await?;
    let before = s.usage();
    lazy.lookup(&s, &ids).await?;
    assert_eq!(s.usage().since(&before).read_requests, 0);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_archive_puts_a_windows_tables_in_the_bucket_and_the_same_bytes_when_redone()
-> anyhow::Result<()> {
    use traffic_aws::archive::S3Archive;
    use traffic_core::outputs::WindowTables;
    use traffic_ports::OutputArchive;
    let Some(env) = aws_env("archive").await else {
        return Ok(());
    };
    let bucket = format!("{}-archive", env.prefix).to_lowercase();
    traffic_aws::setup::ensure_bucket(&env.clients, &bucket).await?;
    let r = Rollup::compact(pane(P0), [&delta(P0, "s0", 1, 40)], 5_000, 200);
    let tables = WindowTables::of(&r, &r.finish(true, 10));
    let archive = S3Archive::new(env.clients.s3.clone(), Some(bucket.clone()));
    let read = |key: String| {
        let s3 = env.clients.s3.clone();
        let bucket = bucket.clone();
        async move {
            let o = s3.get_object().bucket(bucket).key(key).send().await?;
            anyhow::Ok(o.body.collect().await?.into_bytes().to_vec())
        }
    };
    let expected = traffic_tables::objects(&tables)?;
    for _ in 0..2 {
        archive.put_window(&tables).await?;
        for (key, bytes) in &expected {
            assert_eq!(&read(key.clone()).await?, bytes, "{key}");
        }
    }
    let listed = env
        .clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await?;
    assert_eq!(listed.contents().len(), 3, "three tables, written over");
    // An intersection's history reads its row back; a window never archived is left out.
    let row = &tables.intersections[0];
    let later = WindowKey {
        start_ms: tables.window.start_ms + 900_000,
        ..tables.window
    };
    let history = archive
        .intersection_windows(&row.intersection_id, &[tables.window, later])
        .await?;
    assert_eq!(history, [(tables.window, row.clone())]);
    // A closed window's download reads its rows back; one never archived is none.
    assert_eq!(
        archive.window_rows(&tables.window).await?,
        Some(tables.intersections.clone())
    );
    assert_eq!(archive.window_rows(&later).await?, None);
    for (key, _) in &expected {
        env.clients
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await?;
    }
    env.clients
        .s3
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    Ok(())
}
