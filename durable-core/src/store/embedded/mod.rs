//! The embedded store (work in progress).

/// The embedded crash-safe store.
#[derive(Debug)]
pub struct EmbeddedStore;
