//! Which intersections and lights exist, cached from the registry.
//!
//! Listing the registry on every batch would cost a scan per batch, so the list is kept for
//! `ttl` and reloaded early (at most once per `min_reload`) when a reading names an id that is
//! not in it, so an intersection created through the API is accepted within seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use traffic_core::reading::Position;
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{PortResult, Registry};

/// What the functions need to know of one intersection.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    /// Bit `l` set when light `l` exists.
    pub lights: u8,
    /// Where it is.
    pub position: Position,
}

impl Known {
    /// Whether light `l` exists.
    pub fn has(&self, l: LightIndex) -> bool {
        self.lights & (1 << l.get()) != 0
    }
}

struct Snapshot {
    known: HashMap<IntersectionId, Known>,
    loaded: Instant,
}

/// A cached directory of intersections.
pub struct Directory {
    ttl: Duration,
    min_reload: Duration,
    snapshot: Mutex<Option<Snapshot>>,
}

impl Directory {
    /// A directory that reloads every `ttl`, and early at most once per `min_reload`.
    pub fn new(ttl: Duration, min_reload: Duration) -> Self {
        Self {
            ttl,
            min_reload,
            snapshot: Mutex::new(None),
        }
    }

    /// The intersections among `ids` that exist (reloading if the cache is old, or if an id is
    /// missing and the cache is older than `min_reload`).
    pub async fn lookup(
        &self,
        registry: &dyn Registry,
        ids: impl IntoIterator<Item = &IntersectionId>,
    ) -> PortResult<HashMap<IntersectionId, Known>> {
        let ids: Vec<&IntersectionId> = ids.into_iter().collect();
        let mut guard = self.snapshot.lock().await;
        let stale = match guard.as_ref() {
            None => true,
            Some(s) => {
                let age = s.loaded.elapsed();
                age >= self.ttl
                    || (age >= self.min_reload && ids.iter().any(|id| !s.known.contains_key(*id)))
            }
        };
        if stale {
            let known = registry
                .intersections()
                .await?
                .into_iter()
                .map(|x| {
                    let lights = x.lights.iter().fold(0u8, |m, l| m | (1 << l.light.get()));
                    (
                        x.id,
                        Known {
                            lights,
                            position: Position {
                                lat: x.lat,
                                lon: x.lon,
                            },
                        },
                    )
                })
                .collect();
            *guard = Some(Snapshot {
                known,
                loaded: Instant::now(),
            });
        }
        let snap = guard.as_ref().map(|s| &s.known);
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                snap.and_then(|k| k.get(id))
                    .map(|k| (id.clone(), k.clone()))
            })
            .collect())
    }
}

impl Default for Directory {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), Duration::from_secs(5))
    }
}
