//! Merging the panes of all shards into the results of a window (queries 1 and 2).
//!
//! A [`WindowAccumulator`] takes pane items in any order (several shards, several buckets,
//! several panes of a longer window) and sums per intersection: speed sums and per-light
//! vehicles exactly, vehicle digests by collecting them and merging once at the end.

use crate::digest::VehicleDigest;
use crate::ids::{IntersectionId, LIGHTS_PER_INTERSECTION};
use crate::pane::PaneItem;
use crate::ranking::{PartialRanking, RankEntry, SpeedSum};
use crate::time::format_rfc3339_ms;
use crate::window::WindowKey;
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// Window length (`15m`, `1h`, `24h`).
    pub length: String,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End (exclusive), RFC 3339 UTC.
    pub end: String,
    /// Whether the watermark has closed it (otherwise the results are provisional).
    pub closed: bool,
    /// Readings in it.
    pub readings: u64,
    /// Query 1: the fastest intersections, fastest first, ties by id.
    pub top10: Vec<RankEntry>,
    /// Query 2: median of all readings' vehicle counts.
    pub global_median_vehicles: f64,
    /// Query 2: intersections whose median is strictly above the global one, highest first,
    /// ties by id.
    pub above_median: Vec<MedianEntry>,
    /// The window, for ordering and storage keys.
    #[serde(skip)]
    pub key: Option<WindowKey>,
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
            length: self.key.length.to_string(),
            start: format_rfc3339_ms(self.key.start_ms),
            end: format_rfc3339_ms(self.key.end_ms()),
            closed,
            readings,
            top10: ranking.top_k(top_k),
            global_median_vehicles: global,
            above_median: above,
            key: Some(self.key),
        }
    }
}
