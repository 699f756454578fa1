//! DynamoDB's TTL never takes what an uncompacted window needs: the state
//! the merge reads again after a stall (pane index entries, listed deltas, prefix rollups)
//! gets a new expiry when it is within half a retention of its own, against the emulator.

use crate::support::{AwsEnv, aws_env};
use traffic_aws::setup::{Resources, ensure_table};
use traffic_aws::{AwsNames, DynamoStore, StoreOptions};
use traffic_core::SequenceNumber;
use traffic_core::delta::{Delta, DeltaKey, DeltaReading};
use traffic_core::pane::{Commit, DeltaRef, ShardMeta};
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::StateStore;

const DAY: i64 = 86_400_000;
const PANE: i64 = 900_000;

async fn store(test: &str) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let r = env.resources(1);
    ensure_table(&env.clients, &r.state_table).await?;
    let names = AwsNames {
        state_table: Some(r.state_table.clone()),
        ..AwsNames::default()
    };
    let s = DynamoStore::new(env.clients.dynamodb.clone(), names, StoreOptions::default());
    Ok(Some((env, r, s)))
}

/// A commit of one delta of `pane_start` from shard `s0`.
fn commit(pane_start: i64, seq: u128) -> Commit {
    let len = WindowLength::from_ms(PANE).unwrap_or_else(|| panic!("pane"));
    let key = DeltaKey {
        pane_start_ms: pane_start,
        shard_id: "s0".into(),
        commit: seq as u64,
        part: 0,
    };
    let mut d = Delta::new(key, len.window_of(pane_start));
    d.push(
        &IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e}")),
        DeltaReading {
            light: LightIndex::new(0).unwrap_or_else(|e| panic!("{e}")),
            ts_ms: pane_start + 1_000,
            vehicles: 3,
            speed_milli: 30_000,
        },
    );
    Commit {
        expected: (seq > 1).then(|| SequenceNumber::from_u128(seq - 1)),
        expected_commits: seq.saturating_sub(1) as u64,
        closed_ms: None,
        meta: ShardMeta {
            shard_id: "s0".into(),
            applied_through: Some(SequenceNumber::from_u128(seq)),
            commits: seq as u64,
            deltas: vec![DeltaRef {
                pane_start_ms: pane_start,
                commit: seq as u64,
                parts: 1,
            }],
            ..ShardMeta::default()
        },
        deltas: vec![d],
    }
}

/// Every `expires_at` of the state table, by partition key.
async fn expiries(env: &AwsEnv, r: &Resources) -> anyhow::Result<Vec<(String, i64)>> {
    let scan = env
        .clients
        .dynamodb
        .scan()
        .table_name(&r.state_table)
        .send()
        .await?;
    Ok(scan
        .items()
        .iter()
        .filter_map(|i| {
            let pk = i.get("pk")?.as_s().ok()?.clone();
            let e = i.get("expires_at")?.as_n().ok()?.parse().ok()?;
            Some((pk, e))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn state_the_merge_reads_again_after_a_stall_of_two_days_gets_a_new_expiry()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("keep").await? else {
        return Ok(());
    };
    let now = chrono::Utc::now().timestamp_millis();
    let opts = StoreOptions::default();
    // A pane written two days ago (a day of its three left) and never compacted, with the
    // prefix rollup of its hour, also two days old.
    let stalled = now - 2 * DAY;
    let pane_start = stalled - stalled.rem_euclid(PANE);
    s.commit(&commit(pane_start, 1), stalled).await?;
    let hour = WindowLength::from_ms(4 * PANE).unwrap_or_else(|| panic!("1h"));
    let mut prefix = Rollup::new(hour.window_of(pane_start));
    prefix.through_ms = pane_start;
    s.put_rollups(&[prefix], stalled).await?;
    let old = opts.expires_at(stalled);
    assert!(expiries(&env, &r).await?.iter().all(|(_, e)| *e == old));

    // The merge's run: it lists the panes, reads the listed deltas and the prefixes.
    let panes = s.delta_panes(i64::MIN).await?;
    assert_eq!(panes, [pane_start]);
    let meta = s.shard_metas().await?;
    let keys: Vec<DeltaKey> = meta.iter().flat_map(|m| m.delta_keys(pane_start)).collect();
    assert_eq!(s.deltas(&keys, true).await?.len(), 1);
    assert_eq!(
        s.rollups(hour, pane_start - 4 * PANE, pane_start)
            .await?
            .len(),
        1
    );
    let kept = expiries(&env, &r).await?;
    println!("expiries after the read (old {old}): {kept:?}");
    assert!(kept.iter().any(|(pk, _)| pk == "panes"));
    assert!(kept.iter().any(|(pk, _)| pk.starts_with("delta#")));
    assert!(kept.iter().any(|(pk, _)| pk.starts_with("rollup")));
    let fresh = opts.expires_at(now);
    assert!(
        kept.iter().all(|(_, e)| *e >= fresh && *e > old),
        "every item read kept a retention from now: {kept:?}"
    );

    // Read again at once: nothing is near its expiry, nothing is rewritten.
    s.deltas(&keys, true).await?;
    assert_eq!(expiries(&env, &r).await?, kept);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}
