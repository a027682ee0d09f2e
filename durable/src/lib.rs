//! durable: placeholder facade.
#![forbid(unsafe_code)]
pub use durable_core::*;
