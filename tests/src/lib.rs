//! Integration tests of durable (placeholder).
