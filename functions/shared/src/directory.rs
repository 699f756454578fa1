//! Which intersections and lights exist, cached from the registry.
//!
//! Listing the registry on every batch would cost a query of every intersection per batch, so
//! the list is kept, and checked every `ttl` and early (at most once per `min_reload`) when a
//! reading names an id that is not in it, so an intersection created through the API is
//! accepted within seconds. A check reads the registry's directory generation
//! ([`Registry::directory_generation`], half a read unit on DynamoDB) and lists the
//! intersections again only when it changed, or when the list is `max_age` old (the safety net
//! for a generation that failed to move); a store without a generation is listed at every check.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use traffic_core::city::Intersection;
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

/// How old a list may get whatever the generation says (the safety net for a generation
/// that failed to move).
const MAX_AGE: Duration = Duration::from_secs(3600);

struct Snapshot {
    known: HashMap<IntersectionId, Known>,
    /// The directory generation read just before the list (`None`: the store has none).
    generation: Option<u64>,
    loaded: Instant,
    checked: Instant,
}

/// A cached directory of intersections.
pub struct Directory {
    ttl: Duration,
    min_reload: Duration,
    max_age: Duration,
    snapshot: Mutex<Option<Snapshot>>,
}

impl Directory {
    /// A directory checked every `ttl`, and early at most once per `min_reload`, listed again
    /// when its generation changed or it is an hour old.
    pub fn new(ttl: Duration, min_reload: Duration) -> Self {
        Self {
            ttl,
            min_reload,
            max_age: MAX_AGE,
            snapshot: Mutex::new(None),
        }
    }

    /// The intersections among `ids` that exist (checked if the last check is `ttl` old, or
    /// if an id is missing and it is `min_reload` old; listed again if the generation moved).
    pub async fn lookup(
        &self,
        registry: &dyn Registry,
        ids: impl IntoIterator<Item = &IntersectionId>,
    ) -> PortResult<HashMap<IntersectionId, Known>> {
        let ids: Vec<&IntersectionId> = ids.into_iter().collect();
        let mut guard = self.snapshot.lock().await;
        let due = match guard.as_ref() {
            None => true,
            Some(s) => {
                let since = s.checked.elapsed();
                since >= self.ttl
                    || (since >= self.min_reload && ids.iter().any(|id| !s.known.contains_key(*id)))
            }
        };
        if due {
            let generation = registry.directory_generation().await?;
            match guard.as_mut() {
                Some(s)
                    if generation.is_some()
                        && s.generation == generation
                        && s.loaded.elapsed() < self.max_age =>
                {
                    s.checked = Instant::now();
                }
                _ => {
                    let listed = registry.intersections().await?;
                    *guard = Some(Snapshot::of(listed, generation));
                }
            }
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

impl Snapshot {
    /// The directory of `listed`; `generation` is what was read just before the listing.
    fn of(listed: Vec<Intersection>, generation: Option<u64>) -> Self {
        let known = listed
            .into_iter()
            .map(|x| {
                let lights = x.lights.iter().fold(0u8, |m, l| m | (1 << l.light.get()));
                let position = Position {
                    lat: x.lat,
                    lon: x.lon,
                };
                (x.id, Known { lights, position })
            })
            .collect();
        let now = Instant::now();
        Snapshot {
            known,
            generation,
            loaded: now,
            checked: now,
        }
    }
}

impl Default for Directory {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), Duration::from_secs(5))
    }
}
