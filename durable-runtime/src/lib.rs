//! Runners for **durable**: the local worker (this crate's [`LocalRunner`]), and later AWS
//! Lambda (self-hosted and managed) and the command-line tool.
//!
//! durable-core knows nothing about processes, threads or Lambda; this crate decides when
//! an execution is invoked and on which task.

#![forbid(unsafe_code)]

pub mod local;

pub use local::{LocalRunner, LocalRunnerBuilder, RunnerError};
