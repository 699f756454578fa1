//! The results others can subscribe to: the events the merge publishes when a window closes
//! and when it retimes the city (`docs/contracts.md`, "Result events").
//!
//! Each event is a detail type and a JSON detail, from the source [`SOURCE`]; on AWS they go
//! to an EventBridge bus, locally to the embedded store. Delivery is at least once (a merge
//! run that fails to publish is redone), so every detail carries `window`, the key a
//! subscriber deduplicates on together with the detail type.

use crate::IntersectionId;
use crate::plan::Plan;
use crate::query::WindowResult;
use crate::ranking::RankEntry;
use crate::time::format_rfc3339_ms;
use crate::window::WindowKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The events' source (EventBridge's `source`).
pub const SOURCE: &str = "traffic.merge";
/// The detail type of [`WindowClosed`].
pub const WINDOW_CLOSED: &str = "Window closed";
/// The detail type of [`TimingsChanged`].
pub const TIMINGS_CHANGED: &str = "Timings changed";

/// A window's final results, published once the watermark has closed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowClosed {
    /// The window as text (`15m@2026-01-05T08:15:00Z`): with the detail type, the event's
    /// identity for deduplication.
    #[serde(with = "crate::window::key_as_text")]
    pub window: WindowKey,
    /// Its length (`15m`, `1h`, `24h`): what a rule filters on.
    pub length: String,
    /// Its start, RFC 3339 UTC (inclusive).
    pub start: String,
    /// Its end, RFC 3339 UTC (exclusive).
    pub end: String,
    /// Readings in it.
    pub readings: u64,
    /// Query 1: the fastest intersections, fastest first (as the stored result's `top10`).
    pub top10: Vec<RankEntry>,
    /// Query 2: the median of all readings' vehicle counts.
    pub global_median_vehicles: f64,
    /// Query 2: how many intersections have a median strictly above it (the list itself is
    /// in the stored result: `GET /api/results`).
    pub above_median_count: usize,
}

impl WindowClosed {
    /// The event of a window's result.
    pub fn of(r: &WindowResult) -> Self {
        Self {
            window: r.window,
            length: r.length(),
            start: r.start(),
            end: r.end(),
            readings: r.readings,
            top10: r.top.clone(),
            global_median_vehicles: r.global_median_vehicles,
            above_median_count: r.above_median.len(),
        }
    }
}

/// Most plans one [`TimingsChanged`] event carries: a round that gave more intersections new
/// timings is published in parts. A plan is at most about 600 bytes of JSON (four phases, a
/// 64-byte id, every number at full precision), so a part stays far below the 256 KB an
/// EventBridge entry may be.
pub const PLANS_PER_EVENT: usize = 200;

/// One retiming round: Webster's timings computed from a closed control window, and the plans
/// for actuated controllers drawn from them, in one or more parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimingsChanged {
    /// The control window the timings were computed from (`15m@...`): with `part`, the
    /// event's identity.
    #[serde(with = "crate::window::key_as_text")]
    pub window: WindowKey,
    /// When that window ended, RFC 3339 UTC.
    pub end: String,
    /// Intersections given new timings (in the whole round).
    pub retimed: usize,
    /// Intersections left as they were because an operator changed them meanwhile (retimed
    /// from a later window).
    pub skipped: usize,
    /// This part's share of the plans of the intersections the round gave new timings, by id
    /// (ids in order across the parts): each the plan stored with the timings
    /// ([`crate::plan`]).
    #[serde(default)]
    pub plans: BTreeMap<IntersectionId, Plan>,
    /// Which part of the round this event is, from 1.
    #[serde(default = "one")]
    pub part: usize,
    /// How many parts the round was published in (at least 1).
    #[serde(default = "one")]
    pub parts: usize,
}

fn one() -> usize {
    1
}

impl TimingsChanged {
    /// The round of `window`, without plans: one part.
    pub fn new(window: WindowKey, retimed: usize, skipped: usize) -> Self {
        Self {
            window,
            end: format_rfc3339_ms(window.end_ms()),
            retimed,
            skipped,
            plans: BTreeMap::new(),
            part: 1,
            parts: 1,
        }
    }

    /// The round of `window` with the plans of the intersections given new timings: one
    /// event per [`PLANS_PER_EVENT`] plans (in id order), at least one; each carries the
    /// round's counts.
    pub fn round(
        window: WindowKey,
        retimed: usize,
        skipped: usize,
        plans: BTreeMap<IntersectionId, Plan>,
    ) -> Vec<Self> {
        let parts = plans.len().div_ceil(PLANS_PER_EVENT).max(1);
        let mut plans = plans.into_iter();
        (1..=parts)
            .map(|part| Self {
                plans: plans.by_ref().take(PLANS_PER_EVENT).collect(),
                part,
                parts,
                ..Self::new(window, retimed, skipped)
            })
            .collect()
    }
}

/// An event the merge publishes: its detail type and detail are [`ResultEvent::detail_type`]
/// and [`ResultEvent::detail`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResultEvent {
    /// [`WINDOW_CLOSED`].
    WindowClosed(WindowClosed),
    /// [`TIMINGS_CHANGED`].
    TimingsChanged(TimingsChanged),
}

impl ResultEvent {
    /// EventBridge's `detail-type`.
    pub fn detail_type(&self) -> &'static str {
        match self {
            ResultEvent::WindowClosed(_) => WINDOW_CLOSED,
            ResultEvent::TimingsChanged(_) => TIMINGS_CHANGED,
        }
    }

    /// EventBridge's `detail`: the payload as a JSON object.
    pub fn detail(&self) -> Result<String, serde_json::Error> {
        match self {
            ResultEvent::WindowClosed(e) => serde_json::to_string(e),
            ResultEvent::TimingsChanged(e) => serde_json::to_string(e),
        }
    }

    /// The window the event is about.
    pub fn window(&self) -> WindowKey {
        match self {
            ResultEvent::WindowClosed(e) => e.window,
            ResultEvent::TimingsChanged(e) => e.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::MedianEntry;
    use crate::window::WindowLength;

    fn result() -> Result<WindowResult, Box<dyn std::error::Error>> {
        Ok(WindowResult {
            window: WindowKey {
                length: "15m".parse::<WindowLength>()?,
                start_ms: 1_767_600_000_000,
            },
            closed: true,
            readings: 480,
            top: vec![RankEntry {
                intersection_id: IntersectionId::parse("I-0003")?,
                mean_speed_kmh: 51.5,
            }],
            global_median_vehicles: 7.0,
            above_median: vec![
                MedianEntry {
                    intersection_id: IntersectionId::parse("I-0001")?,
                    median_vehicles: 9.0,
                },
                MedianEntry {
                    intersection_id: IntersectionId::parse("I-0002")?,
                    median_vehicles: 8.0,
                },
            ],
        })
    }

    #[test]
    fn a_window_closed_event_carries_the_stored_summary_and_names_its_window()
    -> Result<(), Box<dyn std::error::Error>> {
        let e = ResultEvent::WindowClosed(WindowClosed::of(&result()?));
        assert_eq!(e.detail_type(), "Window closed");
        let d: serde_json::Value = serde_json::from_str(&e.detail()?)?;
        assert_eq!(d["window"], "15m@2026-01-05T08:00:00Z");
        assert_eq!(d["length"], "15m");
        assert_eq!(d["start"], "2026-01-05T08:00:00Z");
        assert_eq!(d["end"], "2026-01-05T08:15:00Z");
        assert_eq!(d["readings"], 480);
        assert_eq!(d["top10"][0]["intersection_id"], "I-0003");
        assert_eq!(d["top10"][0]["mean_speed_kmh"], 51.5);
        assert_eq!(d["global_median_vehicles"], 7.0);
        assert_eq!(d["above_median_count"], 2);
        let back: WindowClosed = serde_json::from_value(d)?;
        assert_eq!(ResultEvent::WindowClosed(back), e);
        Ok(())
    }

    #[test]
    fn a_timings_changed_event_counts_the_retimed_and_the_skipped()
    -> Result<(), Box<dyn std::error::Error>> {
        let w = result()?.window;
        let e = ResultEvent::TimingsChanged(TimingsChanged::new(w, 11, 1));
        assert_eq!(e.detail_type(), "Timings changed");
        let d: serde_json::Value = serde_json::from_str(&e.detail()?)?;
        assert_eq!(
            d,
            serde_json::json!({"window": "15m@2026-01-05T08:00:00Z", "end": "2026-01-05T08:15:00Z", "retimed": 11, "skipped": 1,
                "plans": {}, "part": 1, "parts": 1})
        );
        // An event from before plans were published reads as a round of one part.
        let old: TimingsChanged = serde_json::from_value(serde_json::json!(
            {"window": "15m@2026-01-05T08:00:00Z", "end": "2026-01-05T08:15:00Z", "retimed": 11, "skipped": 1}))?;
        assert_eq!(ResultEvent::TimingsChanged(old), e);
        Ok(())
    }

    /// A plan of `phases` phases whose every number takes 17 digits to write.
    fn a_plan(phases: usize) -> Plan {
        let long = |whole: f64| whole + 1.0 / 3.0;
        let p = crate::plan::PhasePlan {
            min_green_s: long(1234.0),
            green_s: long(2469.0),
            max_green_s: long(3599.0),
        };
        Plan {
            cycle_s: long(3599.0),
            offset_s: Some(long(1234.0)),
            coordinated_phase: Some(phases.saturating_sub(1)),
            phases: vec![p; phases],
        }
    }

    #[test]
    fn a_timings_changed_event_carries_the_plans_by_id() -> Result<(), Box<dyn std::error::Error>> {
        let w = result()?.window;
        let plan = crate::plan::plan(
            &serde_json::from_str::<Vec<crate::city::Phase>>(
                r#"[{"lights":[0],"green_s":30,"red_s":11},{"lights":[1],"green_s":8,"red_s":33}]"#,
            )?,
            3.0,
            None,
            &crate::plan::PlanConfig::default(),
        );
        let plans = BTreeMap::from([(IntersectionId::parse("I-0001")?, plan)]);
        let round = TimingsChanged::round(w, 1, 0, plans);
        assert_eq!(round.len(), 1);
        let e = ResultEvent::TimingsChanged(round[0].clone());
        let d: serde_json::Value = serde_json::from_str(&e.detail()?)?;
        assert_eq!(
            d["plans"]["I-0001"],
            serde_json::json!({"cycle_s": 44.0, "offset_s": null, "coordinated_phase": null, "phases": [
                {"min_green_s": 12.0, "green_s": 30.0, "max_green_s": 90.0},
                {"min_green_s": 5.0, "green_s": 8.0, "max_green_s": 24.0}]})
        );
        assert_eq!(
            (d["part"].as_u64(), d["parts"].as_u64()),
            (Some(1), Some(1))
        );
        let back: TimingsChanged = serde_json::from_value(d)?;
        assert_eq!(back, round[0]);
        Ok(())
    }

    #[test]
    fn a_large_round_is_cut_into_parts_each_within_an_eventbridge_entry()
    -> Result<(), Box<dyn std::error::Error>> {
        let w = result()?.window;
        let n = 2 * PLANS_PER_EVENT + 1;
        let plans: BTreeMap<IntersectionId, Plan> = (0..n)
            .map(|i| Ok((IntersectionId::parse(&format!("{i:0>64}"))?, a_plan(4))))
            .collect::<Result<_, Box<dyn std::error::Error>>>()?;
        let ids: Vec<IntersectionId> = plans.keys().cloned().collect();
        let round = TimingsChanged::round(w, n, 3, plans);
        assert_eq!(round.len(), 3);
        let mut seen = Vec::new();
        for (i, e) in round.iter().enumerate() {
            assert_eq!((e.part, e.parts, e.retimed, e.skipped), (i + 1, 3, n, 3));
            let bytes = ResultEvent::TimingsChanged(e.clone()).detail()?.len();
            assert!(bytes < 200 * 1024, "part {} is {bytes} bytes", e.part);
            seen.extend(e.plans.keys().cloned());
        }
        assert_eq!(seen, ids, "every plan once, in id order");
        assert_eq!(TimingsChanged::round(w, 0, 0, BTreeMap::new()).len(), 1);
        Ok(())
    }
}
