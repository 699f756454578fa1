//! The results of a window (queries 1 and 2) and the operator's network state, as the merge
//! stores them and the API serves them. They are computed from a window's rollup
//! ([`crate::rollup::Rollup::finish`] and [`crate::rollup::Rollup::network`]).

use crate::ids::IntersectionId;
use crate::ranking::RankEntry;
use crate::time::{format_rfc3339_ms, parse_rfc3339_ms};
use crate::window::{WindowKey, WindowLength};
use serde::{Deserialize, Serialize};

/// One intersection's median, for the above-median list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MedianEntry {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// Median of its readings' vehicle counts (all its lights).
    pub median_vehicles: f64,
}

/// The results of one window.
///
/// Its JSON (the replay output, the API, the stored item) names the window by `length`,
/// `start` and `end` strings and the ranking `top10`, whatever the configured K: the contract
/// of `docs/contracts.md`. In Rust it carries the [`WindowKey`] itself.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    /// The window.
    pub window: WindowKey,
    /// Whether the watermark has closed it (otherwise the results are provisional).
    pub closed: bool,
    /// Readings in it.
    pub readings: u64,
    /// Query 1: the `top_k` fastest intersections, fastest first, ties by id (JSON `top10`).
    pub top: Vec<RankEntry>,
    /// Query 2: median of all readings' vehicle counts.
    pub global_median_vehicles: f64,
    /// Query 2: intersections whose median is strictly above the global one, highest first,
    /// ties by id.
    pub above_median: Vec<MedianEntry>,
}

impl WindowResult {
    /// The window's length as written in JSON (`15m`).
    pub fn length(&self) -> String {
        self.window.length.to_string()
    }

    /// The window's start, RFC 3339 UTC.
    pub fn start(&self) -> String {
        format_rfc3339_ms(self.window.start_ms)
    }

    /// The window's end (exclusive), RFC 3339 UTC.
    pub fn end(&self) -> String {
        format_rfc3339_ms(self.window.end_ms())
    }
}

impl Serialize for WindowResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("WindowResult", 8)?;
        st.serialize_field("length", &self.length())?;
        st.serialize_field("start", &self.start())?;
        st.serialize_field("end", &self.end())?;
        st.serialize_field("closed", &self.closed)?;
        st.serialize_field("readings", &self.readings)?;
        st.serialize_field("top10", &self.top)?;
        st.serialize_field("global_median_vehicles", &self.global_median_vehicles)?;
        st.serialize_field("above_median", &self.above_median)?;
        st.end()
    }
}

/// [`WindowResult`] as written: the window as strings.
#[derive(Deserialize)]
struct WindowResultText {
    length: String,
    start: String,
    #[allow(dead_code)]
    end: String,
    closed: bool,
    readings: u64,
    top10: Vec<RankEntry>,
    global_median_vehicles: f64,
    above_median: Vec<MedianEntry>,
}

impl<'de> Deserialize<'de> for WindowResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let t = WindowResultText::deserialize(d)?;
        let length: WindowLength = t.length.parse().map_err(D::Error::custom)?;
        let start_ms = parse_rfc3339_ms(&t.start)
            .ok_or_else(|| D::Error::custom(format!("window start {:?}", t.start)))?;
        Ok(WindowResult {
            window: WindowKey { length, start_ms },
            closed: t.closed,
            readings: t.readings,
            top: t.top10,
            global_median_vehicles: t.global_median_vehicles,
            above_median: t.above_median,
        })
    }
}

/// Every intersection's state over one window, for the operator's map (the results keep
/// only the top-k by speed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    /// Window length (`15m`).
    pub length: String,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End (exclusive), RFC 3339 UTC.
    pub end: String,
    /// Whether the watermark has closed it.
    pub closed: bool,
    /// Every intersection with readings in the window, by id.
    pub intersections: Vec<IntersectionState>,
}

/// One intersection in a [`NetworkState`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntersectionState {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// Vehicle-weighted mean speed (query 1's measure); `None` when no vehicle crossed.
    pub mean_speed_kmh: Option<f64>,
    /// Vehicles that crossed, all lights.
    pub vehicles: u64,
    /// Readings.
    pub readings: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::pane::{BatchFold, MergeMarks};
    use crate::reading::{Lamps, Reading};
    use crate::rollup::Rollup;
    use crate::sequence::SequenceNumber;
    use crate::{LightIndex, WindowLength};

    const T0: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z

    fn reading(x: &str, light: i64, minute: i64, vehicles: u32, speed: f64) -> Reading {
        Reading {
            intersection_id: IntersectionId::parse(x).unwrap_or_else(|e| panic!("{e}")),
            light: LightIndex::new(light).unwrap_or_else(|e| panic!("{e}")),
            ts_ms: T0 + minute * 60_000,
            vehicles,
            mean_speed_kmh: speed,
            lamps: Lamps::default(),
            position: None,
        }
    }

    /// The 15-minute window from 08:00 over `readings`, folded as one shard's batch.
    fn window(readings: &[Reading]) -> Rollup {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, &"s".into(), None, MergeMarks::default());
        for (i, r) in readings.iter().enumerate() {
            fold.apply(&SequenceNumber::from_u128(i as u128 + 1), r, None);
        }
        let key = WindowLength::from_ms(15 * 60_000)
            .unwrap_or_else(|| panic!("15 minutes"))
            .window_of(T0);
        let c = fold.commit();
        Rollup::compact(key, &c.deltas, cfg.min_reading_interval_ms, cfg.digest_size)
    }

    #[test]
    fn the_network_state_has_every_intersection_not_only_the_top_k() {
        let acc = window(&[
            reading("I-0001", 0, 1, 10, 40.0),
            reading("I-0001", 1, 1, 30, 60.0),
            reading("I-0002", 0, 2, 5, 20.0),
            reading("I-0003", 2, 3, 0, 0.0),
            reading("I-0004", 3, 20, 7, 50.0), // next window
        ]);
        let net = acc.network(false);
        assert_eq!(
            (net.length.as_str(), net.start.as_str(), net.end.as_str()),
            ("15m", "2026-01-05T08:00:00Z", "2026-01-05T08:15:00Z")
        );
        let got: Vec<(&str, Option<f64>, u64, u64)> = net
            .intersections
            .iter()
            .map(|x| {
                (
                    x.intersection_id.as_str(),
                    x.mean_speed_kmh,
                    x.vehicles,
                    x.readings,
                )
            })
            .collect();
        // I-0001: (10 × 40 + 30 × 60) / 40 = 55; I-0003 had no vehicles: no speed.
        assert_eq!(
            got,
            [
                ("I-0001", Some(55.0), 40, 2),
                ("I-0002", Some(20.0), 5, 1),
                ("I-0003", None, 0, 1),
            ]
        );
        // The same speeds as query 1 where both have the intersection.
        let result = acc.finish(false, 1);
        assert_eq!(result.top.len(), 1);
        assert_eq!(
            Some(result.top[0].mean_speed_kmh),
            net.intersections[0].mean_speed_kmh
        );
    }
}
