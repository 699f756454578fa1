//! What the public API's listings cost on DynamoDB, against the emulator:
//! the largest page of intersections the API allows is one eventually consistent `Query`
//! whose read units (sized by DynamoDB's rules, `traffic_aws::capacity`: the emulator's
//! `ConsumedCapacity` is a constant) stay under the bound `docs/api.md` documents and are half
//! of what a strongly consistent read of the same items bills; a page of a length's results
//! stops at its byte budget and says where to continue, so no window is silently left out.

use crate::support::{AwsEnv, aws_env};
use aws_sdk_dynamodb::types::AttributeValue;
use traffic_aws::capacity::{item_size, read_units};
use traffic_aws::setup::{Resources, ensure_table};
use traffic_aws::{AwsNames, DynamoStore, StoreOptions};
use traffic_core::IntersectionId;
use traffic_core::query::{MedianEntry, WindowResult};
use traffic_core::ranking::RankEntry;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{Registry, ResultStore};
use traffic_sim::{CityConfig, generate_city};

/// The largest page of `/api/intersections` and `/api/timings` (`docs/api.md`: 500).
const INTERSECTIONS_PAGE_MAX: usize = api::paging::CITY_PAGE_MAX as usize;
/// The largest page of `/api/results/{length}` (`docs/api.md`: 100).
const RESULTS_PAGE_MAX: usize = api::paging::RESULTS_PAGE_MAX as usize;
/// The read units `docs/api.md` promises for that page, for intersections like the
/// simulator's (about 0.5 KB each).
const INTERSECTIONS_PAGE_UNITS: f64 = 40.0;
/// What one page of any listing reads at most: one DynamoDB page (1 MB), eventually
/// consistent.
const PAGE_UNITS_MAX: f64 = 128.0;

/// 2026-01-05T08:00:00Z.
const T0: i64 = 1_767_600_000_000;

async fn store(test: &str) -> anyhow::Result<Option<(AwsEnv, Resources, DynamoStore)>> {
    let Some(env) = aws_env(test).await else {
        return Ok(None);
    };
    let r = env.resources(1);
    for t in [&r.registry_table, &r.results_table] {
        ensure_table(&env.clients, t).await?;
    }
    let names = AwsNames {
        registry_table: Some(r.registry_table.clone()),
        results_table: Some(r.results_table.clone()),
        ..AwsNames::default()
    };
    let s = DynamoStore::new(env.clients.dynamodb.clone(), names, StoreOptions::default());
    Ok(Some((env, r, s)))
}

fn id(s: &str) -> IntersectionId {
    IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// The sizes of the first `n` items of partition `pk` of `table`, in key order, read straight
/// from the emulator (not through the adapter under test).
async fn item_sizes(env: &AwsEnv, table: &str, pk: &str, n: usize) -> anyhow::Result<Vec<usize>> {
    let mut sizes = Vec::new();
    let mut start = None;
    while sizes.len() < n {
        let resp = env
            .clients
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        sizes.extend(resp.items().iter().map(item_size));
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    sizes.truncate(n);
    Ok(sizes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn the_largest_page_of_intersections_is_one_eventually_consistent_read_within_its_bound()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("apireads").await? else {
        return Ok(());
    };
    let city = generate_city(&CityConfig {
        intersections: INTERSECTIONS_PAGE_MAX + 20,
        ..CityConfig::default()
    })?;
    for x in &city.intersections {
        s.put_intersection(x).await?;
    }
    let before = s.metrics().snapshot();
    let (page, next) = s.intersections_page(None, INTERSECTIONS_PAGE_MAX).await?;
    let used = s.metrics().snapshot().since(&before);
    assert_eq!(page.len(), INTERSECTIONS_PAGE_MAX);
    assert!(next.is_some(), "20 more follow");
    assert_eq!(used.read_requests, 1, "one query: {used:?}");
    assert_eq!(
        used.by_operation.get("registry:Query"),
        Some(&1),
        "{used:?}"
    );

    // What reading the same items strongly consistently bills: the page (and the one item
    // read to learn that more follow).
    let sizes = item_sizes(&env, &r.registry_table, "intersections", page.len() + 1).await?;
    let bytes: usize = sizes.iter().sum();
    let strong = read_units(bytes, true);
    println!(
        "a page of {} intersections: {} bytes read ({:.0} bytes each), {:.1} read units \
         (strongly consistent: {strong:.1})",
        page.len(),
        bytes,
        bytes as f64 / sizes.len() as f64,
        used.read_capacity_units
    );
    assert!(
        used.read_capacity_units <= strong / 2.0,
        "{:.1} units: not an eventually consistent read of {bytes} bytes ({strong} units strong)",
        used.read_capacity_units
    );
    assert!(
        used.read_capacity_units <= INTERSECTIONS_PAGE_UNITS,
        "{:.1} units, more than the documented {INTERSECTIONS_PAGE_UNITS}",
        used.read_capacity_units
    );

    // Following the pages lists the whole city once, in id order.
    let mut all = page;
    let mut after = next;
    for _ in 0..10 {
        let Some(a) = after.take() else { break };
        let (more, n) = s
            .intersections_page(Some(&a), INTERSECTIONS_PAGE_MAX)
            .await?;
        all.extend(more);
        after = n;
    }
    let mut expected: Vec<_> = city.intersections.iter().map(|x| x.id.clone()).collect();
    expected.sort();
    assert_eq!(all.into_iter().map(|x| x.id).collect::<Vec<_>>(), expected);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}

/// A closed 15-minute result at `start_ms` with `above` intersections above the median (about
/// 16 bytes each in the item).
fn big_result(start_ms: i64, above: usize) -> WindowResult {
    let length = WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m"));
    WindowResult {
        window: WindowKey { length, start_ms },
        closed: true,
        readings: 1000,
        top: vec![RankEntry {
            intersection_id: id("I-00001"),
            mean_speed_kmh: 50.0,
        }],
        global_median_vehicles: 7.0,
        above_median: (0..above)
            .map(|i| MedianEntry {
                intersection_id: id(&format!("I-{i:05}")),
                median_vehicles: 8.0 + i as f64,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)"]
async fn a_page_of_large_results_stops_at_its_budget_and_says_where_to_continue()
-> anyhow::Result<()> {
    let Some((env, r, s)) = store("apiresults").await? else {
        return Ok(());
    };
    // Eight windows of about 150 KB each (a city of about 18,000 intersections): 1.2 MB,
    // more than one DynamoDB page.
    let results: Vec<WindowResult> = (0..8)
        .map(|i| big_result(T0 + i * 900_000, 9_000))
        .collect();
    s.put_results(&results).await?;
    let length = results[0].window.length;
    let newest_first: Vec<i64> = results.iter().rev().map(|r| r.window.start_ms).collect();

    // Asked for eight, the newest eight are given, however many pages they take.
    let recent = s.recent_results(length, 8).await?;
    assert_eq!(
        recent.iter().map(|r| r.window.start_ms).collect::<Vec<_>>(),
        newest_first,
        "recent_results(8) gave {} windows",
        recent.len()
    );

    // The API's pages, of the largest size: each within its budget, and each says whether
    // more exist.
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    for _ in 0..10 {
        let m0 = s.metrics().snapshot();
        let page = s.results_page(length, before, RESULTS_PAGE_MAX).await?;
        let used = s.metrics().snapshot().since(&m0);
        pages += 1;
        println!(
            "results page {pages}: {} windows, {:.1} read units in {} requests",
            page.windows.len(),
            used.read_capacity_units,
            used.read_requests
        );
        assert!(!page.windows.is_empty());
        assert!(
            used.read_capacity_units <= PAGE_UNITS_MAX,
            "{:.1} units",
            used.read_capacity_units
        );
        seen.extend(page.windows.iter().map(|w| w.window.start_ms));
        assert_eq!(page.windows[0].above_median.len(), 9_000);
        before = page.next;
        if before.is_none() {
            break;
        }
    }
    assert!(pages > 1, "1.2 MB of results came in one page");
    assert_eq!(seen, newest_first);
    env.cleanup(&r, None, &[]).await;
    Ok(())
}
