//! Fault injection between durable and DynamoDB: a loopback HTTP proxy ([`FaultProxy`])
//! that forwards requests to an upstream (moto's DynamoDB) and, request by request, by a
//! seeded schedule ([`FaultSchedule`]), answers with a server error, throttles, resets the
//! connection before forwarding, forwards and then drops the answer, or delays; and the
//! workflow the fault tests run through it ([`workflow`]), with the checks that every
//! execution ends as a fault-free one does.
//!
//! The proxy serves the tests in process (`tests/tests/faults.rs`) and, as the
//! `fault-proxy` binary, processes the tests do not control (the self-hosted functions
//! under `cargo lambda watch`, `scripts/standins/faults.sh`). Its admin routes
//! ([`proxy`]) report what it injected and change its rates while it runs.

pub mod http;
pub mod proxy;
pub mod schedule;
pub mod workflow;

pub use proxy::{FaultProxy, FaultRecord, FaultStats};
pub use schedule::{FaultConfig, FaultMode, FaultRates, FaultSchedule, Injection};
