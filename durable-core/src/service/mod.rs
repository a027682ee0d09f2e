//! The self-hosted checkpoint service: what AWS's durable-execution control plane does,
//! over a [`Store`].
//!
//! It validates each checkpoint batch against the operations' current statuses (AWS's
//! legal transitions), writes operation records and numbered history events in one
//! conditional commit, owns wait timers and retry delays, and hands out checkpoint tokens
//! that fence stale invocations off. Runners drive it: [`CheckpointService::begin_invocation`]
//! gives the invocation input, the engine checkpoints through
//! [`CheckpointService::checkpointer`], and [`CheckpointService::end_invocation`] records how
//! the invocation ended.
//!
//! # Reading the code
//!
//! Every change to an execution is one optimistic-concurrency transaction (`txn`): under
//! the execution's lock, a *plan* computes what to write from the cached state, the write
//! commits only if nobody else committed meanwhile, and otherwise the execution is
//! reloaded and the plan runs again. The rest is what the plans say:
//!
//! - `start`: starting an execution;
//! - `lifecycle`: beginning and ending invocations, stopping and timing out executions;
//! - `checkpoint` and `apply`: checkpoint batches (AWS's legal transitions) and state
//!   pages, with `token` fencing stale invocations off;
//! - `callback`: callback ids and their completion from outside;
//! - `invoke`: chained invokes, run as child executions that report their end;
//! - `query`: reads (an execution, its history, lists, what is due);
//! - `state` (the cached view of one execution), `events` (history events), `error`.

mod apply;
mod callback;
mod checkpoint;
mod error;
mod events;
mod invoke;
mod lifecycle;
mod query;
mod start;
mod state;
mod token;
mod txn;

use foldhash::{HashMap, HashMapExt};
use std::fmt;
use std::sync::{Arc, Mutex};

pub use self::checkpoint::ServiceCheckpointer;
pub use self::error::ServiceError;
pub use self::lifecycle::{INVOCATION_LOST_ERROR_TYPE, InvocationEnd};
pub use self::query::HistoryQuery;
pub use self::start::{StartExecution, Started};
use self::txn::Slot;
use crate::checkpoint::Limits;
use crate::clock::{Clock, SystemClock};
use crate::store::Store;

/// Settings of a [`CheckpointService`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service's caps on payload sizes. The service enforces, and tells the engine,
    /// these caps bounded by what its store holds ([`Limits::within_store`] with the
    /// store's `max_payload_bytes`): [`CheckpointService::limits`].
    pub limits: Limits,
    /// The execution timeout when a start names none (seconds; AWS allows 1 to 31,622,400).
    pub default_timeout_seconds: u64,
    /// Days a finished execution is kept.
    pub retention_days: u32,
    /// Region used in ARNs.
    pub region: String,
    /// Account used in ARNs.
    pub account: String,
    /// Operations per page of invocation state.
    pub state_page_items: usize,
    /// Whether [`CheckpointService::callback_success`] refuses a result that is not JSON
    /// text (default `true`). A callback decodes its result with its codec: JSON unless
    /// `CreateCallback::serdes` names another. The service cannot see which codec a
    /// callback uses (nothing on the wire says), so it checks for the default, and a result
    /// the default codec could never decode is refused while the sender can still correct
    /// it, instead of failing the execution later. Turn it off when callbacks use a codec
    /// whose payloads are not JSON (`Postcard`, an `FnSerdes` reading plain text): results
    /// are then taken as sent, and one the codec cannot read fails in the function.
    pub require_json_callback_results: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: Limits {
                max_input: 6 * 1024 * 1024,
                max_operation_payload: 6 * 1024 * 1024,
                max_context_result: 6 * 1024 * 1024,
                max_callback_result: 1024 * 1024,
                max_execution_result: 6 * 1024 * 1024,
                // In process, results of any allowed size are returned directly.
                max_invocation_result: usize::MAX,
                max_batch_updates: 250,
                max_batch_bytes: 750 * 1024,
            },
            default_timeout_seconds: start::MAX_TIMEOUT_SECONDS,
            retention_days: 14,
            region: "local".to_owned(),
            account: "000000000000".to_owned(),
            state_page_items: 1000,
            require_json_callback_results: true,
        }
    }
}

/// The self-hosted checkpoint service. See the [module documentation](self).
pub struct CheckpointService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    cache: Mutex<HashMap<String, Slot>>,
    due_listener: std::sync::RwLock<Option<DueListener>>,
    end_listener: std::sync::RwLock<Option<DueListener>>,
}

/// Called with an execution's ARN when it became due to run now (see
/// [`CheckpointService::on_due`]).
pub type DueListener = Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for CheckpointService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointService").field("config", &self.config).finish_non_exhaustive()
    }
}

impl CheckpointService {
    /// A service over `store` with the wall clock and default settings.
    pub fn new(store: Arc<dyn Store>) -> Self {
        CheckpointService::with_config(store, Arc::new(SystemClock), ServiceConfig::default())
    }

    /// A service with a given clock and settings. The limits it enforces are the
    /// configured ones bounded by the store's ([`Limits::within_store`]).
    pub fn with_config(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut config: ServiceConfig) -> Self {
        config.limits = config.limits.within_store(store.max_payload_bytes());
        CheckpointService {
            store,
            clock,
            config,
            cache: Mutex::new(HashMap::new()),
            due_listener: std::sync::RwLock::new(None),
            end_listener: std::sync::RwLock::new(None),
        }
    }

    /// Registers the function told when an execution becomes due to run now because of a
    /// call to this service (a start, a callback completed or failed): a runner wakes its
    /// worker with it, however the call arrived. Timers are not announced (they come due
    /// with time; runners look for them). One listener; a new one replaces the old.
    pub fn on_due(&self, listener: DueListener) {
        *self.due_listener.write().expect("listener lock") = Some(listener);
    }

    /// Registers the function told when an execution ends through this service (it
    /// succeeded, failed, timed out or was stopped): a runner waiting for an execution
    /// learns of its end without polling the store. One listener; a new one replaces the
    /// old.
    pub fn on_end(&self, listener: DueListener) {
        *self.end_listener.write().expect("listener lock") = Some(listener);
    }

    /// Tells the end listener, if any, that `arn` ended.
    pub(super) fn announce_end(&self, arn: &str) {
        let listener = self.end_listener.read().expect("listener lock").clone();
        if let Some(l) = listener {
            l(arn);
        }
    }

    /// Tells the listener, if any, that `arn` is due now.
    fn announce_due(&self, arn: &str) {
        let listener = self.due_listener.read().expect("listener lock").clone();
        if let Some(l) = listener {
            l(arn);
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The settings, with the limits the service enforces.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The limits the service enforces and its checkpointer advertises to the engine.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// The ARN of a function.
    pub fn function_arn(&self, function_name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{function_name}", self.config.region, self.config.account)
    }
}

#[cfg(test)]
mod tests;
