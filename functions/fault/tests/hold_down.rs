//! `fault` on an embedded store with a lamp that flaps: broken, ok, broken again. Inside the
//! hold-down (10 minutes by default) of its last published alarm the second failure is
//! recorded and held down, not published; after it, a failure pages again.

use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::FaultHandler;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::time::format_rfc3339_ms;
use traffic_embedded::EmbeddedStore;
use traffic_functions::BatchHandler;
use traffic_ports::{AlarmQuery, LampStore, Registry};

/// 2026-01-05T08:00:00Z.
const T0: i64 = 1_767_600_000_000;
const MIN: i64 = 60_000;

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One record of I-0001 light 0 at `ts_ms` with its red lamp `red` (`ok` or `broken`).
fn event(seq: u64, ts_ms: i64, red: &str) -> anyhow::Result<KinesisEvent> {
    let reading = serde_json::json!({
        "intersection_id": "I-0001", "light": 0, "ts": format_rfc3339_ms(ts_ms),
        "vehicles": 10, "mean_speed_kmh": 40.0,
        "lamps": {"red": red, "yellow": "ok", "green": "ok"},
    });
    let seq = format!("4959033827149025660855969253836157109592157598913658{seq:04}");
    Ok(serde_json::from_value(serde_json::json!({"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "I-0001",
            "sequenceNumber": seq,
            "data": base64(reading.to_string().as_bytes()),
            "approximateArrivalTimestamp": (ts_ms as f64) / 1000.0 + 1.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("shardId-000000000000:{seq}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/traffic-fault",
        "awsRegion": "eu-south-1",
        "eventSourceARN": "arn:aws:kinesis:eu-south-1:123456789012:stream/traffic-readings",
    }]}))?)
}

async fn store() -> anyhow::Result<(tempfile::TempDir, EmbeddedStore)> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("t.redb"))?;
    let lights: Vec<serde_json::Value> = (0..4)
        .map(|l| serde_json::json!({"light": l, "saturation_veh_h": 1800}))
        .collect();
    let x = serde_json::from_value(serde_json::json!({
        "id": "I-0001", "lat": 41.85, "lon": 12.6,
        "lights": lights,
        "phases": [{"lights": [0, 2], "green_s": 30, "red_s": 34},
                   {"lights": [1, 3], "green_s": 30, "red_s": 34}],
    }))?;
    store.put_intersection(&x).await?;
    Ok((dir, store))
}

/// Runs `fault` over the lamp's history, one batch per reading: (minutes after T0, red lamp).
async fn run(
    store: &EmbeddedStore,
    policy: AlarmPolicy,
    history: &[(i64, &str)],
) -> anyhow::Result<()> {
    let handler =
        FaultHandler::from_ports(Default::default(), &store.ports()).with_alarm_policy(policy);
    for (i, (minute, red)) in history.iter().enumerate() {
        // As the runtime calls it: with the handler's policy.
        let response = handler
            .handle(&event(i as u64, T0 + minute * MIN, red)?)
            .await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_flapping_lamp_sends_one_message_in_its_hold_down_and_records_the_rest()
-> anyhow::Result<()> {
    let (_dir, store) = store().await?;
    // Broken at 0, ok at 2, broken at 5 and (after ok at 6) at 8: inside 10 minutes of the
    // page at 0. Then ok at 12 and broken at 15: past the hold-down, it pages again.
    let history = [
        (0, "broken"),
        (2, "ok"),
        (5, "broken"),
        (6, "ok"),
        (8, "broken"),
        (12, "ok"),
        (15, "broken"),
    ];
    run(&store, AlarmPolicy::default(), &history).await?;
    let published: Vec<i64> = store
        .published_alarms()?
        .iter()
        .map(|a| (a.ts_ms - T0) / MIN)
        .collect();
    assert_eq!(published, vec![0, 15]);
    let recorded: Vec<(i64, bool, bool)> = store
        .alarms()
        .await?
        .iter()
        .map(|r| ((r.alarm.ts_ms - T0) / MIN, r.published, r.held_down))
        .collect();
    assert_eq!(
        recorded,
        vec![
            (0, true, false),
            (5, false, true),
            (8, false, true),
            (15, true, false)
        ]
    );
    // The held-down alarms are in the log like any other; each lamp back to ok resolved the
    // alarm before it, so only the last is open.
    let page = store
        .alarm_page(&AlarmQuery {
            open_only: true,
            limit: 10,
            after: None,
        })
        .await?;
    assert_eq!(page.open, 1);
    let resolved: Vec<bool> = store
        .alarms()
        .await?
        .iter()
        .map(|r| r.closed_why.as_deref() == Some("lamp reported ok"))
        .collect();
    assert_eq!(resolved, [true, true, true, false]);
    Ok(())
}

#[tokio::test]
async fn a_redelivered_batch_publishes_nothing_again_and_no_hold_down_pages_every_time()
-> anyhow::Result<()> {
    let (_dir, store) = store().await?;
    let history = [(0, "broken"), (2, "ok"), (5, "broken")];
    run(&store, AlarmPolicy::default(), &history).await?;
    // The same readings again (a retried batch): nothing new is published or recorded.
    run(&store, AlarmPolicy::default(), &history).await?;
    assert_eq!(store.published_alarms()?.len(), 1);
    assert_eq!(store.alarms().await?.len(), 2);

    let (_dir, store) = self::store().await?;
    let off = AlarmPolicy::default()
        .with_hold_down("0")
        .map_err(anyhow::Error::msg)?;
    run(&store, off, &history).await?;
    assert_eq!(
        store.published_alarms()?.len(),
        2,
        "{:?}",
        store.alarms().await?
    );
    Ok(())
}
