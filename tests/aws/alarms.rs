//! The alarm index on DynamoDB against the emulator: a page of
//! `/api/alarms` is one `Query` with `Limit` and `ExclusiveStartKey` (plus the open count's
//! `GetItem`) and reads only the alarms it returns; closing an intersection's alarms reads its
//! open alarms, not the log; a closed alarm carries its expiry for the table's TTL; a recovery
//! resolves only the alarms it selects, keeping why; what a sensor-silent judgment reads.

use crate::support::{AwsEnv, aws_env};
use aws_sdk_dynamodb::types::AttributeValue;
use traffic_aws::setup::{Resources, ensure_table};
use traffic_aws::{AwsNames, DynamoStore, StoreOptions};
use traffic_core::lamps::{Alarm, Silence};
use traffic_core::reading::LampColour;
use traffic_core::{AlarmId, IntersectionId, LightIndex};
use traffic_ports::{AlarmQuery, Closing, LampStore, Registry};

/// 2026-01-05T08:00:00Z.
const T0: i64 = 1_767_600_000_000;
const DAY_MS: i64 = 86_400_000;

async fn store(test: &str) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let r = env.resources(1);
    ensure_table(&env.clients, &r.registry_table).await?;
    let names = AwsNames {
        registry_table: Some(r.registry_table.clone()),
        ..AwsNames::default()
    };
    let s = DynamoStore::new(env.clients.dynamodb.clone(), names, StoreOptions::default());
    Ok(Some((env, r, s)))
}

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn light(l: i64) -> LightIndex {
    LightIndex::new(l).unwrap_or_else(|e| panic!("{e}"))
}

/// Alarm `i`: intersection `I-<i mod 30>`, light `i / 30 mod 4`, `i` seconds after T0.
fn alarm(i: i64) -> Alarm {
    Alarm {
        intersection_id: id(&format!("I-{:04}", i % 30)),
        light: light((i / 30) % 4),
        lamp: LampColour::Red,
        ts_ms: T0 + i * 1000,
        position: None,
        silent: None,
    }
}

fn query(open_only: bool, limit: usize, after: Option<AlarmId>) -> AlarmQuery {
    AlarmQuery {
        open_only,
        limit,
        after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_page_of_alarms_is_one_limited_query_from_the_previous_pages_last_key()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("alarmpages").await? else {
        return Ok(());
    };
    for i in 0..120 {
        s.record_alarm(&alarm(i)).await?;
    }
    // I-0000 .. I-0009 repaired: 40 alarms closed, 80 open.
    for x in 0..10 {
        s.close_alarms(
            &id(&format!("I-{x:04}")),
            None,
            &Closing::at(T0 + DAY_MS, 90 * DAY_MS),
            false,
        )
        .await?;
    }

    for open_only in [false, true] {
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        while pages < 10 {
            let before = s.metrics().snapshot();
            let page = s.alarm_page(&query(open_only, 25, after)).await?;
            let used = s.metrics().snapshot().since(&before);
            pages += 1;
            assert_eq!(
                used.by_operation.get("registry:Query"),
                Some(&1),
                "{used:?}"
            );
            assert_eq!(
                used.by_operation.get("registry:GetItem"),
                Some(&1),
                "{used:?}"
            );
            assert_eq!(used.read_requests, 2, "{used:?}");
            assert_eq!(page.open, 80);
            println!(
                "open_only={open_only} page {pages}: {} alarms, {:.1} read units (query {:.1})",
                page.alarms.len(),
                used.read_capacity_units,
                used.units_by_operation
                    .get("registry:Query")
                    .map_or(0.0, |u| u.units)
            );
            // 25 items of about 0.2 KB, eventually consistent: 1 or 1.5 units, and the count 0.5.
            assert!(used.read_capacity_units <= 2.0, "{used:?}");
            seen.extend(page.alarms.iter().map(|a| a.alarm.ts_ms));
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        let expected: Vec<i64> = (0..120)
            .rev()
            .filter(|i| !open_only || i % 30 >= 10)
            .map(|i| T0 + i * 1000)
            .collect();
        assert_eq!(seen, expected, "open_only={open_only}");
        // 120 or 80 alarms in pages of 25 (the emulator sends no key after the last item).
        assert!(pages <= 5 + usize::from(!open_only), "{pages} pages");
    }
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn closing_an_intersections_alarms_reads_its_open_alarms_and_sets_their_expiry()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("alarmclose").await? else {
        return Ok(());
    };
    for i in 0..120 {
        s.record_alarm(&alarm(i)).await?;
    }
    s.mark_published(&alarm(7).id()).await?;
    let before = s.metrics().snapshot();
    let at = T0 + DAY_MS;
    let closed = s
        .close_alarms(&id("I-0007"), None, &Closing::at(at, 30 * DAY_MS), true)
        .await?;
    let used = s.metrics().snapshot().since(&before);
    // I-0007 had alarms 7, 37, 67, 97 (lights 0..3): read through its 4 by-light items and 4
    // view items, never the 120-item log.
    assert_eq!(
        closed.iter().map(|a| a.alarm.ts_ms).collect::<Vec<_>>(),
        [7, 37, 67, 97].map(|i| T0 + i * 1000).to_vec()
    );
    assert!(closed[0].published);
    assert_eq!(
        used.by_operation.get("registry:Query"),
        Some(&1),
        "{used:?}"
    );
    assert_eq!(
        used.by_operation.get("registry:BatchGetItem"),
        Some(&1),
        "{used:?}"
    );
    assert_eq!(
        used.by_operation.get("registry:TransactWriteItems"),
        Some(&1),
        "{used:?}"
    );
    assert!(used.read_capacity_units <= 8.0, "{used:?}");

    let page = s.alarm_page(&query(true, 200, None)).await?;
    assert_eq!(page.open, 116);
    assert_eq!(page.alarms.len(), 116);
    assert!(
        page.alarms
            .iter()
            .all(|a| a.alarm.intersection_id != id("I-0007"))
    );
    let mut orders = s.take_repairs().await?;
    orders.sort();
    assert_eq!(
        orders,
        (0..4).map(|l| (id("I-0007"), light(l))).collect::<Vec<_>>()
    );

    // The closed log item carries `expires_at` (epoch s) for the table's TTL; an open one none.
    let sk = |i: i64| {
        let ts = T0 + i * 1000;
        format!(
            "{:020}#{}",
            (i128::from(ts) - i128::from(i64::MIN)) as u128,
            alarm(i).id()
        )
    };
    for (i, expected) in [(7, Some((at + 30 * DAY_MS) / 1000)), (8, None)] {
        let item = env
            .clients
            .dynamodb
            .get_item()
            .table_name(&r.registry_table)
            .key("pk", AttributeValue::S("alarm#log".into()))
            .key("sk", AttributeValue::S(sk(i)))
            .send()
            .await?
            .item
            .unwrap_or_default();
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok());
        assert_eq!(expires, expected, "alarm {i}: {item:?}");
    }
    // Everything stays in the log until the TTL deletes it.
    assert_eq!(s.alarms().await?.len(), 120);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn resolving_a_silent_lights_alarm_closes_it_alone_and_keeps_why() -> anyhow::Result<()> {
    let Some((_env, _r, s)) = store("alarmresolve").await? else {
        return Ok(());
    };
    let lamp = alarm(0);
    let silent = Alarm {
        silent: Some(Silence::Light),
        ts_ms: T0 + 60_000,
        ..alarm(0)
    };
    let whole = Alarm {
        silent: Some(Silence::Intersection),
        light: light(0),
        ts_ms: T0 + 120_000,
        ..alarm(1)
    };
    for a in [&lamp, &silent, &whole] {
        s.record_alarm(a).await?;
    }
    assert_eq!(
        silent.id().to_string(),
        format!("I-0000#0#silent#{}", T0 + 60_000)
    );
    let stored = s.record_alarm(&silent).await?;
    assert_eq!(
        stored.alarm.silent,
        Some(Silence::Light),
        "the scope round-trips"
    );

    let before = s.metrics().snapshot();
    let target = silent.id();
    let select = |x: &AlarmId| *x == target;
    let closed = s
        .resolve_alarms(
            &silent.intersection_id,
            Some(silent.light),
            &select,
            &Closing::at(T0 + DAY_MS, 90 * DAY_MS),
            "reported again",
        )
        .await?;
    let used = s.metrics().snapshot().since(&before);
    println!(
        "resolve one alarm: {:.1} read, {:.1} write units, {:?}",
        used.read_capacity_units, used.write_capacity_units, used.by_operation
    );
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].closed_why.as_deref(), Some("reported again"));
    // The lamp alarm of the same light stays open, and so does the other intersection's.
    let open: Vec<AlarmId> = s
        .alarm_page(&query(true, 10, None))
        .await?
        .alarms
        .iter()
        .map(|r| r.alarm.id())
        .collect();
    assert_eq!(open, [whole.id(), lamp.id()]);
    let log = s.alarms().await?;
    let r = log.iter().find(|r| r.alarm.id() == silent.id());
    assert_eq!(
        r.and_then(|r| r.closed_why.as_deref()),
        Some("reported again")
    );
    // Nothing selected: nothing closed, no write.
    let none = s
        .resolve_alarms(
            &whole.intersection_id,
            None,
            &|_: &AlarmId| false,
            &Closing::at(T0 + DAY_MS, 90 * DAY_MS),
            "x",
        )
        .await?;
    assert!(none.is_empty());
    Ok(())
}

/// What the merge's sensor-silent judgment reads from the registry table, measured on 1,000
/// intersections of the sample city's shape (4 lights, 2 phases): the registry `Query` it does
/// at a pane boundary, and the page of the open view it reads each run. Printed for
/// docs/state.md, which scales it to 10,000 intersections (a `Query` bills the bytes read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_silence_judgments_reads_measured_on_a_thousand_intersections() -> anyhow::Result<()> {
    let Some((_env, _r, s)) = store("silencecost").await? else {
        return Ok(());
    };
    let city: traffic_core::City =
        traffic_core::City::parse(include_str!("../../samples/city.json"))?;
    let shape = &city.intersections[1];
    let n = 1000;
    for i in 0..n {
        let mut x = shape.clone();
        x.id = id(&format!("I-{i:05}"));
        s.put_intersection(&x).await?;
    }
    for i in 0..20 {
        s.record_alarm(&alarm(i)).await?;
    }
    let before = s.metrics().snapshot();
    let all = s.intersections().await?;
    let registry = s.metrics().snapshot().since(&before);
    assert_eq!(all.len(), n);
    let before = s.metrics().snapshot();
    let page = s.alarm_page(&query(true, 500, None)).await?;
    let view = s.metrics().snapshot().since(&before);
    assert_eq!(page.alarms.len(), 20);
    println!(
        "silence judgment reads at {n} intersections: registry {:.1} read units in {} requests; \
         open view of 20 alarms {:.1} read units in {} requests",
        registry.read_capacity_units,
        registry.read_requests,
        view.read_capacity_units,
        view.read_requests
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn alarms_recorded_and_never_published_are_paged_once_by_racing_sweeps_on_sns()
-> anyhow::Result<()> {
    use crate::support::receive_alarms;
    use traffic_aws::setup::{ensure_queue, ensure_topic, subscribe_queue};
    use traffic_aws::sns::SnsPublisher;
    use traffic_functions::publication::publish_due;

    let Some((env, r, s)) = store("alarmdue").await? else {
        return Ok(());
    };
    let c = &env.clients;
    let topic = ensure_topic(c, &format!("{}-alarms", env.prefix)).await?;
    let queue = ensure_queue(c, &format!("{}-reader", env.prefix)).await?;
    subscribe_queue(c, &topic, &queue).await?;
    let sns = SnsPublisher::new(c.sns.clone(), Some(topic.clone()));
    // Recorded by a batch that then gave up publishing; held down until 08:10 and still open;
    // held down and closed (the lamp reported ok) inside its hold-down.
    let (lost, held, flap) = (alarm(0), alarm(1), alarm(2));
    s.record_alarm(&lost).await?;
    s.record_held_alarm(&held, T0 + 600_000).await?;
    s.record_held_alarm(&flap, T0 + 600_000).await?;
    let flap_id = flap.id();
    let select = |x: &AlarmId| *x == flap_id;
    s.resolve_alarms(
        &flap.intersection_id,
        Some(flap.light),
        &select,
        &Closing::at(T0 + 60_000, 90 * DAY_MS),
        "lamp reported ok",
    )
    .await?;
    let due = |rs: Vec<traffic_ports::AlarmRecord>| -> Vec<AlarmId> {
        rs.iter().map(|r| r.alarm.id()).collect()
    };
    assert_eq!(due(s.due_alarms(T0 + 599_999, 10).await?), [lost.id()]);
    assert_eq!(
        due(s.due_alarms(T0 + 600_000, 10).await?),
        [lost.id(), held.id()]
    );

    // Two sweeps at 08:11 at once (two merge runs, or a run and a fault batch).
    let all = |_: &traffic_ports::AlarmRecord| true;
    let now = T0 + 660_000;
    let (a, b) = tokio::join!(
        publish_due(&s, &sns, now, now, 10, &all),
        publish_due(&s, &sns, now, now, 10, &all)
    );
    let (a, b) = (a?, b?);
    let mut published = [a.published.clone(), b.published.clone()].concat();
    published.sort();
    assert_eq!(published, [lost.id(), held.id()], "each once: {a:?} {b:?}");
    let again = publish_due(&s, &sns, now, now, 10, &all).await?;
    assert!(again.published.is_empty() && again.due == 0, "{again:?}");

    let got = receive_alarms(c, &queue, std::time::Duration::from_secs(20), |d| {
        d.len() >= 2
    })
    .await?;
    let more = receive_alarms(c, &queue, std::time::Duration::from_secs(2), |_| false).await?;
    let mut ids: Vec<String> = got
        .iter()
        .chain(&more)
        .filter_map(|d| d.attributes.get("alarm_id").cloned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [lost.id().to_string(), held.id().to_string()],
        "one SNS message each"
    );
    let log = s.alarms().await?;
    assert!(log.iter().all(|r| r.published == (r.alarm.id() != flap_id)));
    env.cleanup(&r, Some(&topic), &[&queue]).await;
    Ok(())
}
