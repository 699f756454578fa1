//! The tests against the AWS APIs (moto, or the endpoint in `AWS_ENDPOINT_URL`), each
//! ignored without an endpoint; one binary, so that they link once.

mod support;

mod adapters;
mod alarms;
mod api_reads;
mod events;
mod expiry;
mod faults;
mod lambda;
mod measure;
mod pipeline;
mod ports;
mod redrive;
mod routing;
mod stores;
