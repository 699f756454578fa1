//! Deltas: the readings one `ingest` commit of one shard added to one pane, in a compact
//! binary form.
//!
//! `ingest` no longer rewrites a pane's state: each commit appends, per pane it touched, one
//! [`Delta`] holding exactly the readings it accepted, so what a commit writes is proportional
//! to its batch, not to the pane so far (`docs/state.md`). The merge compacts a closed pane's
//! deltas once into a [`crate::rollup::Rollup`], removing duplicates there.
//!
//! The encoding ([`Delta::encode`]) is about 4 bytes per reading plus about 10 per intersection:
//! readings are grouped by intersection (its id written once, as the part that differs from
//! the previous id); each reading is one varint of
//! its timestamp's distance from the intersection's previous reading (zigzag, in whole seconds
//! when it is some, else in ms) with its light in the low bits, one varint of vehicles and one
//! of its speed (in tenths of a km/h when the speed has no finer digits, as sensors send them,
//! else in thousandths).
//!
//! A delta also says when its commit's readings arrived in the stream ([`Arrivals`]: the
//! first, the last and the mean arrival, processing time), so the merge can measure the
//! latency from a reading's arrival to the first result that includes it. Format 2 carries
//! them (three varints after the header, about 8 bytes a delta part); format 1, without
//! them, still decodes.

use crate::ids::{IntersectionId, LightIndex};
use crate::window::{WindowKey, WindowLength};
use std::collections::BTreeMap;

/// The bit that sets a redrive's delta keys apart from the live fold's commit numbers
/// ([`crate::redrive`]): a delta whose commit has it set was written by a redrive.
pub const REDRIVE_COMMIT_BIT: u64 = 1 << 63;

/// Where a delta lives: its pane, the shard and commit that wrote it, and its part (a large
/// commit is split into parts of bounded size).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct DeltaKey {
    /// Start of the pane, epoch ms.
    pub pane_start_ms: i64,
    /// The shard.
    pub shard_id: crate::ShardId,
    /// The shard's commit number (1, 2, ...).
    pub commit: u64,
    /// Part of that commit's delta for this pane (0, 1, ...).
    pub part: u32,
}

/// One accepted reading, as a delta keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaReading {
    /// The light.
    pub light: LightIndex,
    /// Event time, epoch ms.
    pub ts_ms: i64,
    /// Vehicles.
    pub vehicles: u32,
    /// Mean speed, thousandths of a km/h.
    pub speed_milli: u64,
}

impl DeltaReading {
    /// Reading `r` as a delta keeps it (its intersection is the delta's key).
    pub fn of(r: &crate::Reading) -> Self {
        Self {
            light: r.light,
            ts_ms: r.ts_ms,
            vehicles: r.vehicles,
            speed_milli: r.speed_milli(),
        }
    }
}

/// When the readings of one commit (into one pane) arrived in the stream, processing time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrivals {
    /// The earliest arrival, epoch ms.
    pub first_ms: i64,
    /// The latest arrival, epoch ms.
    pub last_ms: i64,
    /// The mean arrival over the readings, epoch ms (rounded down).
    pub mean_ms: i64,
}

/// Sums arrivals into [`Arrivals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArrivalSum {
    first_ms: i64,
    last_ms: i64,
    sum_ms: i128,
    count: u64,
}

impl ArrivalSum {
    /// Adds one reading's arrival.
    pub fn add(&mut self, arrival_ms: i64) {
        if self.count == 0 {
            self.first_ms = arrival_ms;
            self.last_ms = arrival_ms;
        } else {
            self.first_ms = self.first_ms.min(arrival_ms);
            self.last_ms = self.last_ms.max(arrival_ms);
        }
        self.sum_ms += i128::from(arrival_ms);
        self.count += 1;
    }

    /// The arrivals summed, if any.
    pub fn finish(&self) -> Option<Arrivals> {
        (self.count > 0).then(|| Arrivals {
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            mean_ms: i64::try_from(self.sum_ms.div_euclid(i128::from(self.count)))
                .unwrap_or(self.last_ms),
        })
    }
}

/// The readings one commit added to one pane, by intersection, each intersection's readings
/// in the order they were delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    /// Where it lives.
    pub key: DeltaKey,
    /// The pane.
    pub pane: WindowKey,
    /// Readings by intersection, in delivery order within each.
    pub readings: BTreeMap<IntersectionId, Vec<DeltaReading>>,
    /// When the commit's readings arrived in the stream, when it knew (every part of a split
    /// delta carries its commit's).
    pub arrivals: Option<Arrivals>,
}

/// Bytes that do not decode as a delta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt delta: {0}")]
pub struct DeltaError(pub &'static str);

/// The encoding without arrivals.
const FORMAT_PLAIN: u8 = 1;
/// The encoding with arrivals.
const FORMAT_ARRIVALS: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over encoded bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, DeltaError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or(DeltaError("truncated varint"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DeltaError("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DeltaError> {
        let end = self.at.checked_add(n).ok_or(DeltaError("length"))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(DeltaError("truncated bytes"))?;
        self.at = end;
        Ok(s)
    }
}

/// A reading's first varint: its distance in time from the previous reading (zigzag; in whole
/// seconds when it is a whole number of them, flagged by bit 0), then its light in two bits.
fn head(delta_ms: i64, light: usize) -> u64 {
    let time = if delta_ms % 1000 == 0 {
        zigzag(delta_ms / 1000) << 1
    } else {
        (zigzag(delta_ms) << 1) | 1
    };
    (time << 2) | light as u64
}

/// The distance in ms and the light of a reading's first varint.
fn unhead(head: u64) -> Result<(i64, usize), DeltaError> {
    let light = (head & 3) as usize;
    let time = head >> 2;
    let delta = if time & 1 == 0 {
        unzigzag(time >> 1)
            .checked_mul(1000)
            .ok_or(DeltaError("timestamp"))?
    } else {
        unzigzag(time >> 1)
    };
    Ok((delta, light))
}

fn speed_code(speed_milli: u64) -> u64 {
    if speed_milli.is_multiple_of(100) {
        (speed_milli / 100) << 1
    } else {
        (speed_milli << 1) | 1
    }
}

fn speed_of(code: u64) -> u64 {
    if code & 1 == 0 {
        (code >> 1) * 100
    } else {
        code >> 1
    }
}

/// Bytes one reading takes in the encoding, after its intersection's previous one at `prev_ms`.
fn reading_len(r: &DeltaReading, prev_ms: i64) -> usize {
    varint_len(head(r.ts_ms - prev_ms, r.light.get()))
        + varint_len(u64::from(r.vehicles))
        + varint_len(speed_code(r.speed_milli))
}

/// What [`Delta::split`] counts for an intersection's readings `rs` in one part: its worst-case
/// head and its readings' bytes.
fn part_len(id: &IntersectionId, rs: &[DeltaReading], pane: WindowKey) -> usize {
    let mut prev = pane.start_ms;
    let mut n = 10 + id.as_str().len() + 10 + 10;
    for r in rs {
        n += reading_len(r, prev);
        prev = r.ts_ms;
    }
    n
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

impl Delta {
    /// An empty delta.
    pub fn new(key: DeltaKey, pane: WindowKey) -> Self {
        Self {
            key,
            pane,
            readings: BTreeMap::new(),
            arrivals: None,
        }
    }

    /// Readings held.
    pub fn len(&self) -> usize {
        self.readings.values().map(Vec::len).sum()
    }

    /// Whether it holds no reading.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Whether it holds a reading of `id`'s light `light` at `ts_ms`.
    pub fn has(&self, id: &IntersectionId, light: LightIndex, ts_ms: i64) -> bool {
        self.readings
            .get(id)
            .is_some_and(|rs| rs.iter().any(|r| r.light == light && r.ts_ms == ts_ms))
    }

    /// Adds a reading of `id`.
    pub fn push(&mut self, id: &IntersectionId, r: DeltaReading) {
        match self.readings.get_mut(id) {
            Some(v) => v.push(r),
            None => {
                self.readings.insert(id.clone(), vec![r]);
            }
        }
    }

    /// The compact encoding (the pane and the readings; the key lives in the storage key).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.len() * 5 + self.readings.len() * 10);
        out.push(if self.arrivals.is_some() {
            FORMAT_ARRIVALS
        } else {
            FORMAT_PLAIN
        });
        put_varint(&mut out, zigzag(self.pane.start_ms));
        put_varint(&mut out, self.pane.length.ms() as u64);
        if let Some(a) = self.arrivals {
            // Relative to the pane's start, then to the first arrival: a few bytes each.
            put_varint(
                &mut out,
                zigzag(a.first_ms.wrapping_sub(self.pane.start_ms)),
            );
            put_varint(&mut out, zigzag(a.last_ms.wrapping_sub(a.first_ms)));
            put_varint(&mut out, zigzag(a.mean_ms.wrapping_sub(a.first_ms)));
        }
        put_varint(&mut out, self.readings.len() as u64);
        let mut prev_id: &[u8] = b"";
        for (id, rs) in &self.readings {
            // Ids ascend: each is written as the length it shares with the previous one and
            // the rest ("I-0041" after "I-0040" is 3 bytes).
            let id_bytes = id.as_str().as_bytes();
            let shared = prev_id
                .iter()
                .zip(id_bytes)
                .take_while(|(a, b)| a == b)
                .count();
            put_varint(&mut out, shared as u64);
            put_varint(&mut out, (id_bytes.len() - shared) as u64);
            out.extend_from_slice(&id_bytes[shared..]);
            prev_id = id_bytes;
            put_varint(&mut out, rs.len() as u64);
            let mut prev = self.pane.start_ms;
            for r in rs {
                put_varint(&mut out, head(r.ts_ms - prev, r.light.get()));
                put_varint(&mut out, u64::from(r.vehicles));
                put_varint(&mut out, speed_code(r.speed_milli));
                prev = r.ts_ms;
            }
        }
        out
    }

    /// Decodes [`Delta::encode`]'s bytes stored under `key`.
    pub fn decode(key: DeltaKey, bytes: &[u8]) -> Result<Self, DeltaError> {
        let mut rd = Reader { bytes, at: 0 };
        let with_arrivals = match rd.take(1)? {
            [FORMAT_PLAIN] => false,
            [FORMAT_ARRIVALS] => true,
            _ => return Err(DeltaError("unknown format")),
        };
        let start_ms = unzigzag(rd.varint()?);
        let length = i64::try_from(rd.varint()?)
            .ok()
            .and_then(WindowLength::from_ms)
            .ok_or(DeltaError("pane length"))?;
        let pane = length.window_of(start_ms);
        if pane.start_ms != start_ms {
            return Err(DeltaError("pane start not aligned to its length"));
        }
        let arrivals = if with_arrivals {
            let first_ms = start_ms
                .checked_add(unzigzag(rd.varint()?))
                .ok_or(DeltaError("arrival"))?;
            let last_ms = first_ms
                .checked_add(unzigzag(rd.varint()?))
                .ok_or(DeltaError("arrival"))?;
            let mean_ms = first_ms
                .checked_add(unzigzag(rd.varint()?))
                .ok_or(DeltaError("arrival"))?;
            if !(first_ms <= mean_ms && mean_ms <= last_ms) {
                return Err(DeltaError("arrivals out of order"));
            }
            Some(Arrivals {
                first_ms,
                last_ms,
                mean_ms,
            })
        } else {
            None
        };
        let n = rd.varint()?;
        let mut readings = BTreeMap::new();
        let mut prev_id: Vec<u8> = Vec::new();
        for _ in 0..n {
            let shared = usize::try_from(rd.varint()?).map_err(|_| DeltaError("id length"))?;
            let len = usize::try_from(rd.varint()?).map_err(|_| DeltaError("id length"))?;
            if shared > prev_id.len() {
                return Err(DeltaError("id prefix"));
            }
            prev_id.truncate(shared);
            prev_id.extend_from_slice(rd.take(len)?);
            let id = std::str::from_utf8(&prev_id).map_err(|_| DeltaError("id not UTF-8"))?;
            let id = IntersectionId::parse_internal(id).map_err(|_| DeltaError("invalid id"))?;
            let count = rd.varint()?;
            // Each reading takes at least 3 bytes: refuse counts the rest cannot hold.
            if count > (bytes.len() - rd.at) as u64 / 3 {
                return Err(DeltaError("reading count"));
            }
            let mut rs = Vec::with_capacity(count as usize);
            let mut prev = pane.start_ms;
            for _ in 0..count {
                let (delta, light) = unhead(rd.varint()?)?;
                let light = LightIndex::new(light as i64).map_err(|_| DeltaError("light"))?;
                let ts_ms = prev.checked_add(delta).ok_or(DeltaError("timestamp"))?;
                if !pane.contains(ts_ms) {
                    return Err(DeltaError("reading outside its pane"));
                }
                let vehicles = u32::try_from(rd.varint()?).map_err(|_| DeltaError("vehicles"))?;
                let speed_milli = speed_of(rd.varint()?);
                rs.push(DeltaReading {
                    light,
                    ts_ms,
                    vehicles,
                    speed_milli,
                });
                prev = ts_ms;
            }
            if readings
                .last_key_value()
                .is_some_and(|(last, _)| *last >= id)
            {
                return Err(DeltaError("intersections out of order"));
            }
            readings.insert(id, rs);
        }
        if rd.at != bytes.len() {
            return Err(DeltaError("trailing bytes"));
        }
        Ok(Self {
            key,
            pane,
            readings,
            arrivals,
        })
    }

    /// Splits the delta into parts whose encodings stay within `max_bytes` (at least one
    /// part; an intersection may continue in the next part, its readings in order), numbered
    /// from `key.part`.
    pub fn split(self, max_bytes: usize) -> Vec<Delta> {
        // Fixed overhead of a part (format, pane, arrivals, count), and of an intersection in
        // it (worst case varints).
        const PART: usize = 1 + 10 + 10 + 30 + 10;
        let budget = max_bytes.max(PART + 128);
        // What the loop below counts when it makes no cut: when that fits, the delta is its
        // own single part (no intersection without readings, which the loop would drop).
        if self.readings.values().all(|rs| !rs.is_empty())
            && PART
                + self
                    .readings
                    .iter()
                    .map(|(id, rs)| part_len(id, rs, self.pane))
                    .sum::<usize>()
                <= budget
        {
            return vec![self];
        }
        let mut parts: Vec<Delta> = Vec::new();
        let arrivals = self.arrivals;
        // The current part's intersections, ascending (each once), made a map when it is done.
        let mut cur: Vec<(IntersectionId, Vec<DeltaReading>)> = Vec::new();
        let mut part = self.key.part;
        let mut size = PART;
        for (id, rs) in self.readings {
            let head = 10 + id.as_str().len() + 10 + 10;
            let mut prev = self.pane.start_ms;
            let mut run: Vec<DeltaReading> = Vec::new();
            let mut run_size = head;
            for r in rs {
                let n = reading_len(&r, prev);
                if size + run_size + n > budget && (!run.is_empty() || !cur.is_empty()) {
                    if !run.is_empty() {
                        cur.push((id.clone(), std::mem::take(&mut run)));
                    }
                    parts.push(Delta {
                        key: DeltaKey {
                            part,
                            ..self.key.clone()
                        },
                        pane: self.pane,
                        readings: std::mem::take(&mut cur).into_iter().collect(),
                        arrivals,
                    });
                    part += 1;
                    size = PART;
                    run_size = head;
                    // The first reading of a part is encoded from the pane start.
                    prev = self.pane.start_ms;
                }
                let n = reading_len(&r, prev);
                run_size += n;
                prev = r.ts_ms;
                run.push(r);
            }
            if !run.is_empty() {
                size += run_size;
                cur.push((id, run));
            }
        }
        parts.push(Delta {
            key: DeltaKey { part, ..self.key },
            pane: self.pane,
            readings: cur.into_iter().collect(),
            arrivals,
        });
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_767_600_000_000;

    fn key() -> DeltaKey {
        DeltaKey {
            pane_start_ms: T0,
            shard_id: "shardId-000000000001".into(),
            commit: 7,
            part: 0,
        }
    }

    fn pane() -> WindowKey {
        WindowLength::from_ms(900_000)
            .unwrap_or_else(|| panic!("length"))
            .window_of(T0)
    }

    fn delta(rows: &[(u16, u8, i64, u32, u64)]) -> Delta {
        let mut d = Delta::new(key(), pane());
        for (i, light, ts, vehicles, speed_milli) in rows {
            let id = IntersectionId::parse(&format!("I-{i:04}")).unwrap_or_else(|e| panic!("{e}"));
            d.push(
                &id,
                DeltaReading {
                    light: LightIndex::new(i64::from(*light)).unwrap_or_else(|e| panic!("{e}")),
                    ts_ms: T0 + ts,
                    vehicles: *vehicles,
                    speed_milli: *speed_milli,
                },
            );
        }
        d
    }

    #[test]
    fn a_minute_of_a_city_takes_about_five_bytes_a_reading() {
        // 1,000 intersections, four lights each at the same second, speeds to 0.1 km/h.
        let rows: Vec<_> = (0..1000u16)
            .flat_map(|i| {
                (0..4u8).map(move |l| {
                    (
                        i,
                        l,
                        65_000,
                        u32::from(i % 23),
                        20_000 + u64::from(i % 300) * 100,
                    )
                })
            })
            .collect();
        let d = delta(&rows);
        let bytes = d.encode();
        let per_reading = bytes.len() as f64 / 4000.0;
        assert!(per_reading < 5.5, "{per_reading} bytes a reading");
        assert_eq!(Delta::decode(key(), &bytes), Ok(d));
    }

    #[test]
    fn arrivals_cost_a_few_bytes_and_round_trip() {
        let mut d = delta(&[(1, 2, 5_000, 3, 43_500), (2, 0, 6_000, 1, 30_000)]);
        let plain = d.encode().len();
        let mut sum = ArrivalSum::default();
        for a in [T0 + 9_000, T0 + 7_500, T0 + 61_000] {
            sum.add(a);
        }
        d.arrivals = sum.finish();
        assert_eq!(
            d.arrivals,
            Some(Arrivals {
                first_ms: T0 + 7_500,
                last_ms: T0 + 61_000,
                mean_ms: T0 + 25_833,
            })
        );
        let bytes = d.encode();
        assert!(
            bytes.len() - plain <= 9,
            "{} bytes more",
            bytes.len() - plain
        );
        assert_eq!(Delta::decode(key(), &bytes), Ok(d.clone()));
        let arrivals = d.arrivals;
        for p in d.split(40) {
            assert_eq!(
                p.arrivals, arrivals,
                "every part carries its commit's arrivals"
            );
        }
    }

    #[test]
    fn corrupt_bytes_are_refused_not_misread() {
        let bytes = delta(&[(1, 2, 5_000, 3, 43_500)]).encode();
        for cut in 0..bytes.len() {
            assert!(Delta::decode(key(), &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(Delta::decode(key(), &wrong).is_err());
        let mut longer = bytes;
        longer.push(0);
        assert!(Delta::decode(key(), &longer).is_err());
    }

    /// The split as it was first written (one map insert a run): the model the faster one
    /// must cut exactly like.
    fn split_model(d: Delta, max_bytes: usize) -> Vec<Delta> {
        const PART: usize = 1 + 10 + 10 + 30 + 10;
        let budget = max_bytes.max(PART + 128);
        let mut parts: Vec<Delta> = Vec::new();
        let mut cur = Delta::new(d.key.clone(), d.pane);
        cur.arrivals = d.arrivals;
        let mut size = PART;
        for (id, rs) in d.readings {
            let head = 10 + id.as_str().len() + 10 + 10;
            let mut prev = d.pane.start_ms;
            let mut run: Vec<DeltaReading> = Vec::new();
            let mut run_size = head;
            for r in rs {
                if size + run_size + reading_len(&r, prev) > budget
                    && (!run.is_empty() || !cur.is_empty())
                {
                    if !run.is_empty() {
                        cur.readings.insert(id.clone(), std::mem::take(&mut run));
                    }
                    let next = DeltaKey {
                        part: cur.key.part + 1,
                        ..d.key.clone()
                    };
                    parts.push(std::mem::replace(&mut cur, Delta::new(next, d.pane)));
                    cur.arrivals = d.arrivals;
                    size = PART;
                    run_size = head;
                    prev = d.pane.start_ms;
                }
                run_size += reading_len(&r, prev);
                prev = r.ts_ms;
                run.push(r);
            }
            if !run.is_empty() {
                size += run_size;
                cur.readings.insert(id, run);
            }
        }
        parts.push(cur);
        parts
    }

    fn rows() -> impl Strategy<Value = Vec<(u16, u8, i64, u32, u64)>> {
        prop::collection::vec(
            (0u16..50, 0u8..4, 0i64..900_000, 0u32..10_000, 0u64..300_000),
            0..400,
        )
    }

    proptest! {
        #[test]
        fn deltas_round_trip_through_their_encoding(
            rows in rows(),
            arrivals in prop::option::of(prop::collection::vec(-1_000_000i64..5_000_000, 1..20)),
        ) {
            let mut d = delta(&rows);
            if let Some(a) = arrivals {
                let mut sum = ArrivalSum::default();
                for x in a {
                    sum.add(T0 + x);
                }
                d.arrivals = sum.finish();
            }
            prop_assert_eq!(Delta::decode(key(), &d.encode()), Ok(d));
        }

        #[test]
        fn split_parts_stay_within_their_size_and_keep_every_reading_in_order(
            rows in rows(),
            max in 200usize..2_000,
        ) {
            let d = delta(&rows);
            let parts = d.clone().split(max);
            let mut joined = Delta::new(key(), pane());
            for (i, p) in parts.iter().enumerate() {
                prop_assert_eq!(p.key.part, i as u32);
                prop_assert!(p.encode().len() <= max, "part {} is {} bytes", i, p.encode().len());
                prop_assert_eq!(Delta::decode(p.key.clone(), &p.encode()), Ok(p.clone()));
                for (id, rs) in &p.readings {
                    for r in rs {
                        joined.push(id, *r);
                    }
                }
            }
            prop_assert_eq!(joined.readings, d.readings);
        }

        #[test]
        fn split_cuts_exactly_where_the_first_split_did(
            rows in rows(),
            max in prop_oneof![200usize..2_000, 2_000usize..20_000],
            empty_runs in prop::collection::vec(0u16..60, 0..3),
            part in 0u32..3,
        ) {
            let mut d = delta(&rows);
            d.key.part = part;
            // Decoding may give an intersection without readings, which a split drops.
            for i in empty_runs {
                let id = IntersectionId::parse(&format!("I-{i:04}")).unwrap_or_else(|e| panic!("{e}"));
                d.readings.entry(id).or_default();
            }
            prop_assert_eq!(d.clone().split(max), split_model(d, max));
        }
    }
}
