//! The system on AWS's own APIs (AWS itself, LocalStack or moto): `traffic aws-setup`
//! ([`setup`]), `traffic simulate` ([`simulate`]) and `traffic aws-local` ([`local`]).

pub mod local;
pub mod setup;
pub mod simulate;

pub use local::{AwsLocalOptions, aws_local};
pub use setup::{SetupOptions, aws_setup, env_lines, resources, setup};
pub use simulate::{LampBreak, SimulateOptions, run_simulator, sim_config, simulate};
