//! Domain core of the traffic monitoring system.
//!
//! Everything here is pure: no I/O, no async runtime, no AWS types, and no clock (time always
//! comes in as a parameter). The stream functions, the local runner and the tests all drive the
//! same code:
//!
//! - [`reading`]: the sensor reading contract and its validation;
//! - [`city`]: the city file contract (intersections, lights, phases, timings);
//! - [`window`]: event-time tumbling windows and the watermark;
//! - [`ranking`]: query 1, vehicle-weighted mean speed and the mergeable top-k;
//! - [`digest`]: t-digest medians of vehicle counts (query 2);
//! - [`lineage`]: which shards hold the global watermark (lineage, shards without state, idle ones);
//! - [`frontier`]: estimated arrival times for readings that carry none (replay);
//! - [`hash`]: a stable hash (FNV-1a) for buckets and versions;
//! - [`routing`]: which shard's hash key range a partition key belongs to (Kinesis' MD5 routing);
//! - [`pane`]: the per-shard state that `ingest` keeps, and the fold of a batch into deltas;
//! - [`delta`]: the readings one commit adds to one pane, compactly encoded;
//! - [`rollup`]: every intersection's totals over a window, and the compaction of a pane;
//! - [`merge_run`]: the merge's computation for one run (compaction, rollups up the lengths);
//! - [`query`]: the results of a window and the network state;
//! - [`events`]: the events the merge publishes (a window closed, timings changed);
//! - [`webster`]: Webster's (1958) signal timing;
//! - [`control`]: control modes (adaptive, fixed, manual) and what a retiming does under each;
//! - [`safe_timing`]: an intersection's limits (minimum greens, maximum cycle and change) on a retiming;
//! - [`plan`]: plans for actuated controllers (minimum, fixed-time and maximum greens) from the timings;
//! - [`coordination`]: neighbouring intersections' plans on one cycle, with offsets along the busiest direction;
//! - [`lamps`]: lamp state transitions and alarms;
//! - [`alarm_id`]: an alarm's identity ([`AlarmId`]) and its written form;
//! - [`alarm`]: how raised alarms are handled (their retention once closed);
//! - [`silence`]: detector health, which lights fell silent (sensor-silent alarms);
//! - [`config`]: the engine's parameters and their parsing;
//! - [`stored`]: stored state in the shapes earlier versions wrote.

/// Writes `add` for a struct of counts, field by field; with `records`, also the sum of every
/// count (each record counted once).
macro_rules! counts {
    ($t:ident { $($f:ident),* }) => {
        impl $t {
            /// Adds other counts.
            pub fn add(&mut self, o: &$t) {
                $(self.$f += o.$f;)*
            }
        }
    };
    ($t:ident { $($f:ident),* }, records) => {
        counts!($t { $($f),* });

        impl $t {
            #[doc = concat!("Every record counted once: ", stringify!($($f)+*), ".")]
            pub fn records(&self) -> u64 {
                [$(self.$f),*].iter().sum()
            }
        }
    };
}

pub mod alarm;
pub mod alarm_id;
pub mod changes;
pub mod city;
pub mod config;
pub mod control;
pub mod coordination;
pub mod delta;
pub mod demand;
pub mod digest;
pub mod events;
pub mod frontier;
pub mod hash;
pub mod ids;
pub mod lamp_batch;
pub mod lamps;
pub mod latency;
pub mod lineage;
pub mod mean;
pub mod merge_run;
pub mod outputs;
pub mod pane;
pub mod plan;
pub mod query;
pub mod ranking;
pub mod reading;
pub mod redrive;
pub mod rollup;
pub mod routing;
pub mod safe_timing;
pub mod sequence;
pub mod shard;
pub mod signal;
pub mod silence;
pub mod stored;
pub mod time;
pub mod webster;
pub mod window;

#[cfg(test)]
mod testing;

pub use alarm_id::{AlarmId, AlarmIdError, AlarmSubject};
pub use city::{City, Intersection, Light, Phase};
pub use config::EngineConfig;
pub use ids::{IntersectionId, LightIndex};
pub use reading::{LampColour, LampState, Lamps, Reading, ReadingError};
pub use sequence::SequenceNumber;
pub use shard::ShardId;
pub use window::{WindowKey, WindowLength};
