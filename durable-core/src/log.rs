//! The replay-aware logger: `durable::info!(ctx, ...)` and friends.
//!
//! Each macro takes a [`DurableContext`](crate::DurableContext) or a
//! [`StepContext`](crate::StepContext) first and a `tracing` message after it. While the
//! context is replaying recorded history the line is dropped, so every line appears once
//! per execution however many invocations it takes. Lines carry `execution_arn` and
//! `operation_id` fields and go to whatever `tracing` subscriber is installed.

/// Logs at a given `tracing` level unless the context is replaying.
#[macro_export]
macro_rules! log {
    ($level:expr, $ctx:expr, $($arg:tt)+) => {{
        let __durable_ctx = &$ctx;
        if !$crate::__private::LogContext::__is_replaying(__durable_ctx) {
            $crate::__private::tracing::event!(
                target: "durable::user",
                $level,
                execution_arn = $crate::__private::LogContext::__execution_arn(__durable_ctx),
                operation_id = $crate::__private::LogContext::__operation_id(__durable_ctx),
                $($arg)+
            );
        }
    }};
}

/// Logs at `INFO` unless the context is replaying. See [`log!`](crate::log!).
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($crate::__private::tracing::Level::INFO, $ctx, $($arg)+) };
}

/// Logs at `WARN` unless the context is replaying. See [`log!`](crate::log!).
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($crate::__private::tracing::Level::WARN, $ctx, $($arg)+) };
}

/// Logs at `ERROR` unless the context is replaying. See [`log!`](crate::log!).
#[macro_export]
macro_rules! error {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($crate::__private::tracing::Level::ERROR, $ctx, $($arg)+) };
}

/// Logs at `DEBUG` unless the context is replaying. See [`log!`](crate::log!).
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($crate::__private::tracing::Level::DEBUG, $ctx, $($arg)+) };
}

/// Logs at `TRACE` unless the context is replaying. See [`log!`](crate::log!).
#[macro_export]
macro_rules! trace {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($crate::__private::tracing::Level::TRACE, $ctx, $($arg)+) };
}
