//! Laws of [`StatsStore`]: samples add up per function and minute, read from a minute on.

use super::{Outcome, ensure_law};
use crate::{Series, StatsSample, StatsStore};

/// 2026-01-06T12:00:00Z, epoch ms: the first minute of the cases.
const T0: i64 = 1_767_700_800_000;

const MINUTE: i64 = 60_000;

fn sample(function: Series, minute_ms: i64, k: u64) -> StatsSample {
    StatsSample {
        function,
        minute_ms,
        invocations: 1,
        records: 10 * k,
        accepted: 9 * k,
        latency_ms_sum: 100 * k,
        latency_ms_max: 40 + 7 * (k % 3),
        read_units: 0.5 * k as f64,
        write_units: 1.5 * k as f64,
    }
}

/// [`StatsStore::add_stats`] adds a sample to its function's minute: the counters and units
/// sum, the largest latency is the largest of them.
pub async fn samples_add_up_per_function_and_minute<S: StatsStore + ?Sized>(s: &S) -> Outcome {
    let minute = T0;
    let parts = [
        sample(Series::Ingest, minute, 1),
        sample(Series::Ingest, minute, 2),
        sample(Series::Ingest, minute, 3),
    ];
    let mut want = parts[0].clone();
    for p in &parts {
        s.add_stats(p).await?;
    }
    for p in &parts[1..] {
        want.add(p);
    }
    let got = s.stats(minute).await?;
    let ours: Vec<_> = got
        .iter()
        .filter(|g| g.minute_ms == minute && g.function == Series::Ingest)
        .collect();
    ensure_law!(ours == [&want], "stored {want:?}, read {ours:?}");
    ensure_law!(
        want.latency_ms_max == 54 && want.invocations == 3,
        "the sum itself: {want:?}"
    );
    Ok(())
}

/// [`StatsStore::stats`] returns the samples of minutes starting at or after `since_ms`, by
/// minute then function, one per function and minute.
pub async fn stats_are_those_from_a_minute_on_by_minute_then_function<S: StatsStore + ?Sized>(
    s: &S,
) -> Outcome {
    let base = T0 + 1_000 * MINUTE;
    let minutes = [base, base + MINUTE, base + 2 * MINUTE];
    for (k, &m) in minutes.iter().enumerate().rev() {
        for f in [Series::Merge, Series::Fault, Series::Ingest] {
            s.add_stats(&sample(f, m, k as u64 + 1)).await?;
        }
    }
    let key = |g: &StatsSample| (g.minute_ms, g.function.to_string());
    let want = |from: usize| -> Vec<(i64, String)> {
        minutes[from..]
            .iter()
            .flat_map(|&m| ["fault", "ingest", "merge"].map(|f| (m, f.to_owned())))
            .collect()
    };
    let got: Vec<_> = s.stats(base).await?.iter().map(key).collect();
    ensure_law!(got == want(0), "from the first minute: {got:?}");
    let got: Vec<_> = s.stats(minutes[1]).await?.iter().map(key).collect();
    ensure_law!(got == want(1), "from the second minute: {got:?}");
    let got: Vec<_> = s.stats(minutes[1] + 1).await?.iter().map(key).collect();
    ensure_law!(got == want(2), "from within the second minute: {got:?}");
    let got = s.stats(minutes[2] + MINUTE).await?;
    ensure_law!(
        got.iter().all(|g| g.minute_ms > minutes[2]),
        "after the last minute: {got:?}"
    );
    let last = s.stats(minutes[2]).await?;
    ensure_law!(
        last.iter().all(|g| g == &sample(g.function, minutes[2], 3)),
        "the last minute's samples: {last:?}"
    );
    Ok(())
}
