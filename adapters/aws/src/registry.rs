//! [`Registry`] on `REGISTRY_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | intersection | `intersections` | `<id>` | `intersection` (M: the city file's object), `version` (S: a fresh token at every write), `last_change` (M: its last timing change's history item) |
//! | retiming | `timings#<id>` | `<from>` (`15m@2026-01-05T08:15:00Z`) | `from`, `phases` (L), `expires_at` |
//! | operator's edit | `timings#<id>` | `<from>#operator@<at>` (`TimingChange::history_key`) | as a retiming's, and `by`, `at`, `operator` (S) |
//! | operator's edit, by day | `edits#<YYYY-MM-DD of at>` | `<at>#<id>` (`by_day.rs`) | as in the history, and `intersection_id`; put with the history item |
//! | (deleting an intersection also deletes its `lamp#<id>` item and its lamp summary entry: `lamp_summary.rs`) | | | |
//! | directory generation | `directory` | `generation` | `g` (N: added 1 after every write of an intersection item, not a retiming or a proposal) |
//!
//! All intersections are one partition, so listing them is one query (a page per MB); the
//! API's listing ([`Registry::intersections_page`]) is one eventually consistent query of at
//! most a page (`limit` + 1 items, or 1 MB: at most 128 read units). New timings never lose
//! their history entry, without a transaction: the intersection's conditional write carries
//! the change as `last_change`, the history item is put after, and each later write of the
//! item puts the change it replaces again (`timings.rs`); an operator's edit of the timings is
//! the same. Webster's proposals for manual intersections are a conditional `UpdateItem`
//! of the proposal only.
//!
//! The directory generation lets `ingest` and `fault` keep their list of intersections and
//! lights until it changes: one eventually consistent `GetItem` (0.5 read units) a minute per
//! function instance instead of a query of every intersection (about 119 read units at 1,000
//! intersections). It is added to after the intersection's write, so a cache never sees the
//! new number with the old item; if that addition fails, the write stands, a warning is
//! logged, and the caches see the change at their next full reload (at most an hour).
//!
//! This file holds the intersection item, its encoding and the [`Registry`] port; the port
//! calls the submodules, one concern each: `writes.rs` (whole items written, created,
//! replaced at a version or deleted), `updates.rs` (many items updated at once, each at the
//! version it was read at), `timings.rs` (a change of timings and its history entry),
//! `history.rs` (the history items and their reading) and `directory.rs` (the generation).

mod directory;
mod history;
mod timings;
mod updates;
mod writes;

use crate::capacity::item_size;
use crate::items::{Item, Query, SortKey, from_item, key, to_av, to_item};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use history::TimingItem;
use serde::{Deserialize, Serialize};
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_ports::Version;
use traffic_ports::{PortError, PortResult, ProposalUpdate, Registry, TimingChange, TimingUpdate};

#[derive(Serialize, Deserialize)]
struct IntersectionItem {
    pk: String,
    sk: String,
    intersection: Intersection,
    /// Changes at every write (see [`Registry::intersection_versioned`]); items written before
    /// versions existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// The last change of its timings, until the next write puts it into the history
    /// (`timings.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_change: Option<TimingItem>,
}

/// A version token no other write has: the clock in nanoseconds and a per-process counter.
pub(crate) fn new_version() -> Version {
    let (nanos, n) = crate::items::clock_and_count();
    Version::new(format!("{nanos:x}-{n:x}-{:x}", std::process::id()))
}

pub(crate) fn intersection_item(x: &Intersection, version: &Version) -> PortResult<Item> {
    intersection_item_with(x, version, None)
}

/// An intersection item whose last change of timings is `last_change`.
pub(crate) fn intersection_item_with(
    x: &Intersection,
    version: &Version,
    last_change: Option<TimingItem>,
) -> PortResult<Item> {
    to_item(
        "intersection",
        &IntersectionItem {
            pk: "intersections".into(),
            sk: x.id.as_str().to_owned(),
            intersection: x.clone(),
            version: Some(version.as_str().to_owned()),
            last_change,
        },
    )
}

fn decode(item: Item) -> PortResult<Intersection> {
    Ok(decode_versioned(item)?.0)
}

fn decode_versioned(item: Item) -> PortResult<(Intersection, Version)> {
    let i: IntersectionItem = from_item("intersection", item)?;
    Ok((i.intersection, Version::new(i.version.unwrap_or_default())))
}

/// The condition that the stored intersection is at version `expected` (`""`: an item from
/// before versions).
pub(crate) fn version_condition(expected: &Version) -> (&'static str, Option<AttributeValue>) {
    if expected.as_str().is_empty() {
        (
            "attribute_exists(pk) AND attribute_not_exists(version)",
            None,
        )
    } else {
        (
            "version = :expected",
            Some(AttributeValue::S(expected.as_str().to_owned())),
        )
    }
}

#[async_trait]
impl Registry for DynamoStore {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        self.query(Query::partition(Table::Registry, "intersections"))
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    async fn directory_generation(&self) -> PortResult<Option<u64>> {
        self.read_generation().await
    }

    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)> {
        // The public listing: one eventually consistent query (half the units of a strongly
        // consistent one), of `limit` and one more to learn whether more follow, and at most
        // DynamoDB's 1 MB page, whatever the items' size.
        let mut q = Query::partition(Table::Registry, "intersections").eventually();
        if let Some(a) = after {
            q = q.sk(SortKey::After(a.as_str().to_owned()));
        }
        let (items, more) = self
            .query_page(&q, None, Some(limit.saturating_add(1)))
            .await?;
        let read = items
            .into_iter()
            .map(decode)
            .collect::<PortResult<Vec<_>>>()?;
        if read.len() <= limit && more.is_some() {
            // The 1 MB page filled before `limit`: continue after its last intersection.
            let next = read.last().map(|x| x.id.clone());
            return Ok((read, next));
        }
        Ok(traffic_ports::intersections_page_of(read, limit))
    }

    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>> {
        Ok(self.intersection_versioned(id).await?.map(|(x, _)| x))
    }

    async fn create_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.create_item(x).await
    }

    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.put_item_of(x).await
    }

    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        self.delete_item_of(id).await
    }

    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, Version)>> {
        self.intersection_record(id)
            .await?
            .map(decode_versioned)
            .transpose()
    }

    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &Version,
    ) -> PortResult<Version> {
        self.replace_item_if(x, expected).await
    }

    async fn delete_intersection_if(
        &self,
        id: &IntersectionId,
        expected: &Version,
    ) -> PortResult<()> {
        self.delete_item_if(id, expected).await
    }

    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, Version)>> {
        self.query(Query::partition(Table::Registry, "intersections"))
            .await?
            .into_iter()
            .map(decode_versioned)
            .collect()
    }

    async fn set_timings(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        self.set_timings_recorded(timings, from).await
    }

    async fn set_proposals(&self, proposals: &[ProposalUpdate]) -> PortResult<Vec<IntersectionId>> {
        let table = self.table(Table::Registry)?;
        let mut updates = Vec::with_capacity(proposals.len());
        for u in proposals {
            let req = self
                .ddb
                .update_item()
                .table_name(table)
                .update_expression("SET #x.#q = :q, version = :v")
                .expression_attribute_names("#q", "proposal")
                .expression_attribute_values(":q", to_av("proposal", &u.proposal)?);
            updates.push((u.id.clone(), &u.expected_version, req));
        }
        // Not a change of the directory: no light or id moved, so the generation stays.
        let (skipped, _) = self
            .update_at_versions(
                updates,
                "recording the proposal of",
                ReturnValue::AllNew,
                |new, _| item_size(new),
            )
            .await?;
        Ok(skipped)
    }

    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &Version,
        change: &TimingChange,
    ) -> PortResult<Version> {
        self.replace_recording(x, expected, change).await
    }

    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        self.put_timing_change(id, change).await
    }

    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        self.read_timing_history(id).await
    }

    async fn operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(IntersectionId, TimingChange)>> {
        self.read_operator_edits(from_ms, to_ms).await
    }
}

impl DynamoStore {
    /// An intersection's item as stored (its last change of timings included), read
    /// consistently and whole: a projection would bill as much and hide the size billed.
    async fn intersection_record(&self, id: &IntersectionId) -> PortResult<Option<Item>> {
        self.get_item(
            Table::Registry,
            key("intersections", id.as_str()),
            true,
            format!("reading intersection {id}"),
        )
        .await
    }

    /// Why a write conditional on version `expected` of `id` failed: gone, or changed.
    pub(crate) async fn version_failure(
        &self,
        id: &IntersectionId,
        expected: &Version,
    ) -> PortError {
        match self.intersection_versioned(id).await {
            Ok(None) => PortError::NotFound(format!("intersection {id}")),
            Ok(Some((_, now))) => PortError::Conflict(format!(
                "intersection {id} changed (version {now} now, {expected} expected)"
            )),
            Err(e) => e,
        }
    }
}
