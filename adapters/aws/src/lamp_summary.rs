//! The lamp summaries of `LampStore::lamp_summaries`, split into [`SUMMARY_PARTS`] items so
//! that none grows past a bounded size with the city.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | the lamps not ok of the intersections hashed to part `<p>` | `lamp-summary#<p>-of-4` | `state` | `lamps` (M: id → `?` or `0:g;2:ry`), `summarised` (BOOL) |
//!
//! An intersection's entry lives in part `fnv1a64(id) % SUMMARY_PARTS`. A fault batch reads
//! only the parts of the intersections it has readings of (one consistent `BatchGetItem`), and
//! an update of an entry is an `UpdateItem` of its part, billed on that part's size. At
//! 100,000 intersections with 5 % of their lamps broken (48,823 entries; 632 KB as one item)
//! a part holds about 158 KB (`a_city_of_100000_with_5_percent_of_lamps_broken_keeps_every_part_small`),
//! where the one item of before passed DynamoDB's 400 KB limit near 25,000 entries and every
//! fault batch then failed.
//!
//! A part is trusted once `summarised` is set. A table without the parts (new, or from before
//! them: the single `lamp#not-ok` item, whose entries of deleted intersections stayed for ever)
//! is summarised once by its first reader: one consistent `Scan` finds every intersection
//! with a lamp not ok and every intersection in the registry; the lamps not ok of an
//! intersection the registry no longer has are deleted (the repair of stale entries), the
//! others are set to `?` unless a writer got there first (`if_not_exists`), and every part is
//! marked summarised. Deleting an intersection removes its lamp item and its entry
//! (`DynamoStore::forget_lamps`).

use crate::capacity::{item_size, read_units, write_units};
use crate::error::{code_of, port_error};
use crate::items::{Item, from_item, key};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::IntersectionId;
use traffic_core::lamps::{LampSummary, LightLamps};
use traffic_ports::{PortError, PortResult};

/// The lights of one intersection's lamp item (`lamps.rs`), by light index ("0".."3"): what
/// a summary entry is drawn from.
pub(crate) type LampLights = BTreeMap<String, LightLamps>;

/// Items the summaries are split into. Each `fault` batch reads every part that holds one of
/// its intersections (a part at least a read unit), so a city of 1,000 reads 4 units a batch
/// where 8 parts cost 8; at 100,000 intersections with 5 % of their lamps broken a part
/// still holds under 200 KB. The count is in the parts' keys, so a table summarised with
/// another count is summarised again by its first reader, never misread.
pub const SUMMARY_PARTS: u64 = 4;
/// Entries set or removed per `UpdateItem`.
const PER_UPDATE: usize = 50;
/// The single summary item of before the parts (skipped by the scan; left in place).
const LEGACY_PK: &str = "lamp#not-ok";

/// The part an intersection's entry lives in.
pub fn part_of(id: &IntersectionId) -> u64 {
    traffic_core::hash::fnv1a64(id.as_str().as_bytes()) % SUMMARY_PARTS
}

/// A part's partition key: `lamp-summary#<part>-of-<SUMMARY_PARTS>`.
pub fn part_pk(part: u64) -> String {
    format!("lamp-summary#{part}-of-{SUMMARY_PARTS}")
}

/// A part's key.
fn part_key(part: u64) -> Item {
    key(part_pk(part), "state")
}

/// A lamp item as the scan reads it.
#[derive(Deserialize)]
struct ScannedLamps {
    intersection_id: IntersectionId,
    lights: LampLights,
}

/// What the scan of a table without summaries found.
struct Scanned {
    /// Intersections whose stored lamps are not all ok.
    not_ok: BTreeSet<IntersectionId>,
    /// Intersections in the registry.
    known: BTreeSet<String>,
}

/// The summaries a part holds, by intersection; `None` when it is not summarised yet.
fn decode_part(item: &Item) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
    if !matches!(item.get("summarised"), Some(AttributeValue::Bool(true))) {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    if let Some(AttributeValue::M(lamps)) = item.get("lamps") {
        for (name, v) in lamps {
            let id = IntersectionId::parse_internal(name)
                .map_err(|e| PortError::Corrupt(format!("lamp summaries: {name:?}: {e}")))?;
            let summary = v
                .as_s()
                .ok()
                .and_then(|t| LampSummary::decode(t))
                .ok_or_else(|| PortError::Corrupt(format!("lamp summary of {id}: {v:?}")))?;
            out.insert(id, summary);
        }
    }
    Ok(Some(out))
}

impl DynamoStore {
    /// The summaries of every intersection in `parts`, summarising the table first if a part
    /// is not yet.
    pub(crate) async fn read_summary_parts(
        &self,
        parts: &BTreeSet<u64>,
    ) -> PortResult<BTreeMap<IntersectionId, LampSummary>> {
        for attempt in 0..2 {
            let items = self
                .batch_get(
                    Table::Registry,
                    parts.iter().map(|p| part_key(*p)).collect(),
                    true,
                )
                .await?;
            let mut out = BTreeMap::new();
            let mut complete = items.len() == parts.len();
            for item in &items {
                match decode_part(item)? {
                    Some(m) => out.extend(m),
                    None => complete = false,
                }
            }
            if complete {
                return Ok(out);
            }
            if attempt == 0 {
                self.summarise_table().await?;
            }
        }
        Err(PortError::Corrupt(
            "lamp summaries: a part is still not summarised after the table was".into(),
        ))
    }

    /// Summarises a table without (all) the parts, and repairs entries of deleted
    /// intersections (see the module's notes).
    async fn summarise_table(&self) -> PortResult<()> {
        let scanned = self.scan_lamps_and_intersections().await?;
        let (stale, found): (Vec<_>, Vec<_>) = scanned
            .not_ok
            .into_iter()
            .partition(|id| !scanned.known.contains(id.as_str()));
        for id in &stale {
            tracing::info!(intersection = %id, "lamp states of a deleted intersection removed");
            self.forget_lamps(id).await?;
        }
        let found: Vec<_> = found
            .into_iter()
            .map(|id| (id, Some(LampSummary::Unknown)))
            .collect();
        if found.is_empty() {
            // Nothing to enter (a new table, or no lamp not ok): each part made and marked
            // complete by one write, not two.
            for part in 0..SUMMARY_PARTS {
                self.update_part(
                    part,
                    "SET lamps = if_not_exists(lamps, :empty), summarised = :t",
                    &[
                        (":empty", AttributeValue::M(Default::default())),
                        (":t", AttributeValue::Bool(true)),
                    ],
                    "creating the lamp summaries",
                )
                .await?;
            }
            return Ok(());
        }
        for part in 0..SUMMARY_PARTS {
            self.ensure_summary_map(part).await?;
        }
        self.update_summaries(&found, true).await?;
        for part in 0..SUMMARY_PARTS {
            self.update_part(
                part,
                "SET summarised = :t",
                &[(":t", AttributeValue::Bool(true))],
                "marking the lamp summaries complete",
            )
            .await?;
        }
        Ok(())
    }

    /// Sets the summaries of `set` (`None`: removes the entry, all ok) in their parts' maps,
    /// [`PER_UPDATE`] to an `UpdateItem`; `if_absent` keeps an entry a writer has set already.
    pub(crate) async fn update_summaries(
        &self,
        set: &[(IntersectionId, Option<LampSummary>)],
        if_absent: bool,
    ) -> PortResult<()> {
        let mut by_part: BTreeMap<u64, Vec<(IntersectionId, Option<LampSummary>)>> =
            BTreeMap::new();
        for (id, s) in set {
            by_part
                .entry(part_of(id))
                .or_default()
                .push((id.clone(), s.clone()));
        }
        for (part, entries) in by_part {
            for chunk in entries.chunks(PER_UPDATE) {
                if !self.update_summaries_once(part, chunk, if_absent).await? {
                    // A part with no map yet: make an empty one, then try once more.
                    self.ensure_summary_map(part).await?;
                    if !self.update_summaries_once(part, chunk, if_absent).await? {
                        return Err(PortError::Corrupt(format!(
                            "lamp-summary#{part}: its summaries are not a map"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// One `UpdateItem` of [`Self::update_summaries`]; `false` when the part has no map.
    async fn update_summaries_once(
        &self,
        part: u64,
        chunk: &[(IntersectionId, Option<LampSummary>)],
        if_absent: bool,
    ) -> PortResult<bool> {
        let mut update = self
            .update_item(Table::Registry, part_key(part))?
            .return_values(ReturnValue::AllNew);
        let (mut sets, mut removes) = (Vec::new(), Vec::new());
        for (i, (id, summary)) in chunk.iter().enumerate() {
            update = update.expression_attribute_names(format!("#k{i}"), id.to_string());
            match summary {
                Some(s) => {
                    update = update.expression_attribute_values(
                        format!(":v{i}"),
                        AttributeValue::S(s.encode()),
                    );
                    sets.push(if if_absent {
                        format!("lamps.#k{i} = if_not_exists(lamps.#k{i}, :v{i})")
                    } else {
                        format!("lamps.#k{i} = :v{i}")
                    });
                }
                None => removes.push(format!("lamps.#k{i}")),
            }
        }
        let mut expr = String::new();
        if !sets.is_empty() {
            expr.push_str(&format!("SET {} ", sets.join(", ")));
        }
        if !removes.is_empty() {
            expr.push_str(&format!("REMOVE {}", removes.join(", ")));
        }
        if expr.is_empty() {
            return Ok(true);
        }
        match update.update_expression(expr).send().await {
            Ok(resp) => {
                // Billed on the part after the update (a lower bound for a removal).
                self.metrics.write(
                    &Table::Registry.op("UpdateItem"),
                    write_units(resp.attributes().map_or(0, item_size)),
                );
                Ok(true)
            }
            // The document path `lamps.<id>` needs the map to exist.
            Err(e) if code_of(&e) == Some("ValidationException") => Ok(false),
            Err(e) => Err(port_error("updating the lamp summaries", e)),
        }
    }

    /// Gives a part an empty map of summaries if it has none.
    async fn ensure_summary_map(&self, part: u64) -> PortResult<()> {
        self.update_part(
            part,
            "SET lamps = if_not_exists(lamps, :empty)",
            &[(":empty", AttributeValue::M(Default::default()))],
            "creating the lamp summaries",
        )
        .await
    }

    /// One `UpdateItem` of a part with `expression` and its values, billed on the part
    /// after it.
    async fn update_part(
        &self,
        part: u64,
        expression: &str,
        values: &[(&str, AttributeValue)],
        doing: &str,
    ) -> PortResult<()> {
        let mut req = self
            .update_item(Table::Registry, part_key(part))?
            .update_expression(expression);
        for (name, value) in values {
            req = req.expression_attribute_values(*name, value.clone());
        }
        let resp = req
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| port_error(doing, e))?;
        self.metrics.write(
            &Table::Registry.op("UpdateItem"),
            write_units(resp.attributes().map_or(0, item_size)),
        );
        Ok(())
    }

    /// Removes an intersection's lamp states: its lamp item and its summary entry (a deleted
    /// intersection's, so that no summary keeps it).
    pub(crate) async fn forget_lamps(&self, id: &IntersectionId) -> PortResult<()> {
        let lamps = key(format!("lamp#{id}"), "state");
        self.delete_item(
            Table::Registry,
            lamps,
            format!("deleting the lamp states of {id}"),
        )
        .await?;
        if let Ok(mut cache) = self.lamp_cache.lock() {
            cache.remove(id);
        }
        self.update_summaries(&[(id.clone(), None)], false).await
    }

    /// One consistent scan of the table: the intersections whose stored lamps are not all ok,
    /// and the ids of the registry's intersections.
    async fn scan_lamps_and_intersections(&self) -> PortResult<Scanned> {
        let table = self.table(Table::Registry)?;
        let mut out = Scanned {
            not_ok: BTreeSet::new(),
            known: BTreeSet::new(),
        };
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .ddb
                .scan()
                .table_name(table)
                .consistent_read(true)
                .filter_expression(
                    "(sk = :state AND begins_with(pk, :lamp)) OR pk = :intersections",
                )
                .expression_attribute_values(":state", AttributeValue::S("state".into()))
                .expression_attribute_values(":lamp", AttributeValue::S("lamp#".into()))
                .expression_attribute_values(
                    ":intersections",
                    AttributeValue::S("intersections".into()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error("scanning the lamp states", e))?;
            let mut bytes = 0;
            for item in resp.items() {
                bytes += item_size(item);
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                if pk.map(String::as_str) == Some("intersections") {
                    if let Some(Ok(sk)) = item.get("sk").map(|v| v.as_s()) {
                        out.known.insert(sk.clone());
                    }
                    continue;
                }
                if pk.map(String::as_str) == Some(LEGACY_PK) {
                    continue;
                }
                let l: ScannedLamps = from_item("lamp states", item.clone())?;
                if l.lights.values().any(|s| !s.lamps.all_ok()) {
                    out.not_ok.insert(l.intersection_id);
                }
            }
            // What the filter returned (a lower bound: a scan bills what it read).
            self.metrics
                .read(&Table::Registry.op("Scan"), read_units(bytes, true));
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::LightIndex;
    use traffic_core::reading::{LampColour, LampState, Lamps};

    /// The entries of a city of `n` intersections (`I-000001`...) with each of its 12 lamps
    /// broken with probability 1/20 (a deterministic hash of the lamp decides).
    fn five_percent_broken(n: usize) -> Vec<(IntersectionId, LampSummary)> {
        let mut out = Vec::new();
        for i in 1..=n {
            let id = IntersectionId::parse(&format!("I-{i:06}")).unwrap_or_else(|e| panic!("{e}"));
            let mut lights = Vec::new();
            for l in LightIndex::all() {
                let mut lamps = Lamps::default();
                for (c, colour) in [LampColour::Red, LampColour::Yellow, LampColour::Green]
                    .into_iter()
                    .enumerate()
                {
                    let h = traffic_core::hash::fnv1a64(format!("{i}/{}/{c}", l.get()).as_bytes());
                    if h.is_multiple_of(20) {
                        lamps.set(colour, LampState::Broken);
                    }
                }
                lights.push((l, lamps));
            }
            if let Some(s) = LampSummary::of(lights.iter().map(|(l, s)| (*l, s))) {
                out.push((id, s));
            }
        }
        out
    }

    /// A part's item as the adapter stores it.
    fn part_item(part: u64, entries: &[&(IntersectionId, LampSummary)]) -> Item {
        let mut item = part_key(part);
        item.insert(
            "lamps".into(),
            AttributeValue::M(
                entries
                    .iter()
                    .map(|(id, s)| (id.to_string(), AttributeValue::S(s.encode())))
                    .collect(),
            ),
        );
        item.insert("summarised".into(), AttributeValue::Bool(true));
        item
    }

    #[test]
    fn a_city_of_100000_with_5_percent_of_lamps_broken_keeps_every_part_small() {
        let entries = five_percent_broken(100_000);
        let mut parts: BTreeMap<u64, Vec<&(IntersectionId, LampSummary)>> = BTreeMap::new();
        for e in &entries {
            parts.entry(part_of(&e.0)).or_default().push(e);
        }
        let sizes: Vec<usize> = (0..SUMMARY_PARTS)
            .map(|p| {
                item_size(&part_item(
                    p,
                    parts.get(&p).map_or(&[][..], |v| v.as_slice()),
                ))
            })
            .collect();
        let all: Vec<_> = entries.iter().collect();
        let whole = item_size(&part_item(0, &all));
        let largest = sizes.iter().copied().max().unwrap_or(0);
        println!(
            "{} intersections with a lamp not ok; as one item {whole} bytes; parts {sizes:?}",
            entries.len()
        );
        assert!(whole > 400 * 1024, "one item would pass the limit: {whole}");
        assert!(largest < 200 * 1024, "largest part {largest} bytes");
    }

    #[test]
    fn parts_are_stable_and_cover_every_part() {
        let id = |s: &str| IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(part_of(&id("I-0001")), part_of(&id("I-0001")));
        let seen: BTreeSet<u64> = (0..1000).map(|i| part_of(&id(&format!("I-{i}")))).collect();
        assert_eq!(seen.len() as u64, SUMMARY_PARTS);
    }
}
