//! [`Registry`] on the `intersections` (JSON) and `timing_history` tables. A change of an
//! intersection's timings and its history entry are written in one write transaction.

use crate::codec::{from_json, to_json};
use crate::{EmbeddedStore, INTERSECTIONS, LAMPS, TIMINGS};
use async_trait::async_trait;
use redb::ReadableTable;
use std::ops::Bound;
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_ports::{
    PortError, PortResult, ProposalUpdate, Registry, TIMING_HISTORY, TimingChange, TimingUpdate,
    Version,
};

/// An intersection's version: the FNV-1a hash of its stored JSON, so any change to it (an
/// edit, a retiming) changes the version.
fn version_of(stored: &[u8]) -> Version {
    Version::new(format!("{:016x}", traffic_core::hash::fnv1a64(stored)))
}

/// Within a write transaction: changes the stored intersection `id` by `change` if it is at
/// version `expected`; `false` (and nothing written) if it changed or is gone.
fn update_at_version(
    t: &mut redb::Table<'_, &str, &[u8]>,
    id: &IntersectionId,
    expected: &Version,
    ctx: &str,
    change: impl FnOnce(&mut Intersection),
) -> PortResult<bool> {
    let mut x: Intersection = match r!(t.get(id.as_str()), ctx)? {
        Some(v) if version_of(v.value()) == *expected => from_json(v.value(), "intersection")?,
        _ => return Ok(false),
    };
    change(&mut x);
    r!(t.insert(id.as_str(), to_json(&x)?.as_slice()), ctx)?;
    Ok(true)
}

/// Within a write transaction: the stored intersection `id` exists at version `expected`.
fn check_version(
    t: &redb::Table<'_, &str, &[u8]>,
    id: &IntersectionId,
    expected: &Version,
    ctx: &str,
) -> PortResult<()> {
    match r!(t.get(id.as_str()), ctx)? {
        None => Err(PortError::NotFound(format!("intersection {id}"))),
        Some(v) if version_of(v.value()) != *expected => Err(PortError::Conflict(format!(
            "intersection {id} changed (version {} now, {expected} expected)",
            version_of(v.value())
        ))),
        Some(_) => Ok(()),
    }
}

/// Within a write transaction: stores `change` in `id`'s history under its key and drops the
/// oldest entries beyond [`TIMING_HISTORY`] (keys sort by time within a window length).
fn append_history(
    h: &mut redb::Table<'_, (&str, &str), &[u8]>,
    id: &IntersectionId,
    change: &TimingChange,
    ctx: &str,
) -> PortResult<()> {
    let key = change.history_key();
    r!(
        h.insert((id.as_str(), key.as_str()), to_json(change)?.as_slice()),
        ctx
    )?;
    let keys: Vec<String> = r!(
        h.range((id.as_str(), "")..=(id.as_str(), "\u{10ffff}")),
        ctx
    )?
    .filter_map(Result::ok)
    .map(|(k, _)| k.value().1.to_owned())
    .collect();
    for old in keys.iter().take(keys.len().saturating_sub(TIMING_HISTORY)) {
        r!(h.remove((id.as_str(), old.as_str())), ctx)?;
    }
    Ok(())
}

/// Within a write transaction: removes a deleted intersection's lamp states, as the DynamoDB
/// store removes its lamp item and summary entry.
fn forget_lamps(txn: &redb::WriteTransaction, id: &IntersectionId, ctx: &str) -> PortResult<()> {
    let mut l = r!(txn.open_table(LAMPS), ctx)?;
    for light in traffic_core::LightIndex::all() {
        r!(l.remove((id.as_str(), light.get() as u8)), ctx)?;
    }
    Ok(())
}

#[async_trait]
impl Registry for EmbeddedStore {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        self.list_intersections(|json| from_json(json, "intersection"))
    }

    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)> {
        let ctx = "listing intersections";
        let t = self.read_table(INTERSECTIONS, ctx)?;
        let from = after.map(|a| a.as_str());
        let range = match from {
            Some(a) => r!(t.range::<&str>((Bound::Excluded(a), Bound::Unbounded)), ctx)?,
            None => r!(t.range::<&str>(..), ctx)?,
        };
        let mut out: Vec<Intersection> = Vec::new();
        for e in range.take(limit.saturating_add(1)) {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "intersection")?);
        }
        Ok(traffic_ports::intersections_page_of(out, limit))
    }

    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>> {
        Ok(self.intersection_versioned(id).await?.map(|(x, _)| x))
    }

    async fn create_intersection(&self, x: &Intersection) -> PortResult<()> {
        let ctx = "creating an intersection";
        self.write_table(INTERSECTIONS, ctx, |t| {
            if r!(t.get(x.id.as_str()), ctx)?.is_some() {
                return Err(PortError::AlreadyExists(format!("intersection {}", x.id)));
            }
            r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
            Ok(())
        })
    }

    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        let ctx = "storing an intersection";
        self.write_table(INTERSECTIONS, ctx, |t| {
            r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
            Ok(())
        })
    }

    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        let ctx = "deleting an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        let existed = {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            r!(t.remove(id.as_str()), ctx)?.is_some()
        };
        forget_lamps(&txn, id, ctx)?;
        r!(txn.commit(), ctx)?;
        Ok(existed)
    }

    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, Version)>> {
        let ctx = "reading an intersection";
        let t = self.read_table(INTERSECTIONS, ctx)?;
        match r!(t.get(id.as_str()), ctx)? {
            Some(v) => Ok(Some((
                from_json(v.value(), "intersection")?,
                version_of(v.value()),
            ))),
            None => Ok(None),
        }
    }

    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &Version,
    ) -> PortResult<Version> {
        self.replace_at_version(x, expected, None, "replacing an intersection")
    }

    async fn delete_intersection_if(
        &self,
        id: &IntersectionId,
        expected: &Version,
    ) -> PortResult<()> {
        let ctx = "deleting an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            check_version(&t, id, expected, ctx)?;
            r!(t.remove(id.as_str()), ctx)?;
        }
        forget_lamps(&txn, id, ctx)?;
        r!(txn.commit(), ctx)
    }

    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, Version)>> {
        self.list_intersections(|json| Ok((from_json(json, "intersection")?, version_of(json))))
    }

    async fn set_timings(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        let ctx = "storing timings";
        let from_text = from.to_string();
        let mut skipped = Vec::new();
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            let mut h = r!(txn.open_table(TIMINGS), ctx)?;
            for u in timings {
                let updated = update_at_version(&mut t, &u.id, &u.expected_version, ctx, |x| {
                    x.phases = u.phases.clone();
                    x.plan = u.plan.clone();
                    x.retimed_from = Some(from_text.clone());
                })?;
                if !updated {
                    skipped.push(u.id.clone());
                    continue;
                }
                let change = TimingChange::retiming(*from, u.phases.clone());
                append_history(&mut h, &u.id, &change, ctx)?;
            }
        }
        r!(txn.commit(), ctx)?;
        Ok(skipped)
    }

    async fn set_proposals(&self, proposals: &[ProposalUpdate]) -> PortResult<Vec<IntersectionId>> {
        let ctx = "storing proposals";
        let mut skipped = Vec::new();
        self.write_table(INTERSECTIONS, ctx, |t| {
            for u in proposals {
                let updated = update_at_version(&mut *t, &u.id, &u.expected_version, ctx, |x| {
                    x.proposal = Some(u.proposal.clone());
                })?;
                if !updated {
                    skipped.push(u.id.clone());
                }
            }
            Ok(())
        })?;
        Ok(skipped)
    }

    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &Version,
        change: &TimingChange,
    ) -> PortResult<Version> {
        self.replace_at_version(
            x,
            expected,
            Some(change),
            "replacing an intersection and recording its timing change",
        )
    }

    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        let ctx = "recording a timing change";
        self.write_table(TIMINGS, ctx, |h| {
            append_history(&mut *h, id, change, ctx)?;
            Ok(())
        })
    }

    /// Reads the operators' entries of every intersection's history (found by their keys).
    async fn operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(IntersectionId, TimingChange)>> {
        let ctx = "reading operators' edits";
        let t = self.read_table(TIMINGS, ctx)?;
        let mut edits = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, v) = r!(e, ctx)?;
            let (id, key) = k.value();
            if !key.contains("#operator@") {
                continue;
            }
            let id = IntersectionId::parse_internal(id)
                .map_err(|e| PortError::Corrupt(format!("timing history of {id:?}: {e}")))?;
            edits.push((id, from_json(v.value(), "timing change")?));
        }
        Ok(traffic_ports::operator_edits_of(edits, from_ms, to_ms))
    }

    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        let ctx = "reading timing history";
        let t = self.read_table(TIMINGS, ctx)?;
        let mut out = Vec::new();
        for e in r!(
            t.range((id.as_str(), "")..=(id.as_str(), "\u{10ffff}")),
            ctx
        )? {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "timing change")?);
        }
        Ok(out)
    }
}

impl EmbeddedStore {
    /// Every stored intersection, as `item` makes it of its stored JSON.
    fn list_intersections<T>(&self, item: impl Fn(&[u8]) -> PortResult<T>) -> PortResult<Vec<T>> {
        self.read_all(INTERSECTIONS, "listing intersections", item)
    }

    /// Replaces `x` if its stored version is `expected`, appending `change` (when given) to its
    /// timing history in the same transaction; returns the new version.
    fn replace_at_version(
        &self,
        x: &Intersection,
        expected: &Version,
        change: Option<&TimingChange>,
        ctx: &str,
    ) -> PortResult<Version> {
        let json = to_json(x)?;
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            check_version(&t, &x.id, expected, ctx)?;
            r!(t.insert(x.id.as_str(), json.as_slice()), ctx)?;
            if let Some(change) = change {
                let mut h = r!(txn.open_table(TIMINGS), ctx)?;
                append_history(&mut h, &x.id, change, ctx)?;
            }
        }
        r!(txn.commit(), ctx)?;
        Ok(version_of(&json))
    }

    /// Creates or replaces many intersections in one transaction (loading a city).
    pub fn put_intersections(&self, xs: &[Intersection]) -> PortResult<()> {
        let ctx = "storing intersections";
        self.write_table(INTERSECTIONS, ctx, |t| {
            for x in xs {
                r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::lamps::LightLamps;
    use traffic_core::reading::{LampState, Lamps};
    use traffic_core::{City, LightIndex};
    use traffic_ports::LampStore;

    #[tokio::test]
    async fn deleting_an_intersection_forgets_its_lamp_states() -> anyhow::Result<()> {
        let (_dir, s) = crate::temp_store()?;
        let city = City::parse(
            r#"{"intersections":[{"id":"I-1","lat":1,"lon":1,
            "lights":[{"light":0,"saturation_veh_h":1800}],
            "phases":[{"lights":[0],"green_s":30,"red_s":30}]}]}"#,
        )?;
        let x = &city.intersections[0];
        let light = (x.id.clone(), LightIndex::FIRST);
        let broken = LightLamps {
            lamps: Lamps {
                green: LampState::Broken,
                ..Lamps::default()
            },
            as_of_ms: Some(1),
        };
        for by_version in [false, true] {
            s.create_intersection(x).await?;
            s.put_lamp_states(&[(light.clone(), broken)]).await?;
            if by_version {
                let (_, v) = s
                    .intersection_versioned(&x.id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("gone"))?;
                s.delete_intersection_if(&x.id, &v).await?;
            } else {
                assert!(s.delete_intersection(&x.id).await?);
            }
            let states = s.lamp_states(std::slice::from_ref(&light)).await?;
            assert_eq!(
                states.get(&light),
                Some(&LightLamps::default()),
                "{by_version}"
            );
        }
        Ok(())
    }
}
