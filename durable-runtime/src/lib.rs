//! Runners for **durable**: the local worker (this crate's [`LocalRunner`]) with its HTTP
//! control plane ([`control_plane`], [`client`]), the AWS Lambda entry point (`lambda`,
//! self-hosted and managed), the replay check's command line ([`replay`]) and the
//! `durable` command-line tool.
//!
//! durable-core knows nothing about processes, threads or Lambda; this crate decides when
//! an execution is invoked and on which task.

#![forbid(unsafe_code)]

#[cfg(feature = "control-plane")]
pub mod client;
#[cfg(feature = "control-plane")]
pub mod control_plane;
pub mod health;
pub mod inspect;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;
pub mod replay;

pub use health::{Health, StoreOutage};
pub use local::{LocalRunner, LocalRunnerBuilder, RunnerError};
