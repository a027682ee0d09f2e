//! Runnable examples of durable. Each binary in `src/bin` is one example; run them from
//! the workspace root with `cargo run --bin <name>`.
