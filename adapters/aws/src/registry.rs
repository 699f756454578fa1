//! [`Registry`] on `REGISTRY_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | intersection | `intersections` | `<id>` | `intersection` (M: the city file's object), `version` (S: a fresh token at every write), `last_change` (M: its last timing change's history item) |
//! | retiming | `timings#<id>` | `<from>` (`15m@2026-01-05T08:15:00Z`) | `from`, `phases` (L), `expires_at` |
//! | operator's edit | `timings#<id>` | `<from>#operator@<at>` (`TimingChange::history_key`) | as a retiming's, and `by`, `at`, `operator` (S) |
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

use crate::capacity::{item_size, read_units, write_units};
use crate::error::{code_of, is_server_error, is_transient, port_error};
use crate::items::{Item, Query, SortKey, from_item, key, n_i64, num, put_request, to_av, to_item};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use traffic_core::IntersectionId;
use traffic_core::city::{Intersection, Phase};
use traffic_core::window::WindowKey;
use traffic_ports::{
    ChangedBy, PortError, PortResult, ProposalUpdate, Registry, TIMING_HISTORY as HISTORY,
    TimingChange, TimingUpdate,
};

/// Retimings kept at least this long after their window, ms (then DynamoDB's TTL may delete
/// them; the newest 96 of an intersection retimed at least monthly are always there).
const HISTORY_TTL_MS: i64 = 30 * 86_400_000;
/// Timing updates in flight at once.
pub(crate) const PARALLEL_UPDATES: usize = 16;

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
pub(crate) fn new_version() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{n:x}-{:x}", std::process::id())
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TimingItem {
    pk: String,
    sk: String,
    from: String,
    phases: Vec<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// Left out for a retiming (items from before it existed are retimings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<ChangedBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
}

impl TimingItem {
    pub(crate) fn of(id: &IntersectionId, change: &TimingChange) -> Self {
        let operator = change.by != ChangedBy::Retiming;
        Self {
            pk: format!("timings#{id}"),
            sk: change.history_key(),
            from: change.from.to_string(),
            phases: change.phases.clone(),
            expires_at: Some(history_expiry(&change.from)),
            by: operator.then_some(change.by),
            at: change.at.clone(),
            operator: change.operator.clone(),
        }
    }
}

pub(crate) fn intersection_item(x: &Intersection, version: &str) -> PortResult<Item> {
    intersection_item_with(x, version, None)
}

/// An intersection item whose last change of timings is `last_change`.
pub(crate) fn intersection_item_with(
    x: &Intersection,
    version: &str,
    last_change: Option<TimingItem>,
) -> PortResult<Item> {
    to_item(
        "intersection",
        &IntersectionItem {
            pk: "intersections".into(),
            sk: x.id.as_str().to_owned(),
            intersection: x.clone(),
            version: Some(version.to_owned()),
            last_change,
        },
    )
}

fn decode(item: Item) -> PortResult<Intersection> {
    Ok(decode_versioned(item)?.0)
}

fn decode_versioned(item: Item) -> PortResult<(Intersection, String)> {
    let i: IntersectionItem = from_item("intersection", item)?;
    Ok((i.intersection, i.version.unwrap_or_default()))
}

/// The condition that the stored intersection is at version `expected` (`""`: an item from
/// before versions).
pub(crate) fn version_condition(expected: &str) -> (&'static str, Option<AttributeValue>) {
    if expected.is_empty() {
        (
            "attribute_exists(pk) AND attribute_not_exists(version)",
            None,
        )
    } else {
        (
            "version = :expected",
            Some(AttributeValue::S(expected.to_owned())),
        )
    }
}

/// Partition and sort key of the directory generation item.
const GENERATION_KEY: (&str, &str) = ("directory", "generation");

impl DynamoStore {
    /// Adds 1 to the directory generation, after a write of an intersection item; a failure
    /// is logged, not returned (the write stands; caches reload within the hour anyway).
    pub(crate) async fn bump_directory(&self) {
        let Ok(table) = self.table(Table::Registry) else {
            return;
        };
        let result = self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key(GENERATION_KEY.0, GENERATION_KEY.1)))
            .update_expression("ADD g :one")
            .expression_attribute_values(":one", num(1))
            .send()
            .await;
        match result {
            Ok(_) => self.metrics.write(&Table::Registry.op("UpdateItem"), 1.0),
            Err(e) => tracing::warn!(
                error = %port_error("adding to the directory generation", e),
                "the functions' caches of the intersections see this change at their next full reload"
            ),
        }
    }
}

impl DynamoStore {
    /// Sends `updates` to intersection items, [`PARALLEL_UPDATES`] at a time: each an
    /// `UpdateItem` whose expression refers to the item's map as `#x` and sets `version = :v`
    /// (a fresh version is given here), applied only while the item is at the expected
    /// version, returning `returns` of the item, which `bytes` sizes for billing. Returns the
    /// intersections skipped (changed or gone since they were read, or still failing on a
    /// transient error past the retries: they keep what they have until the next round) and
    /// what each update written returned; `what` names the update in an error (`"retiming"`:
    /// "retiming I-0001").
    pub(crate) async fn update_at_versions(
        &self,
        updates: Vec<(IntersectionId, &str, UpdateItemFluentBuilder)>,
        what: &str,
        returns: ReturnValue,
        bytes: impl Fn(&Item, &IntersectionId) -> usize,
    ) -> PortResult<(Vec<IntersectionId>, Vec<(IntersectionId, Item)>)> {
        let mut skipped = Vec::new();
        let mut written = Vec::with_capacity(updates.len());
        let mut updates = updates.into_iter().peekable();
        while updates.peek().is_some() {
            let mut set = tokio::task::JoinSet::new();
            for (id, expected_version, req) in updates.by_ref().take(PARALLEL_UPDATES) {
                let (condition, expected) = version_condition(expected_version);
                let mut req = req
                    .set_key(Some(key("intersections", id.as_str())))
                    .condition_expression(condition)
                    .expression_attribute_names("#x", "intersection")
                    .expression_attribute_values(":v", AttributeValue::S(new_version()))
                    .return_values(returns.clone());
                if let Some(e) = expected {
                    req = req.expression_attribute_values(":expected", e);
                }
                set.spawn(async move { (id, req.send().await) });
            }
            while let Some(joined) = set.join_next().await {
                let (id, result) = joined.map_err(|e| PortError::backend(what, e))?;
                match result {
                    Ok(resp) => {
                        let item = resp.attributes.unwrap_or_default();
                        self.metrics.write(
                            &Table::Registry.op("UpdateItem"),
                            write_units(bytes(&item, &id)),
                        );
                        written.push((id, item));
                    }
                    // Edited by an operator, or deleted, since it was read: skipped.
                    Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                        self.metrics
                            .write(&Table::Registry.op("UpdateItem"), write_units(0));
                        skipped.push(id);
                    }
                    Err(e) if is_transient(&e) || is_server_error(&e) => {
                        tracing::warn!(intersection = %id, error = %port_error(what, e), "{what} deferred to the next round: it kept failing");
                        skipped.push(id);
                    }
                    Err(e) => return Err(port_error(format!("{what} {id}"), e)),
                }
            }
        }
        Ok((skipped, written))
    }
}

/// When a retiming computed from window `from` may expire, epoch s.
fn history_expiry(from: &WindowKey) -> i64 {
    (from.start_ms + HISTORY_TTL_MS + HISTORY as i64 * from.length.ms()) / 1000
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
        let table = self.table(Table::Registry)?;
        let resp = self
            .ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key(GENERATION_KEY.0, GENERATION_KEY.1)))
            .send()
            .await
            .map_err(|e| port_error("reading the directory generation", e))?;
        self.metrics.read(
            &Table::Registry.op("GetItem"),
            read_units(resp.item().map_or(0, item_size), false),
        );
        Ok(Some(
            resp.item()
                .and_then(|i| n_i64(i, "g"))
                .map_or(0, |g| g.max(0) as u64),
        ))
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
        let table = self.table(Table::Registry)?;
        let item = intersection_item(x, &new_version())?;
        let units = write_units(item_size(&item));
        let result = self
            .ddb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if !matches!(&result, Err(e) if code_of(e) != Some("ConditionalCheckFailedException")) {
            self.metrics.write(&Table::Registry.op("PutItem"), units);
        }
        match result {
            Ok(_) => {
                self.bump_directory().await;
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(PortError::AlreadyExists(format!("intersection {}", x.id)))
            }
            Err(e) => Err(port_error(format!("creating intersection {}", x.id), e)),
        }
    }

    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        let item = intersection_item(x, &new_version())?;
        let bytes = item_size(&item);
        let resp = self
            .ddb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error(format!("storing intersection {}", x.id), e))?;
        let old = resp.attributes.filter(|a| !a.is_empty());
        self.metrics.write(
            &Table::Registry.op("PutItem"),
            write_units(bytes.max(old.as_ref().map_or(0, item_size))),
        );
        self.settle(old.as_ref(), None).await;
        self.bump_directory().await;
        Ok(())
    }

    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        let table = self.table(Table::Registry)?;
        let resp = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key("intersections", id.as_str())))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error(format!("deleting intersection {id}"), e))?;
        self.metrics.write(
            &Table::Registry.op("DeleteItem"),
            write_units(resp.attributes().map_or(0, item_size)),
        );
        let existed = resp.attributes.as_ref().is_some_and(|a| !a.is_empty());
        if existed {
            self.settle(resp.attributes.as_ref(), None).await;
            self.bump_directory().await;
            self.forget_deleted(id).await;
        }
        Ok(existed)
    }

    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, String)>> {
        self.intersection_record(id)
            .await?
            .map(decode_versioned)
            .transpose()
    }

    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &str,
    ) -> PortResult<String> {
        let table = self.table(Table::Registry)?;
        let version = new_version();
        let (condition, value) = version_condition(expected);
        let item = intersection_item(x, &version)?;
        let bytes = item_size(&item);
        let mut req = self
            .ddb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values(ReturnValue::AllOld);
        if let Some(v) = value {
            req = req.expression_attribute_values(":expected", v);
        }
        let result = req.send().await;
        if !matches!(&result, Err(e) if code_of(e) != Some("ConditionalCheckFailedException")) {
            let old = result.as_ref().ok().and_then(|r| r.attributes());
            let bytes = bytes.max(old.map_or(0, item_size));
            self.metrics
                .write(&Table::Registry.op("PutItem"), write_units(bytes));
        }
        match result {
            Ok(resp) => {
                self.settle(resp.attributes.as_ref(), None).await;
                self.bump_directory().await;
                Ok(version)
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(self.version_failure(&x.id, expected).await)
            }
            Err(e) => Err(port_error(format!("replacing intersection {}", x.id), e)),
        }
    }

    async fn delete_intersection_if(&self, id: &IntersectionId, expected: &str) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        let (condition, value) = version_condition(expected);
        let mut req = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key("intersections", id.as_str())))
            .return_values(ReturnValue::AllOld)
            .condition_expression(condition);
        if let Some(v) = value {
            req = req.expression_attribute_values(":expected", v);
        }
        match req.send().await {
            Ok(resp) => {
                self.metrics.write(
                    &Table::Registry.op("DeleteItem"),
                    write_units(resp.attributes().map_or(0, item_size)),
                );
                self.settle(resp.attributes.as_ref(), None).await;
                self.bump_directory().await;
                self.forget_deleted(id).await;
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(self.version_failure(id, expected).await)
            }
            Err(e) => Err(port_error(format!("deleting intersection {id}"), e)),
        }
    }

    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, String)>> {
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
            updates.push((u.id.clone(), u.expected_version.as_str(), req));
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
        expected: &str,
        change: &TimingChange,
    ) -> PortResult<String> {
        self.replace_recording(x, expected, change).await
    }

    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        let item = to_item("timing change", &TimingItem::of(id, change))?;
        self.batch_write(Table::Registry, vec![put_request(item)?])
            .await
    }

    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        let mut q = Query::partition(Table::Registry, format!("timings#{id}"));
        q.newest_first = Some(HISTORY as i32);
        let mut items = self.query(q).await?;
        // The intersection's last change, which a crash or a failure may have kept out of
        // the history so far (`timings.rs`).
        let last = self.intersection_record(id).await?;
        if let Some(last) = last.as_ref().and_then(crate::timings::last_change_of) {
            let sk = |i: &Item| crate::timings::history_sk(i).map(str::to_owned);
            if !items.iter().any(|i| sk(i) == sk(&last)) {
                items.push(last);
                items.sort_by_key(|i| std::cmp::Reverse(sk(i)));
                items.truncate(HISTORY);
            }
        }
        let mut out = items
            .into_iter()
            .map(|i| {
                let t = from_item::<TimingItem>("timing change", i)?;
                let from = t
                    .from
                    .parse()
                    .map_err(|e: traffic_core::window::WindowKeyError| {
                        PortError::Corrupt(format!("timing change: {e}"))
                    })?;
                Ok(TimingChange {
                    from,
                    phases: t.phases,
                    by: t.by.unwrap_or_default(),
                    at: t.at,
                    operator: t.operator,
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }
}

impl DynamoStore {
    /// An intersection's item as stored (its last change of timings included), read
    /// consistently and whole: a projection would bill as much and hide the size billed.
    async fn intersection_record(&self, id: &IntersectionId) -> PortResult<Option<Item>> {
        let table = self.table(Table::Registry)?;
        let resp = self
            .ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key("intersections", id.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(format!("reading intersection {id}"), e))?;
        self.metrics.read(
            &Table::Registry.op("GetItem"),
            read_units(resp.item().map_or(0, item_size), true),
        );
        Ok(resp.item)
    }

    /// After an intersection's deletion: its lamp item and lamp summary entry go too (a
    /// failure is logged; the next summarising of the table removes what is left).
    async fn forget_deleted(&self, id: &IntersectionId) {
        if let Err(e) = self.forget_lamps(id).await {
            tracing::warn!(intersection = %id, error = %e, "lamp states of a deleted intersection not removed");
        }
    }

    /// Why a write conditional on version `expected` of `id` failed: gone, or changed.
    pub(crate) async fn version_failure(&self, id: &IntersectionId, expected: &str) -> PortError {
        match self.intersection_versioned(id).await {
            Ok(None) => PortError::NotFound(format!("intersection {id}")),
            Ok(Some((_, now))) => PortError::Conflict(format!(
                "intersection {id} changed (version {now} now, {expected} expected)"
            )),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retiming_expires_a_month_and_96_windows_after_its_window() {
        let from: WindowKey = "15m@2026-01-05T08:15:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let e = history_expiry(&from);
        let start = traffic_core::time::parse_rfc3339_ms("2026-01-05T08:15:00Z").unwrap_or(0);
        assert_eq!(e, (start + HISTORY_TTL_MS + 96 * 900_000) / 1000);
        // A window that is not one cannot reach the registry: it does not parse.
        assert!("nonsense".parse::<WindowKey>().is_err());
    }
}
