//! Laws of [`ResultStore`]: results stored per window, listed, paged, and the network state.

use super::{Outcome, ensure_law, id};
use crate::ResultStore;
use traffic_core::query::{IntersectionState, NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};

/// 2026-01-05T08:00:00Z, epoch ms.
const T0: i64 = 1_767_600_000_000;

const M15: i64 = 900_000;

fn length(ms: i64) -> anyhow::Result<WindowLength> {
    WindowLength::from_ms(ms).ok_or_else(|| anyhow::anyhow!("window length {ms}"))
}

fn result(len_ms: i64, start_ms: i64, closed: bool, readings: u64) -> anyhow::Result<WindowResult> {
    Ok(WindowResult {
        window: WindowKey {
            length: length(len_ms)?,
            start_ms,
        },
        closed,
        readings,
        top: Vec::new(),
        global_median_vehicles: 2.5,
        above_median: Vec::new(),
    })
}

fn starts(rs: &[WindowResult]) -> Vec<i64> {
    rs.iter().map(|r| r.window.start_ms).collect()
}

/// A result replaces the stored one of its window; all results list by length, then start;
/// `closed_windows_from` lists the windows of a length from a start on whose result is final.
pub async fn results_replace_per_window_and_list_in_order<S: ResultStore + ?Sized>(
    s: &S,
) -> Outcome {
    let hour = 4 * M15;
    s.put_results(&[
        result(M15, T0 + M15, true, 7)?,
        result(hour, T0, true, 30)?,
        result(M15, T0, false, 10)?,
    ])
    .await?;
    let replaced = result(M15, T0, true, 20)?;
    s.put_results(std::slice::from_ref(&replaced)).await?;
    let all = s.results().await?;
    let want = vec![
        replaced.clone(),
        result(M15, T0 + M15, true, 7)?,
        result(hour, T0, true, 30)?,
    ];
    ensure_law!(all == want, "results {all:?}, want {want:?}");
    let closed = s.closed_windows_from(length(M15)?, T0 + 1).await?;
    ensure_law!(
        closed.iter().map(|k| k.start_ms).collect::<Vec<_>>() == [T0 + M15],
        "closed from T0+1: {closed:?}"
    );
    let mut closed = s.closed_windows_from(length(M15)?, T0).await?;
    closed.sort_by_key(|k| k.start_ms);
    let want = [
        WindowKey {
            length: length(M15)?,
            start_ms: T0,
        },
        WindowKey {
            length: length(M15)?,
            start_ms: T0 + M15,
        },
    ];
    ensure_law!(closed == want, "closed from T0: {closed:?}");
    Ok(())
}

/// The newest `limit` results of a length, newest first, all of them when fewer exist; paging
/// from the newest lists every window of the length once, newest first.
pub async fn recent_results_and_pages_are_newest_first_and_complete<S: ResultStore + ?Sized>(
    s: &S,
) -> Outcome {
    let rs: Vec<WindowResult> = (0..5)
        .map(|n| result(M15, T0 + n * M15, true, n as u64))
        .collect::<anyhow::Result<_>>()?;
    s.put_results(&rs).await?;
    s.put_results(&[result(4 * M15, T0, true, 1)?]).await?;
    let l = length(M15)?;
    let newest = starts(&s.recent_results(l, 3).await?);
    let want: Vec<i64> = (2..5).rev().map(|n| T0 + n * M15).collect();
    ensure_law!(newest == want, "recent 3: {newest:?}");
    let every = starts(&s.recent_results(l, 10).await?);
    let all: Vec<i64> = (0..5).rev().map(|n| T0 + n * M15).collect();
    ensure_law!(every == all, "recent 10: {every:?}");
    let mut paged = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let page = s.results_page(l, before, 2).await?;
        ensure_law!(page.windows.len() <= 2, "a page of {}", page.windows.len());
        ensure_law!(
            page.windows.iter().all(|w| w.window.length == l),
            "another length in the page"
        );
        paged.extend(starts(&page.windows));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    ensure_law!(paged == all, "paged {paged:?}, stored {all:?}");
    Ok(())
}

/// The network state reads back as last stored; none before.
pub async fn network_state_round_trips<S: ResultStore + ?Sized>(s: &S) -> Outcome {
    let none = s.network().await?;
    ensure_law!(none.is_none(), "a network state before any: {none:?}");
    let state = |closed: bool, vehicles: u64| -> anyhow::Result<NetworkState> {
        Ok(NetworkState {
            length: "15m".into(),
            start: "2026-01-05T08:00:00Z".into(),
            end: "2026-01-05T08:15:00Z".into(),
            closed,
            intersections: vec![IntersectionState {
                intersection_id: id("N", 0)?,
                mean_speed_kmh: Some(42.5),
                vehicles,
                readings: 3,
            }],
        })
    };
    let first = state(false, 10)?;
    s.put_network(&first).await?;
    ensure_law!(s.network().await? == Some(first), "first state");
    let second = state(true, 12)?;
    s.put_network(&second).await?;
    let got = s.network().await?;
    ensure_law!(got == Some(second), "replaced: {got:?}");
    Ok(())
}
