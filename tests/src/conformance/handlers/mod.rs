//! The handlers, one per requirement, written from each requirement's `handler` and
//! `invocations` prose with durable's public API, and registered by requirement id.
//!
//! Names, sub-types and the order of operations follow the prose, because the history is
//! matched event by event. Where a handler needs state that survives invocations (AWS's use
//! a database to count attempts), it uses what the execution already knows: the step's
//! attempt number, or how often the process has crashed ([`super::crash`]).

mod callback;
mod child;
mod invoke;
mod map;
mod parallel;
mod plugin;
mod step;
mod wait;
mod wait_for_callback;
mod wait_for_condition;

use durable::{DurableContext, Handler};

/// Requirement id to handler.
pub struct Registry {
    handlers: Vec<(&'static str, Box<dyn Handler>)>,
    targets: Vec<(&'static str, Box<dyn Handler>)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// Every handler written so far.
    pub fn new() -> Self {
        let mut r = Registry { handlers: Vec::new(), targets: Vec::new() };
        step::register(&mut r);
        wait::register(&mut r);
        child::register(&mut r);
        callback::register(&mut r);
        invoke::register(&mut r);
        wait_for_condition::register(&mut r);
        wait_for_callback::register(&mut r);
        parallel::register(&mut r);
        map::register(&mut r);
        plugin::register(&mut r);
        r
    }

    /// Registers the handler of requirement `id`.
    ///
    /// # Panics
    ///
    /// If `id` has a handler already.
    pub fn add(&mut self, id: &'static str, handler: impl Handler) {
        assert!(self.get(id).is_none(), "requirement {id} has two handlers");
        self.handlers.push((id, Box::new(handler)));
    }

    /// The handler of requirement `id`.
    pub fn get(&self, id: &str) -> Option<&dyn Handler> {
        self.handlers.iter().find(|(i, _)| *i == id).map(|(_, h)| &**h)
    }

    /// Registers a function that chained invokes can call by `name` (the invoke suite's
    /// echo target, failing target, ...).
    ///
    /// # Panics
    ///
    /// If a target has that name already.
    pub fn add_target(&mut self, name: &'static str, handler: impl Handler) {
        assert!(self.target(name).is_none(), "two targets are named {name}");
        self.targets.push((name, Box::new(handler)));
    }

    /// The target function called `name`.
    pub fn target(&self, name: &str) -> Option<&dyn Handler> {
        self.targets.iter().find(|(n, _)| *n == name).map(|(_, h)| &**h)
    }

    /// The ids that have a handler.
    pub fn ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.iter().map(|(i, _)| *i)
    }
}

/// What a suite's handlers need that durable does not have yet.
pub fn missing_feature(suite: &str) -> &'static str {
    match suite {
        "callback" => "create_callback",
        "invoke" => "chained invoke (ctx.invoke) and invoke targets",
        "wait_for_condition" => "wait_for_condition",
        "wait_for_callback" => "wait_for_callback",
        "parallel" => "parallel",
        "map" => "map",
        "plugin" => "plugins (invocation, operation and attempt hooks)",
        _ => "an operation durable does not have",
    }
}

/// The child-context logger with AWS's "replay logging" turned on: it logs on replay too,
/// so a requirement can count how often a child body really ran (3-11, 3-17). durable's
/// `info!` stays silent while replaying and has no such switch; this emits the same record
/// (target, fields) without the replay check.
pub(crate) fn log_even_when_replaying(ctx: &DurableContext, message: &str) {
    tracing::info!(
        target: "durable::user",
        execution_arn = ctx.execution_arn(),
        operation_id = ctx.parent_id(),
        "{message}"
    );
}
