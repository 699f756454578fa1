//! The router, request by request, on an embedded store in a temporary directory: lamps, repairs and alarms.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use support::*;
use traffic_core::lamps::LightLamps;
use traffic_core::reading::{LampColour, LampState, Lamps};
use traffic_ports::LampStore;

#[tokio::test]
async fn a_repair_closes_the_lights_open_alarms_and_queues_an_order() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.store
        .record_alarm(&alarm("I-0001", 2, LampColour::Green, T0))
        .await?;
    api.store
        .record_alarm(&alarm("I-0001", 1, LampColour::Red, T0 + 1000))
        .await?;
    let a = api.get("/api/alarms?open=true").await?;
    assert_eq!(a.body["open"], 2);

    let a = api
        .call(
            "POST",
            "/api/intersections/I-0001/lights/2/repair",
            None,
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["closed"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["closed"][0]["lamp"], "green");
    let at = a.body["at"].as_str().unwrap_or_default().to_owned();
    assert!(traffic_core::time::parse_rfc3339_ms(&at).is_some(), "{at}");

    let a = api.get("/api/alarms").await?;
    assert_eq!(a.body["alarms"][1]["repaired_at"], at.as_str());
    assert_eq!(a.body["alarms"][1]["open"], false);
    assert_eq!(a.body["open"], 1);
    let a = api.get("/api/alarms?open=true").await?;
    assert_eq!(a.body["alarms"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["alarms"][0]["lamp"], "red");
    assert_eq!(
        api.store.take_repairs().await?,
        vec![(id("I-0001"), light(2))]
    );
    Ok(())
}

#[tokio::test]
async fn deleting_an_intersection_or_a_light_closes_its_open_alarms() -> anyhow::Result<()> {
    // Nothing is left to repair once the hardware is gone, and the page's repair button would
    // answer 404: the open alarms are closed at deletion, and kept in the alarm log.
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    api.create("I-0002", 41.86, 12.61).await?;
    for (x, l, lamp, t) in [
        ("I-0001", 1, LampColour::Red, T0),
        ("I-0001", 2, LampColour::Green, T0 + 1000),
        ("I-0002", 3, LampColour::Yellow, T0 + 2000),
    ] {
        api.store.record_alarm(&alarm(x, l, lamp, t)).await?;
    }

    let a = api
        .call("DELETE", "/api/intersections/I-0002/lights/3", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    let a = api
        .call("DELETE", "/api/intersections/I-0001", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");

    let a = api.get("/api/alarms").await?;
    assert_eq!(a.body["open"], 0, "{a:?}");
    let closed = a.body["alarms"].as_array().cloned().unwrap_or_default();
    assert_eq!(closed.len(), 3, "{a:?}");
    assert!(closed.iter().all(|x| x["open"] == false), "{a:?}");
    // The field gets orders for the lights that are gone: harmless, and the simulator's lamps
    // of a light that comes back start repaired.
    let mut orders = api.store.take_repairs().await?;
    orders.sort();
    assert_eq!(
        orders,
        vec![
            (id("I-0001"), light(1)),
            (id("I-0001"), light(2)),
            (id("I-0002"), light(3)),
        ]
    );

    // A delete that fails closes nothing.
    api.store
        .record_alarm(&alarm("I-0002", 0, LampColour::Red, T0 + 3000))
        .await?;
    let a = api
        .call("DELETE", "/api/intersections/I-0009", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api
        .call("DELETE", "/api/intersections/I-0002/lights/9", None, true)
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/alarms").await?.body["open"], 1);
    Ok(())
}

#[tokio::test]
async fn lamp_states_are_shown_per_light() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let broken = LightLamps {
        lamps: Lamps {
            yellow: LampState::Broken,
            ..Lamps::default()
        },
        as_of_ms: Some(T0),
    };
    api.store
        .put_lamp_states(&[((id("I-0001"), light(1)), broken)])
        .await?;
    let a = api.get("/api/intersections/I-0001/lamps").await?;
    assert_eq!(a.status, StatusCode::OK);
    let lamps = a.body.as_array().cloned().unwrap_or_default();
    assert_eq!(lamps.len(), 4);
    assert_eq!(lamps[1]["lamps"]["yellow"], "broken");
    assert_eq!(lamps[1]["broken"], true);
    assert_eq!(lamps[1]["as_of"], "2026-01-05T08:00:00Z");
    assert_eq!(lamps[0]["broken"], false);
    assert_eq!(lamps[0]["as_of"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn alarms_are_listed_newest_first_and_the_open_ones_alone_on_request() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    for (i, l) in [0, 1, 2].into_iter().enumerate() {
        api.store
            .record_alarm(&alarm("I-0001", l, LampColour::Red, T0 + i as i64 * 1000))
            .await?;
    }
    api.call(
        "POST",
        "/api/intersections/I-0001/lights/0/repair",
        None,
        true,
    )
    .await?;
    let a = api.get("/api/alarms").await?;
    let lights: Vec<i64> = a.body["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["light"].as_i64())
        .collect();
    assert_eq!(lights, vec![2, 1, 0]);
    assert_eq!(a.body["alarms"][0]["id"], "I-0001#2#red#1767600002000");
    assert!(
        a.body["alarms"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Lamp failure"))
    );
    let a = api.get("/api/alarms?open=true&limit=1").await?;
    assert_eq!(a.body["alarms"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["alarms"][0]["light"], 2);
    let a = api.get("/api/alarms?open=true").await?;
    assert_eq!(a.body["alarms"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.body["next"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn alarms_come_a_page_at_a_time_with_a_cursor_to_the_next() -> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    for i in 0..5_i64 {
        api.store
            .record_alarm(&alarm("I-0001", i % 4, LampColour::Red, T0 + i * 1000))
            .await?;
    }
    let mut seen = Vec::new();
    let mut path = "/api/alarms?limit=2".to_owned();
    let mut pages = 0;
    while pages < 10 {
        let before = api.store.alarm_entries_read();
        let a = api.get(&path).await?;
        pages += 1;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        let alarms = a.body["alarms"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            api.store.alarm_entries_read() - before,
            alarms.len() as u64,
            "a page reads the alarms it returns"
        );
        seen.extend(alarms.iter().filter_map(|x| x["ts_ms"].as_i64()));
        let Some(next) = a.body["next"].as_str() else {
            assert_eq!(a.link, None);
            break;
        };
        let link = a.link.clone().unwrap_or_default();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        path = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(path.contains("cursor=I-0001%23"), "{path} for {next}");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (0..5).rev().map(|i| T0 + i * 1000).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_alarm_query_is_a_400_naming_the_parameter() -> anyhow::Result<()> {
    let api = api()?;
    for (q, field) in [
        ("open=maybe", "open"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=yesterday", "cursor"),
        // Ids of no alarm: a lamp of all lights, a time written with a leading zero.
        ("cursor=I-0001%23all%23red%235", "cursor"),
        ("cursor=I-0001%231%23red%2305", "cursor"),
        // What the document's pattern leaves out: a time before 1970 or of 19 digits, a light
        // past the fourth.
        ("cursor=I-0001%231%23red%23-5", "cursor"),
        ("cursor=I-0001%231%23red%231000000000000000000", "cursor"),
        ("cursor=I-0001%234%23red%235", "cursor"),
        ("cursor=0%230", "cursor"),
    ] {
        let a = api.get(&format!("/api/alarms?{q}")).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {a:?}");
        assert_eq!(a.body["field"], field, "{q}: {a:?}");
    }
    Ok(())
}

#[tokio::test]
async fn an_operator_acknowledges_an_alarm_with_a_note_and_who_and_when_are_kept()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let red = alarm("I-0001", 1, LampColour::Red, T0);
    api.store.record_alarm(&red).await?;
    api.store
        .record_alarm(&alarm("I-0001", 2, LampColour::Green, T0 + 1000))
        .await?;
    let path = format!(
        "/api/alarms/{}/ack",
        red.id().to_string().replace('#', "%23")
    );

    let a = api
        .call(
            "POST",
            &path,
            Some(r#"{"note":"crew sent","by":"Ada"}"#),
            true,
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["ack"]["by"], "Ada");
    assert_eq!(a.body["ack"]["note"], "crew sent");
    let at = a.body["ack"]["at"].as_str().unwrap_or_default().to_owned();
    assert!(traffic_core::time::parse_rfc3339_ms(&at).is_some(), "{at}");

    let listed = api.get("/api/alarms?open=true").await?;
    let alarms = listed.body["alarms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<(String, String, Value)> = alarms
        .iter()
        .map(|x| {
            (
                x["lamp"].as_str().unwrap_or_default().to_owned(),
                x["severity"].as_str().unwrap_or_default().to_owned(),
                x["ack"]["by"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("green".into(), "major".into(), Value::Null),
            ("red".into(), "critical".into(), Value::from("Ada")),
        ]
    );
    assert!(alarms.iter().all(|x| x["kind"] == "lamp"));

    // No body at all is an acknowledgement without a note, by "operator".
    let a = api.call("POST", &path, None, true).await?;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["ack"]["by"], "operator");
    assert_eq!(a.body["ack"]["note"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn an_acknowledgement_without_the_token_or_with_a_bad_body_changes_nothing()
-> anyhow::Result<()> {
    let api = api()?;
    api.create("I-0001", 41.85, 12.6).await?;
    let red = alarm("I-0001", 1, LampColour::Red, T0);
    api.store.record_alarm(&red).await?;
    let path = format!(
        "/api/alarms/{}/ack",
        red.id().to_string().replace('#', "%23")
    );

    let a = api
        .call("POST", &path, Some(r#"{"note":"x"}"#), false)
        .await?;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    let long = format!(r#"{{"note":"{}"}}"#, "n".repeat(501));
    // Lengths are counted as sent: spaces around a note count too.
    let padded = format!(r#"{{"note":"\t{}"}}"#, "n".repeat(500));
    for (body, field) in [
        (r#"{"note":3}"#, "note"),
        (r#"{"by":""}"#, "by"),
        (r#"{"by":null,"note":""}"#, "by"),
        (r#"{"note":null}"#, "note"),
        (r#"{"colour":"red"}"#, "colour"),
        ("[1]", "body"),
        ("{", "body"),
        (long.as_str(), "note"),
        (padded.as_str(), "note"),
    ] {
        let a = api.call("POST", &path, Some(body), true).await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {a:?}");
        assert_eq!(a.body["field"], field, "{body}: {a:?}");
    }
    assert!(api.store.alarms().await?.iter().all(|r| r.ack.is_none()));

    for missing in [
        "I-0001%231%23red%231",
        "no-such-alarm",
        "I-0001%23all%23red%231",
        "I-0001%231%23blue%231",
        "I-0001%231%23red%23x",
        "%23%23%231",
    ] {
        let a = api
            .call("POST", &format!("/api/alarms/{missing}/ack"), None, true)
            .await?;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{missing}: {a:?}");
    }
    Ok(())
}
