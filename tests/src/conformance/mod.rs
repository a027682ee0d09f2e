//! The AWS conformance harness: runs the requirements of AWS's durable-execution
//! conformance suite (`aws-durable-execution-conformance-tests==1.0.0`) against durable's
//! engine and checks them with AWS's own matching rules.
//!
//! AWS's runner deploys handlers to an AWS account and reads the results back through the
//! Lambda API. This harness keeps the requirements and the rules and replaces the rest: a
//! Rust handler per requirement ([`handlers`]), the in-memory checkpoint service with a
//! manual clock in place of Lambda ([`driver`]: time skips, durations stay in the history),
//! callback actions in virtual time ([`callbacks`]), CloudWatch replaced by a capture of the
//! durable logger ([`logs`]), and process crashes simulated ([`crash`]).
//!
//! - [`requirement`] reads the YAML files; [`pyvalue`] gives values Python's semantics, so
//!   comparisons decide as the Python validator does; [`placeholders`] holds `${NAME}`
//!   bindings; [`matcher`] matches histories.
//! - [`harness`] runs one requirement or all of them and writes
//!   `target/conformance/<ID>.json`; [`report`] compares the outcomes with
//!   `tests/conformance/known-failures.txt` and renders `docs/CONFORMANCE.md`.
//!
//! `./scripts/test` fetches the pinned wheel (`scripts/fetch-conformance`) and runs the
//! whole suite as the `conformance` integration test.

pub mod callbacks;
pub mod crash;
pub mod driver;
pub mod handlers;
pub mod harness;
pub mod logs;
pub mod matcher;
pub mod placeholders;
pub mod pyvalue;
pub mod report;
pub mod requirement;
