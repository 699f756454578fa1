//! The DynamoDB adapter's edges against the emulator: a change of timings never loses its
//! history entry (a failure injected into the history's write), and the
//! lamp summary of a city of 100,000 intersections with 5 % of its lamps broken is written and
//! read by a fault batch within DynamoDB's item limit.

use crate::support::{AwsEnv, aws_env};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use std::sync::Arc;
use traffic_aws::setup::Resources;
use traffic_aws::{DynamoStore, StoreOptions};
use traffic_core::city::{Intersection, Phase};
use traffic_core::lamps::LightLamps;
use traffic_core::reading::{LampState, Lamps};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{ChangedBy, LampStore, Registry, TimingUpdate};
use traffic_sim::{CityConfig, generate_city};

/// Fails every `BatchWriteItem` that puts a timing history item (`timings#<id>`), as a crash
/// or an outage between a change of timings and its history entry would.
#[derive(Debug)]
struct FailHistoryWrites;

impl Intercept for FailHistoryWrites {
    fn name(&self) -> &'static str {
        "FailHistoryWrites"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let batch = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".BatchWriteItem"));
        let body = request.body().bytes().unwrap_or_default();
        if batch && String::from_utf8_lossy(body).contains("\"timings#") {
            return Err("injected: the timing history's write fails".into());
        }
        Ok(())
    }
}

/// A store on this test's tables, and one on the same tables whose history writes fail.
async fn stores(
    test: &str,
) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let (r, names, s) = env.fresh_store().await?;
    let failing = aws_sdk_dynamodb::Client::from_conf(
        env.clients
            .dynamodb
            .config()
            .to_builder()
            .interceptor(FailHistoryWrites)
            .build(),
    );
    let faulty = DynamoStore::new(failing, names, StoreOptions::default());
    Ok(Some((env, r, s, faulty)))
}

fn city(n: usize) -> anyhow::Result<Vec<Intersection>> {
    Ok(generate_city(&CityConfig {
        intersections: n,
        ..CityConfig::default()
    })?
    .intersections)
}

/// The phases of the history of `id`, oldest first.
async fn history_phases(s: &DynamoStore, id: &IntersectionId) -> anyhow::Result<Vec<Vec<Phase>>> {
    Ok(s.timing_history(id)
        .await?
        .into_iter()
        .map(|h| h.phases)
        .collect())
}

async fn version_of(
    s: &DynamoStore,
    id: &IntersectionId,
) -> anyhow::Result<traffic_ports::Version> {
    Ok(s.intersection_versioned(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} gone"))?
        .1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_retiming_whose_history_write_fails_keeps_its_entry_and_the_next_write_records_it()
-> anyhow::Result<()> {
    let Some((env, r, s, faulty)) = stores("retime-atomic").await? else {
        return Ok(());
    };
    let x = &city(1)?[0];
    s.create_intersection(x).await?;
    let mut first = x.phases.clone();
    first[0].green_s += 7.0;
    let update = |phases: &Vec<Phase>, expected_version: traffic_ports::Version| TimingUpdate {
        id: x.id.clone(),
        plan: None,
        phases: phases.clone(),
        expected_version,
    };
    // The history's write fails after the timings changed: the change still has its entry.
    let skipped = faulty
        .set_timings(
            &[update(&first, version_of(&s, &x.id).await?)],
            &"15m@2026-01-05T08:00:00Z".parse()?,
        )
        .await?;
    assert!(skipped.is_empty(), "{skipped:?}");
    let stored = s.intersection(&x.id).await?.map(|x| x.phases);
    assert_eq!(stored.as_ref(), Some(&first));
    assert_eq!(
        history_phases(&s, &x.id).await?,
        [first.clone()],
        "new timings without their history entry"
    );
    // A retiming computed from a version that is no longer the intersection's changes
    // nothing, its entry included.
    let stale = x.phases.clone();
    let skipped = s
        .set_timings(
            &[update(
                &stale,
                traffic_ports::Version::new("not-its-version"),
            )],
            &"15m@2026-01-05T08:15:00Z".parse()?,
        )
        .await?;
    assert_eq!(skipped, std::slice::from_ref(&x.id));
    assert_eq!(history_phases(&s, &x.id).await?, [first.clone()]);
    // The next retiming replaces the intersection's last change and records it: both entries.
    let mut second = first.clone();
    second[0].green_s += 3.0;
    let skipped = s
        .set_timings(
            &[update(&second, version_of(&s, &x.id).await?)],
            &"15m@2026-01-05T08:30:00Z".parse()?,
        )
        .await?;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(history_phases(&s, &x.id).await?, [first, second]);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn an_operators_edit_whose_history_write_fails_keeps_its_entry_through_later_writes()
-> anyhow::Result<()> {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let Some((env, r, s, faulty)) = stores("edit-atomic").await? else {
        return Ok(());
    };
    let x = &city(1)?[0];
    s.create_intersection(x).await?;
    let dir = tempfile::tempdir()?;
    let publisher = Arc::new(traffic_embedded::EmbeddedStore::open(
        dir.path().join("p.redb"),
    )?);
    let state = api::ApiState {
        ports: traffic_ports::Ports::from_store(Arc::new(faulty), publisher),
        cfg: traffic_core::EngineConfig::default(),
        token: Some("t".into()),
        alarms: Default::default(),
    };
    let mut phases = x.phases.clone();
    phases[0].green_s += 5.0;
    let body = serde_json::json!({ "phases": phases }).to_string();
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/api/intersections/{}/phases", x.id))
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let resp = api::router(state).oneshot(req).await?;
    let status = resp.status();
    assert!(status.is_success(), "{status}");
    let stored = s
        .intersection(&x.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(stored.phases, phases);
    let history = s.timing_history(&x.id).await?;
    assert_eq!(
        history
            .iter()
            .map(|h| (h.by, &h.phases))
            .collect::<Vec<_>>(),
        [(ChangedBy::Operator, &phases)],
        "the edit stored without its history entry"
    );
    // A later write of the whole intersection (no timing change) records the edit on its way.
    s.put_intersection(&stored).await?;
    assert_eq!(history_phases(&s, &x.id).await?, [phases]);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

/// Lamps with `broken` of their three colours broken (red, then yellow, then green).
fn broken(n: usize, at: i64) -> LightLamps {
    let state = |i: usize| {
        if i < n {
            LampState::Broken
        } else {
            LampState::Ok
        }
    };
    LightLamps {
        lamps: Lamps {
            red: state(0),
            yellow: state(1),
            green: state(2),
        },
        as_of_ms: Some(at),
    }
}

/// The broken lamps of a city of `n` intersections (`I-000001`...) with 5 % of its 12 lamps
/// each broken, deterministically spread (a lamp is broken when a hash of it falls in the
/// lowest twentieth): per intersection and light, how many lamps are broken.
fn five_percent_broken(n: usize) -> Vec<((IntersectionId, LightIndex), LightLamps)> {
    let mut out = Vec::new();
    for i in 1..=n {
        let id = IntersectionId::parse(&format!("I-{i:06}")).unwrap_or_else(|e| panic!("{e}"));
        for l in LightIndex::all() {
            let k = (0..3)
                .filter(|c| {
                    let h = traffic_core::hash::fnv1a64(format!("{i}/{}/{c}", l.get()).as_bytes());
                    h.is_multiple_of(20)
                })
                .count();
            if k > 0 {
                out.push(((id.clone(), l), broken(k, 1)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_fault_batch_succeeds_with_5_percent_of_100000_intersections_lamps_broken()
-> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    use std::collections::BTreeMap;
    use traffic_aws::capacity::item_size;
    use traffic_aws::lamp_summary::{SUMMARY_PARTS, part_of};
    use traffic_core::lamps::LampSummary;
    let Some((env, r, s, _)) = stores("summary-100k").await? else {
        return Ok(());
    };
    // The summaries as fault leaves them after writing these lamps, seeded part by part (a
    // run of 46,000 intersections' fault batches takes the emulator hours).
    let states = five_percent_broken(100_000);
    let mut lights: BTreeMap<IntersectionId, Vec<(LightIndex, Lamps)>> = BTreeMap::new();
    for ((id, l), s) in &states {
        lights.entry(id.clone()).or_default().push((*l, s.lamps));
    }
    let mut parts: BTreeMap<u64, std::collections::HashMap<String, Av>> = BTreeMap::new();
    let mut whole = std::collections::HashMap::new();
    for (id, ls) in &lights {
        let summary = LampSummary::of(ls.iter().map(|(l, s)| (*l, s)))
            .ok_or_else(|| anyhow::anyhow!("{id} all ok"))?;
        let v = Av::S(summary.encode());
        whole.insert(id.to_string(), v.clone());
        parts
            .entry(part_of(id))
            .or_default()
            .insert(id.to_string(), v);
    }
    let item = |pk: String, lamps: std::collections::HashMap<String, Av>| {
        std::collections::HashMap::from([
            ("pk".to_owned(), Av::S(pk)),
            ("sk".to_owned(), Av::S("state".into())),
            ("lamps".to_owned(), Av::M(lamps)),
            ("summarised".to_owned(), Av::Bool(true)),
        ])
    };
    let one = item_size(&item("lamp#not-ok".into(), whole));
    let mut sizes = Vec::new();
    for p in 0..SUMMARY_PARTS {
        let part = item(
            traffic_aws::lamp_summary::part_pk(p),
            parts.remove(&p).unwrap_or_default(),
        );
        sizes.push(item_size(&part));
        env.clients
            .dynamodb
            .put_item()
            .table_name(&r.registry_table)
            .set_item(Some(part))
            .send()
            .await?;
    }
    println!(
        "{} lights broken at {} of 100,000 intersections: as one item {one} bytes, in parts {sizes:?}",
        states.len(),
        lights.len()
    );
    assert!(one > 400 * 1024, "as one item: {one} bytes");
    assert!(sizes.iter().all(|b| *b < 200 * 1024), "{sizes:?}");
    // A fault batch: its intersections' summaries, their lamp states, a repair and a failure.
    let repaired = states[0].0.clone();
    let new = (IntersectionId::parse("I-100001")?, LightIndex::FIRST);
    let ids = std::collections::BTreeSet::from([repaired.0.clone(), new.0.clone()]);
    let before = s
        .lamp_summaries_for(&ids)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no summaries"))?;
    assert!(before.contains_key(&repaired.0));
    s.put_lamp_states(&[
        (repaired.clone(), broken(0, 2)),
        (new.clone(), broken(1, 2)),
    ])
    .await?;
    let after = s
        .lamp_summaries_for(&ids)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no summaries"))?;
    assert!(after.contains_key(&new.0), "the new failure is summarised");
    let light = after.get(&repaired.0).map(|x| x.lamps(repaired.1));
    assert!(
        light.is_none() || matches!(light, Some(Some(l)) if l.all_ok()),
        "the repaired light is all ok: {light:?}"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_deleted_intersection_leaves_no_lamp_summary_entry_and_stale_ones_are_repaired()
-> anyhow::Result<()> {
    let Some((env, r, s, _)) = stores("summary-delete").await? else {
        return Ok(());
    };
    let xs = city(2)?;
    for x in &xs {
        s.create_intersection(x).await?;
    }
    let lights: Vec<_> = xs
        .iter()
        .map(|x| ((x.id.clone(), LightIndex::FIRST), broken(1, 1)))
        .collect();
    s.put_lamp_states(&lights).await?;
    assert!(s.delete_intersection(&xs[0].id).await?);
    let (_, v) = s
        .intersection_versioned(&xs[1].id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    s.delete_intersection_if(&xs[1].id, &v).await?;
    let left = s
        .lamp_summaries()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no summaries"))?;
    assert!(
        left.is_empty(),
        "entries of deleted intersections: {left:?}"
    );
    let states = s.lamp_states(&[lights[0].0.clone()]).await?;
    assert_eq!(states.get(&lights[0].0), Some(&LightLamps::default()));
    env.cleanup(&r, None, &[]).await;

    // A table from before: a broken lamp of an intersection deleted long ago, and the single
    // summary item naming it. Summarising the table repairs it.
    let Some((env, r, s, _)) = stores("summary-stale").await? else {
        return Ok(());
    };
    let x = &city(1)?[0];
    s.create_intersection(x).await?;
    s.put_lamp_states(&[((x.id.clone(), LightIndex::FIRST), broken(1, 1))])
        .await?;
    let ddb = &env.clients.dynamodb;
    ddb.put_item()
        .table_name(&r.registry_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("lamp#GONE-1".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("state".into()),
        )
        .item(
            "intersection_id",
            aws_sdk_dynamodb::types::AttributeValue::S("GONE-1".into()),
        )
        .item(
            "lights",
            aws_sdk_dynamodb::types::AttributeValue::M(
                [(
                    "0".to_owned(),
                    aws_sdk_dynamodb::types::AttributeValue::M(
                        [(
                            "lamps".to_owned(),
                            aws_sdk_dynamodb::types::AttributeValue::M(
                                [("red", "broken"), ("yellow", "ok"), ("green", "ok")]
                                    .into_iter()
                                    .map(|(k, v)| {
                                        (
                                            k.to_owned(),
                                            aws_sdk_dynamodb::types::AttributeValue::S(v.into()),
                                        )
                                    })
                                    .collect(),
                            ),
                        )]
                        .into_iter()
                        .collect(),
                    ),
                )]
                .into_iter()
                .collect(),
            ),
        )
        .send()
        .await?;
    // Every summary item of any layout dropped, as on a table from before the summaries.
    for pk in ["lamp#not-ok"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..64).map(|p| format!("lamp-summary#{p}")))
        .chain(
            (0..traffic_aws::lamp_summary::SUMMARY_PARTS).map(traffic_aws::lamp_summary::part_pk),
        )
    {
        ddb.delete_item()
            .table_name(&r.registry_table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("state".into()),
            )
            .send()
            .await?;
    }
    let summaries = s
        .lamp_summaries()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no summaries"))?;
    assert_eq!(
        summaries
            .keys()
            .map(|id| id.to_string())
            .collect::<Vec<_>>(),
        [x.id.to_string()],
        "the deleted intersection's lamps are repaired away, the living one's kept"
    );
    env.cleanup(&r, None, &[]).await;
    Ok(())
}
