//! The traffic application: everything that drives the functions, apart from the command
//! line (`src/`) that parses arguments and calls in here.
//!
//! - [`esm`]: the one event source mapping (per-batch delivery rules, shard order, the drain
//!   and follow consumer loops), over any [`RecordSource`](traffic_ports::RecordSource);
//! - [`functions`]: `ingest`, `fault` and `merge` built from the ports in one place;
//! - [`runner`]: the mappings following a stream and the merge on a timer;
//! - [`driver`]: the one closed-loop simulator driver, into the embedded log or Kinesis;
//! - [`stop`]: the one way to stop what runs until told;
//! - [`stream`]: Kinesis' partitioning, and a stream held in memory;
//! - [`replay`]: `traffic replay` and its output;
//! - [`local`]: `traffic local`, the whole system in one process;
//! - [`sumo`]: `traffic sumo`, the functions driven tick by tick by the SUMO bridge;
//! - [`aws`]: `traffic aws-setup`, `traffic simulate` and `traffic aws-local`.

pub mod aws;
pub mod driver;
pub mod esm;
pub mod functions;
pub mod local;
pub mod query;
pub mod replay;
pub mod runner;
pub mod stop;
pub mod stream;
pub mod sumo;

pub use functions::Functions;
pub use stop::{Stop, Stopper};
