//! Merging the panes of all shards into the results of a window (queries 1 and 2).
//!
//! A [`WindowAccumulator`] takes pane items in any order (several shards, several buckets,
//! several panes of a longer window) and sums per intersection: speed sums and per-light
//! vehicles exactly, vehicle digests by collecting them and merging once at the end.

use crate::digest::VehicleDigest;
use crate::ids::{IntersectionId, LIGHTS_PER_INTERSECTION};
use crate::pane::PaneItem;
use crate::ranking::{PartialRanking, RankEntry, SpeedSum};
use crate::time::{format_rfc3339_ms, parse_rfc3339_ms};
use crate::window::{WindowKey, WindowLength};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many digests an intersection collects before they are merged into one.
const COMPACT_AT: usize = 32;

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

/// One intersection's totals over a window.
#[derive(Clone, Debug, Default)]
pub struct IntersectionTotals {
    /// Speed sums.
    pub speed: SpeedSum,
    /// Vehicles per light.
    pub vehicles: [u64; LIGHTS_PER_INTERSECTION],
    /// Readings.
    pub readings: u64,
    digests: Vec<VehicleDigest>,
}

/// Builds one window from pane items.
#[derive(Clone, Debug)]
pub struct WindowAccumulator {
    key: WindowKey,
    totals: BTreeMap<IntersectionId, IntersectionTotals>,
}

impl WindowAccumulator {
    /// An empty accumulator for `key`.
    pub fn new(key: WindowKey) -> Self {
        Self {
            key,
            totals: BTreeMap::new(),
        }
    }

    /// The window.
    pub fn key(&self) -> WindowKey {
        self.key
    }

    /// Adds a pane item (ignored unless the pane lies inside the window).
    pub fn add(&mut self, item: &PaneItem) {
        let inside = self.key.contains(item.key.start_ms)
            && item.key.start_ms + item.length_ms <= self.key.end_ms();
        if !inside {
            return;
        }
        for (id, x) in &item.intersections {
            let t = self.totals.entry(id.clone()).or_default();
            t.speed.merge(&x.speed);
            for (v, l) in t.vehicles.iter_mut().zip(&x.lights) {
                *v += l.vehicles;
            }
            t.readings += x.readings();
            if !x.digest.is_empty() {
                t.digests.push(x.digest.clone());
                // Bound memory over long windows (96 panes × shards): fold the collected
                // digests into one now and then.
                if t.digests.len() >= COMPACT_AT {
                    let one = VehicleDigest::merge_all(&t.digests);
                    t.digests = vec![one];
                }
            }
        }
    }

    /// Per-intersection totals (for Webster's flows).
    pub fn totals(&self) -> impl Iterator<Item = (&IntersectionId, &IntersectionTotals)> {
        self.totals.iter()
    }

    /// Every intersection's mean speed and traffic over the window, by id.
    pub fn network(&self, closed: bool) -> NetworkState {
        NetworkState {
            length: self.key.length.to_string(),
            start: format_rfc3339_ms(self.key.start_ms),
            end: format_rfc3339_ms(self.key.end_ms()),
            closed,
            intersections: self
                .totals
                .iter()
                .map(|(id, t)| IntersectionState {
                    intersection_id: id.clone(),
                    mean_speed_kmh: t.speed.mean_kmh(),
                    vehicles: t.vehicles.iter().sum(),
                    readings: t.readings,
                })
                .collect(),
        }
    }

    /// Computes the window's results; `top_k` entries in the ranking.
    pub fn finish(&self, closed: bool, top_k: usize) -> WindowResult {
        let mut ranking = PartialRanking::new();
        let mut medians = Vec::with_capacity(self.totals.len());
        let mut merged = Vec::with_capacity(self.totals.len());
        let mut readings = 0;
        for (id, t) in &self.totals {
            ranking.add(id, &t.speed);
            readings += t.readings;
            let d = VehicleDigest::merge_all(&t.digests);
            if let Some(m) = d.median() {
                medians.push((id, m));
            }
            merged.push(d);
        }
        let global = VehicleDigest::merge_all(&merged).median().unwrap_or(0.0);
        let mut above: Vec<MedianEntry> = medians
            .into_iter()
            .filter(|(_, m)| *m > global)
            .map(|(id, m)| MedianEntry {
                intersection_id: id.clone(),
                median_vehicles: m,
            })
            .collect();
        above.sort_by(|a, b| {
            b.median_vehicles
                .total_cmp(&a.median_vehicles)
                .then_with(|| a.intersection_id.cmp(&b.intersection_id))
        });
        WindowResult {
            window: self.key,
            closed,
            readings,
            top: ranking.top_k(top_k),
            global_median_vehicles: global,
            above_median: above,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LightIndex;
    use crate::config::EngineConfig;
    use crate::pane::BatchFold;
    use crate::reading::{Lamps, Reading};
    use crate::sequence::SequenceNumber;

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
    fn window(readings: &[Reading]) -> WindowAccumulator {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, "s", None, Vec::new());
        for (i, r) in readings.iter().enumerate() {
            fold.apply(&SequenceNumber::from_u128(i as u128 + 1), r);
        }
        let key = WindowLength::from_ms(15 * 60_000)
            .unwrap_or_else(|| panic!("15 minutes"))
            .window_of(T0);
        let mut acc = WindowAccumulator::new(key);
        for item in fold.commit().items {
            acc.add(item);
        }
        acc
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

    #[test]
    fn a_result_is_written_with_its_window_as_strings_and_read_back_whole() {
        let acc = window(&[
            reading("I-0001", 0, 1, 10, 40.0),
            reading("I-0002", 0, 2, 5, 20.0),
        ]);
        let result = acc.finish(true, 10);
        let json = serde_json::to_string(&result).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            json.starts_with(
                r#"{"length":"15m","start":"2026-01-05T08:00:00Z","end":"2026-01-05T08:15:00Z","closed":true,"readings":2,"top10":[{"#
            ),
            "{json}"
        );
        let back: WindowResult = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, result);
        let bytes = postcard::to_allocvec(&result).unwrap_or_else(|e| panic!("{e}"));
        let back: WindowResult = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, result);
    }
}
