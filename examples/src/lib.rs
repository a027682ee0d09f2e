//! Examples of durable (placeholder).
