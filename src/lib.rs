//! The `traffic` tool as a library, so that its pieces are tested and benchmarked directly:
//!
//! - [`stream`]: the in-process sharded stream (Kinesis' partitioning and event shape);
//! - [`engine`]: the functions driven as an event source mapping drives them;
//! - [`replay`]: `traffic replay`;
//! - [`local`]: `traffic local`, the whole system in one process;
//! - [`aws_run`]: the system on AWS's APIs (`traffic aws-setup`, `simulate`, `aws-local`);
//! - [`sumo`]: `traffic sumo`, the system driven tick by tick by the SUMO bridge.

pub mod aws_run;
pub mod engine;
pub mod local;
pub mod replay;
pub mod stream;
pub mod sumo;
