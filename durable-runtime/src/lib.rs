//! Runners for **durable**: the local worker (this crate's [`LocalRunner`]) with its HTTP
//! control plane ([`control_plane`], [`client`]) and the `durable` command-line tool, and
//! later AWS Lambda (self-hosted and managed).
//!
//! durable-core knows nothing about processes, threads or Lambda; this crate decides when
//! an execution is invoked and on which task.

#![forbid(unsafe_code)]

#[cfg(feature = "control-plane")]
pub mod client;
#[cfg(feature = "control-plane")]
pub mod control_plane;
pub mod inspect;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;

pub use local::{LocalRunner, LocalRunnerBuilder, RunnerError};
