//! The context a durable function receives, and its operations.

mod batch;
mod callback;
mod child;
mod combinator;
mod condition;
mod deterministic;
mod invoke;
mod patch;
mod saga;
mod step;
mod wait;

use foldhash::{HashMap, HashMapExt};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

pub use batch::{BatchItem, BatchResult, CompletionConfig, CompletionReason, ItemStatus, Map, Nesting, Parallel};
pub use callback::{Callback, CreateCallback, WaitForCallback};
pub use child::ChildContext;
pub use combinator::{ALL_FAILED_ERROR_TYPE, Members};
pub use condition::{PollUntil, WaitDecision, WaitForCondition, WaitStrategy, poll_until};
pub use deterministic::{Now, Random, Uuid};
pub use invoke::Invoke;
pub use patch::PATCH_SUB_TYPE;
pub use saga::{COMPENSATION_FAILED_ERROR_TYPE, Saga, SagaStep};
pub use step::{Step, StepContext, StepSemantics};
pub use wait::Wait;

use std::borrow::Cow;

use crate::engine::{Call, Engine};
use crate::id::{self, Site};
use crate::model::{OperationType, validate_name};

/// Ties an operation builder to the lifetime of its closure.
pub(crate) type Marker<'a> = std::marker::PhantomData<&'a ()>;

/// The handle a durable function gets: every durable operation is a method on it.
///
/// Cloning is cheap; clones share the same position in the execution. Each child context
/// (`run_in_child_context`, each map item and parallel branch) gets its own
/// `DurableContext` whose operations are children of that context's operation.
///
/// The context is not `Send`: an execution runs on one task, and concurrency inside it
/// goes through durable operations (child contexts), never through spawned tasks.
#[derive(Clone)]
pub struct DurableContext {
    pub(crate) engine: Rc<Engine>,
    pub(crate) scope: Rc<Scope>,
    site: Option<&'static Site>,
}

/// One context level: the parent id of its operations and the counters behind their ids.
pub(crate) struct Scope {
    /// The `ParentId` of the operations started in this context.
    pub(crate) parent_id: Option<Arc<str>>,
    /// The id their ids are derived from: the parent, except in a virtual context (a FLAT
    /// map item or parallel branch), whose operations hang off the batch but take their
    /// ids from the item.
    id_base: Option<Arc<str>>,
    occurrences: RefCell<HashMap<Rc<str>, u64>>,
    positional: Cell<u64>,
}

impl Scope {
    fn new(parent_id: Option<Arc<str>>) -> Scope {
        Scope {
            id_base: parent_id.clone(),
            parent_id,
            occurrences: RefCell::new(HashMap::new()),
            positional: Cell::new(0),
        }
    }
}

/// Where an operation was called from, for messages.
#[derive(Clone, Copy)]
pub(crate) enum CallSite {
    Site(&'static Site),
    Positional(u64),
}

impl CallSite {
    pub(crate) fn describe(self, method: &str) -> String {
        match self {
            CallSite::Site(s) => s.describe(),
            CallSite::Positional(n) => {
                format!("{method} call #{n} made outside a #[durable] function (positional id)")
            }
        }
    }
}

/// A new operation's identity: its id and where it was called.
pub(crate) struct OpIdent {
    pub(crate) id: Arc<str>,
    pub(crate) site: CallSite,
}

impl DurableContext {
    pub(crate) fn root(engine: Rc<Engine>) -> Self {
        DurableContext { engine, scope: Rc::new(Scope::new(None)), site: None }
    }

    pub(crate) fn child_of(&self, parent_id: Arc<str>) -> Self {
        DurableContext { engine: self.engine.clone(), scope: Rc::new(Scope::new(Some(parent_id))), site: None }
    }

    /// A virtual child: operations get `parent_id` as their parent and ids derived from
    /// `id_base` (FLAT nesting).
    pub(crate) fn virtual_child(&self, parent_id: Arc<str>, id_base: Arc<str>) -> Self {
        let scope = Scope {
            parent_id: Some(parent_id),
            id_base: Some(id_base),
            occurrences: RefCell::new(HashMap::new()),
            positional: Cell::new(0),
        };
        DurableContext { engine: self.engine.clone(), scope: Rc::new(scope), site: None }
    }

    /// This context with a compile-time call site attached: the next operation started
    /// from the returned handle takes its id from `site`. Emitted by `#[durable]`.
    #[doc(hidden)]
    pub fn __at(&self, site: &'static Site) -> Self {
        DurableContext { engine: self.engine.clone(), scope: self.scope.clone(), site: Some(site) }
    }

    /// Assigns the id of a new operation started from this handle.
    pub(crate) fn next_op(&self) -> OpIdent {
        let parent = self.scope.id_base.as_deref();
        if let Some(site) = self.site {
            let key = self.engine.site_key(site);
            let occurrence = {
                let mut occ = self.scope.occurrences.borrow_mut();
                let n = occ.entry(key.clone()).or_insert(0);
                let this = *n;
                *n += 1;
                this
            };
            OpIdent { id: id::operation_id_shared(parent, &key, occurrence), site: CallSite::Site(site) }
        } else {
            let n = self.scope.positional.get() + 1;
            self.scope.positional.set(n);
            OpIdent { id: id::operation_id_shared(parent, &id::positional_key(n), 0), site: CallSite::Positional(n) }
        }
    }

    /// A new operation of this context: its id and call site, and what it is.
    pub(crate) fn call(
        &self,
        method: &'static str,
        op_type: OperationType,
        sub_type: &'static str,
        name: Name,
    ) -> Call {
        self.call_with(self.next_op(), method, op_type, sub_type, name)
    }

    /// An operation of this context whose id is already assigned (a saga's compensation,
    /// a batch item).
    pub(crate) fn call_with(
        &self,
        op: OpIdent,
        method: &'static str,
        op_type: OperationType,
        sub_type: &'static str,
        name: Name,
    ) -> Call {
        Call { ctx: self.clone(), id: op.id, site: op.site, op_type, sub_type: Cow::Borrowed(sub_type), name, method }
    }

    /// The ARN of the execution.
    pub fn execution_arn(&self) -> &str {
        &self.engine.arn
    }

    /// The id of the child-context operation this context belongs to (`None` at the root).
    pub fn parent_id(&self) -> Option<&str> {
        self.scope.parent_id.as_deref()
    }

    /// Whether code in this context is re-executing history recorded by an earlier
    /// invocation. The `durable::info!` family of macros logs nothing while this holds,
    /// so each log line appears once per execution.
    pub fn is_replaying(&self) -> bool {
        self.engine.is_replaying(self.scope.parent_id.as_deref())
    }
}

impl fmt::Debug for DurableContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableContext")
            .field("execution_arn", &self.engine.arn)
            .field("parent_id", &self.scope.parent_id)
            .finish_non_exhaustive()
    }
}

/// An operation's name: a string, or none.
///
/// Durable methods take `impl Into<Name>`, so a `&str`, a `String` or an `Option` of
/// either works; [`Name::NONE`] leaves the operation unnamed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name(Option<Arc<str>>);

impl Name {
    /// No name.
    pub const NONE: Name = Name(None);

    /// The name, if any.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Checks the protocol's rule (1 to 256 printable ASCII characters).
    pub(crate) fn validate(&self) -> Result<(), String> {
        match &self.0 {
            Some(n) => validate_name(n),
            None => Ok(()),
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Some(Arc::from(s)))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(Some(Arc::from(s)))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(Some(Arc::from(s.as_str())))
    }
}

impl From<Option<&str>> for Name {
    fn from(s: Option<&str>) -> Self {
        Name(s.map(Arc::from))
    }
}

impl From<Option<String>> for Name {
    fn from(s: Option<String>) -> Self {
        Name(s.map(Arc::from))
    }
}

impl Name {
    /// The name, shared.
    pub(crate) fn shared(&self) -> Option<Arc<str>> {
        self.0.clone()
    }
}
