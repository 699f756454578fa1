//! The DynamoDB and SNS adapters against the emulator, port by port, with the semantics of the
//! embedded store: conditional commits, batches past the per-request limits, the registry,
//! lamp states and alarms, repairs, statistics and results.

mod aws_support;

use aws_support::{AwsEnv, assert_same, aws_env};
use std::collections::BTreeMap;
use traffic_aws::setup::{Resources, ensure_table};
use traffic_aws::{AwsNames, DynamoStore, StoreOptions};
use traffic_core::SequenceNumber;
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::pane::{Commit, PaneItem, PaneKey, ShardMeta};
use traffic_core::reading::{LampColour, LampState, Lamps, Position};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{
    LampStore, PortError, Registry, ResultStore, StateStore, StatsSample, StatsStore,
};
use traffic_sim::{CityConfig, generate_city};

async fn store(test: &str) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let r = env.resources(1);
    for t in [&r.state_table, &r.registry_table, &r.results_table] {
        ensure_table(&env.clients, t).await?;
    }
    let names = AwsNames {
        state_table: Some(r.state_table.clone()),
        registry_table: Some(r.registry_table.clone()),
        results_table: Some(r.results_table.clone()),
        ..AwsNames::default()
    };
    let s = DynamoStore::new(env.clients.dynamodb.clone(), names, StoreOptions::default());
    Ok(Some((env, r, s)))
}

fn meta(shard: &str, seq: u128) -> ShardMeta {
    ShardMeta {
        shard_id: shard.into(),
        applied_through: Some(SequenceNumber::from_u128(seq)),
        max_event_ms: Some(1_767_600_000_000 + seq as i64),
        ..ShardMeta::default()
    }
}

fn item(start_ms: i64, shard: &str, bucket: u32) -> PaneItem {
    PaneItem {
        key: PaneKey {
            start_ms,
            shard_id: shard.into(),
            bucket,
        },
        length_ms: 900_000,
        intersections: BTreeMap::new(),
    }
}

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn light(l: i64) -> LightIndex {
    LightIndex::new(l).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_conditional_on_the_stored_sequence_number_and_all_or_nothing()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("commit").await? else {
        return Ok(());
    };
    let p0 = 1_767_600_000_000;
    let items = [
        item(p0, "s0", 0),
        item(p0, "s0", 1),
        item(p0 + 900_000, "s0", 0),
    ];
    s.commit(&Commit {
        expected: None,
        meta: meta("s0", 5),
        items: items.iter().collect(),
    })
    .await?;
    // A second "first" commit and a stale one are refused and write nothing.
    for expected in [None, Some(SequenceNumber::from_u128(4))] {
        let stray = item(p0 + 1_800_000, "s0", 0);
        let e = s
            .commit(&Commit {
                expected,
                meta: meta("s0", 9),
                items: vec![&stray],
            })
            .await;
        assert!(matches!(e, Err(PortError::Conflict(_))), "{e:?}");
    }
    let keys: Vec<PaneKey> = items.iter().map(|i| i.key.clone()).collect();
    let (m, loaded) = s.load_shard("s0", &keys).await?;
    assert_eq!(m, Some(meta("s0", 5)));
    assert_eq!(loaded.len(), 3);
    assert_eq!(s.pane_starts().await?, vec![p0, p0 + 900_000]);
    s.commit(&Commit {
        expected: Some(SequenceNumber::from_u128(5)),
        meta: meta("s0", 7),
        items: vec![],
    })
    .await?;
    s.commit(&Commit {
        expected: None,
        meta: meta("s1", 3),
        items: vec![&items[0]],
    })
    .await?;
    let metas = s.shard_metas().await?;
    assert_eq!(metas, vec![meta("s0", 7), meta("s1", 3)]);
    let mut pane = s.pane_items(p0).await?;
    pane.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        pane.len(),
        2,
        "the same item key written by two shards is one item each? {pane:?}"
    );
    s.delete_panes_before(p0 + 900_000).await?;
    assert_eq!(s.pane_starts().await?, vec![p0 + 900_000]);
    assert!(s.pane_items(p0).await?.is_empty());
    // Transactions stay within 100 actions; small items allow more per commit than 400 KB
    // ones would.
    let n = s.max_items_per_commit();
    assert!((9..=49).contains(&n), "{n}");
    let writes = s.metrics().snapshot();
    assert!(
        writes.write_requests >= 4 && writes.read_requests >= 4,
        "{writes:?}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
        s.set_timings(
            &[
                (city.intersections[0].id.clone(), phases.clone()),
                (city.intersections[29].id.clone(), phases.clone()),
            ],
            &from.parse()?,
        )
        .await?;
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
    };
    let first = s.record_alarm(&alarm).await?;
    assert!(!first.published);
    s.mark_published(&alarm.id()).await?;
    let second = s.record_alarm(&alarm).await?;
    assert!(second.published, "a retry finds the published record");
    assert!(matches!(
        s.mark_published("I-9#0#red#1").await,
        Err(PortError::NotFound(_))
    ));
    let closed = s
        .repair(&id("I-0001"), light(2), "2026-01-05T09:00:00Z")
        .await?;
    assert_eq!(closed.len(), 1);
    assert_eq!(
        closed[0].repaired_at.as_deref(),
        Some("2026-01-05T09:00:00Z")
    );
    assert!(s.repair(&id("I-0001"), light(2), "later").await?.is_empty());
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
async fn statistics_add_up_and_results_come_back_in_window_order() -> anyhow::Result<()> {
    let Some((env, r, s)) = store("results").await? else {
        return Ok(());
    };
    let sample = |f: &str, minute: i64, max: u64| StatsSample {
        function: f.into(),
        minute_ms: minute,
        invocations: 1,
        records: 10,
        accepted: 9,
        latency_ms_sum: 100,
        latency_ms_max: max,
    };
    s.add_stats(&sample("ingest", 60_000, 30)).await?;
    s.add_stats(&sample("ingest", 60_000, 50)).await?;
    s.add_stats(&sample("ingest", 60_000, 20)).await?;
    s.add_stats(&sample("fault", 60_000, 5)).await?;
    s.add_stats(&sample("ingest", 120_000, 5)).await?;
    let got = s.stats(60_000).await?;
    assert_eq!(
        got.iter()
            .map(|g| (
                g.minute_ms,
                g.function.as_str(),
                g.invocations,
                g.records,
                g.latency_ms_max
            ))
            .collect::<Vec<_>>(),
        vec![
            (60_000, "fault", 1, 10, 5),
            (60_000, "ingest", 3, 30, 50),
            (120_000, "ingest", 1, 10, 5)
        ]
    );
    assert_eq!(s.stats(120_000).await?.len(), 1);

    let key = |len: i64, start: i64| WindowKey {
        length: WindowLength::from_ms(len).unwrap_or_else(|| panic!("length")),
        start_ms: start,
    };
    let result = |k: WindowKey, closed: bool| {
        let mut acc = traffic_core::query::WindowAccumulator::new(k);
        acc.add(&item(k.start_ms, "s", 0));
        acc.finish(closed, 10)
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
async fn the_network_state_is_one_item_replaced_on_every_run() -> anyhow::Result<()> {
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
                intersection_id: id(&format!("I-{i:05}")),
                mean_speed_kmh: (i % 7 != 0).then_some(20.0 + i as f64 / 100.0),
                vehicles: i as u64,
                readings: 4,
            })
            .collect(),
    };
    // 10,000 intersections fit one item.
    let big = state("2026-01-05T08:00:00Z", 10_000);
    s.put_network(&big).await?;
    assert_eq!(s.network().await?.as_ref(), Some(&big));
    let newer = state("2026-01-05T08:15:00Z", 3);
    s.put_network(&newer).await?;
    assert_eq!(s.network().await?, Some(newer));

    // One that does not fit is stored without its intersections, not refused: the merge run
    // that writes it goes on.
    let names = AwsNames {
        results_table: Some(r.results_table.clone()),
        ..AwsNames::default()
    };
    let opts = StoreOptions {
        max_item_bytes: 4 * 1024,
        ..StoreOptions::default()
    };
    let small = DynamoStore::new(env.clients.dynamodb.clone(), names, opts);
    small.put_network(&big).await?;
    let back = small.network().await?.unwrap_or_else(|| panic!("stored"));
    assert!(back.intersections.is_empty());
    assert_eq!(back.start, big.start);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    // A retiming is a change too.
    s.set_timings(
        &[(x.id.clone(), x.phases.clone())],
        &"15m@2026-01-05T08:00:00Z".parse()?,
    )
    .await?;
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
