//! The system on AWS's own APIs (AWS itself, LocalStack or moto): `traffic aws-setup`
//! ([`setup`]), `traffic simulate` ([`simulate`]), `traffic aws-local` ([`local`]),
//! `traffic aws-measure` ([`measure`]) and `traffic redrive` ([`redrive`]).

pub mod local;
pub mod measure;
pub mod redrive;
pub mod setup;
pub mod simulate;

pub use local::{AwsLocalOptions, aws_local};
pub use measure::{MeasureOptions, Measurement, aws_measure};
pub use redrive::{
    Consumer, RedriveContext, RedriveOptions, RedriveReport, redrive, redrive_message,
    redrive_queue,
};
pub use setup::{SetupOptions, aws_setup, env_lines, resources, setup};
pub use simulate::{LampBreak, SimulateOptions, run_simulator, sim_config, simulate};
