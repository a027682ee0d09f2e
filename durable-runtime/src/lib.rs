//! Runners for durable (placeholder).
