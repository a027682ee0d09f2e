//! The recorded history of an invocation, and where the code is in it: the replay checks.
//!
//! Every context (the root, each child context, each batch) has its recorded operations in
//! the order they were recorded (the order of the execution state, which is the order the
//! operations started). While code replays a context, its durable calls must meet those
//! operations in that order:
//!
//! - a call whose operation is recorded must be the next unvisited one of its context;
//!   reaching it while an earlier one was never called means the code passed that one by
//!   (removed, renamed or moved);
//! - a call with no record while recorded operations of its context are still unvisited
//!   means the code inserted (or renamed) an operation before them;
//! - a context whose code returns while recorded operations of it are unvisited dropped
//!   them.
//!
//! Each is a divergence, found before any new work starts. Code that runs concurrently
//! (combinator members, map items, parallel branches) meets its context's operations in an
//! order that may change from run to run, so while such code runs (inside a *region* of
//! the context) recorded operations may be met in any order, and a new operation waits
//! (*parks*) until every recorded operation of the context has been met: another member may
//! still be replaying. Parked operations that can never go on (the invocation would
//! otherwise suspend) are a divergence too. Concurrent members that the code drops (the
//! losers of a race, the items still running when a batch completes) are *excused*: their
//! recorded operations are not expected again.

use std::fmt;
use std::sync::Arc;
use std::task::Waker;

use foldhash::{HashMap, HashSet};
use serde::Serialize;

use crate::model::{Operation, OperationType, SubType};

/// What identifies an operation to replay: type, sub-type, name and parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationShape {
    /// `STEP`, `WAIT`, `CONTEXT`...
    pub op_type: OperationType,
    /// `Step`, `Wait`, `Map`...
    pub sub_type: Option<String>,
    /// The operation's name.
    pub name: Option<String>,
    /// The parent context's operation id.
    pub parent_id: Option<String>,
}

impl OperationShape {
    pub(crate) fn of_record(op: &Operation) -> Self {
        OperationShape {
            op_type: op.op_type,
            sub_type: op.sub_type.as_ref().map(|s| s.as_str().to_owned()),
            name: op.name.as_deref().map(str::to_owned),
            parent_id: op.parent_id.as_deref().map(str::to_owned),
        }
    }

    pub(crate) fn of_call(call: &CallShape<'_>) -> Self {
        OperationShape {
            op_type: call.op_type,
            sub_type: Some(call.sub_type.to_owned()),
            name: call.name.map(str::to_owned),
            parent_id: call.parent_id.map(str::to_owned),
        }
    }

    /// `STEP/Step named "charge"`, without the parent.
    fn short(&self) -> String {
        let name = self.name.as_deref().map_or_else(|| "(unnamed)".to_owned(), |n| format!("named {n:?}"));
        format!("{}/{} {name}", self.op_type, self.sub_type.as_deref().unwrap_or("-"))
    }
}

impl fmt::Display for OperationShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())?;
        match &self.parent_id {
            Some(p) => write!(f, " under {p}"),
            None => f.write_str(" at the root"),
        }
    }
}

/// Where the code first differs from the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Divergence {
    /// The operation the divergence is about: the call's, or the recorded one the code
    /// passed by.
    pub operation_id: String,
    /// The call site in the current code (the function and label the macro gives it, or
    /// the positional call), or the context whose code returned.
    pub call_site: String,
    /// What the history recorded there.
    pub recorded: Option<OperationShape>,
    /// What the code calls there now.
    pub current: Option<OperationShape>,
    /// The full message (as the execution fails with).
    pub message: String,
}

/// Where the code goes past the recorded history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Frontier {
    /// The id of the first new operation (or of the step whose body would run).
    pub operation_id: String,
    /// Its call site.
    pub call_site: String,
}

/// What a call expects to find recorded at its id.
pub(crate) struct CallShape<'a> {
    pub(crate) id: &'a str,
    pub(crate) op_type: OperationType,
    pub(crate) sub_type: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) parent_id: Option<&'a str>,
    /// The call site, for messages.
    pub(crate) describe: &'a dyn Fn() -> String,
}

/// What a visit found.
#[derive(Debug)]
pub(crate) enum Visit {
    /// The recorded operation at the call's id.
    Recorded(Operation),
    /// Nothing recorded: new work, past the context's history.
    New,
    /// Nothing recorded, but recorded operations of the context are still unvisited and
    /// concurrent code may still meet them: wait ([`History::may_proceed`]).
    Park,
}

const GUIDANCE: &str = "Changing the operations an execution in flight has recorded would re-run or skip its work: \
                        guard an intended change with `ctx.patched(\"change-id\")`, so that executions in flight keep \
                        the old path";

/// A recorded operation not visited yet, and where it stands in its context.
struct Entry {
    op: Operation,
    /// (context index, position in the context), for operations recorded before the
    /// invocation.
    at: Option<(u32, u32)>,
}

/// The recorded operations of one context and the code's progress through them.
#[derive(Default)]
struct ContextLog {
    /// The context's operation id ("" for the root).
    key: Arc<str>,
    /// The recorded operations, in recorded order.
    ids: Vec<Arc<str>>,
    /// Which of them were visited or excused.
    done: Vec<bool>,
    /// The first position not done.
    cursor: usize,
    /// How many are not done.
    left: usize,
    /// A new operation started here: the code went past the context's history.
    live: bool,
    /// Order and completeness are not checked here any more (a combinator recorded before
    /// the order checks existed dropped members whose operations are unknown).
    lenient: bool,
    /// Open regions (concurrent code running), innermost last: whether each replays a
    /// recorded, finished decision (every member's operations recorded).
    regions: Vec<bool>,
    /// Visits made while a combinator traces this context (ids, in order).
    trace: Vec<Arc<str>>,
    tracers: u32,
    /// Parked new operations, woken when the context's recorded operations are all met.
    parked: Vec<Waker>,
}

impl ContextLog {
    fn mark_done(&mut self, pos: usize) {
        if !self.done[pos] {
            self.done[pos] = true;
            self.left -= 1;
            while self.cursor < self.done.len() && self.done[self.cursor] {
                self.cursor += 1;
            }
        }
    }
}

/// A parked call, for the message if it never goes on.
struct ParkedCall {
    context: u32,
    id: Arc<str>,
    call_site: String,
    shape: OperationShape,
}

/// The recorded history of an invocation and the order checks. See the module docs.
#[derive(Default)]
pub(crate) struct History {
    /// Recorded operations not visited yet (a visit takes the record out: each id is
    /// visited once), plus operations the service reported since.
    ops: HashMap<Arc<str>, Entry>,
    contexts: Vec<ContextLog>,
    index: HashMap<Arc<str>, u32>,
    visited: Visited,
    /// Context operations visited: their descriptions (for messages) and recorded
    /// positions.
    labels: HashMap<Arc<str>, (String, Option<u32>)>,
    parked: Vec<ParkedCall>,
}

impl History {
    /// Adds operations recorded before the invocation (a page of the initial state, in
    /// recorded order).
    pub(crate) fn record(&mut self, ops: Vec<Operation>) {
        self.ops.reserve(ops.len());
        for op in ops {
            let at = (op.op_type != OperationType::Execution).then(|| {
                let c = self.context_index(op.parent_id.as_deref().unwrap_or(""));
                let log = &mut self.contexts[c as usize];
                log.ids.push(op.id.clone());
                log.done.push(false);
                log.left += 1;
                (c, (log.ids.len() - 1) as u32)
            });
            self.ops.insert(op.id.clone(), Entry { op, at });
        }
    }

    fn context_index(&mut self, key: &str) -> u32 {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        let key: Arc<str> = Arc::from(key);
        let i = self.contexts.len() as u32;
        self.contexts.push(ContextLog { key: key.clone(), ..ContextLog::default() });
        self.index.insert(key, i);
        i
    }

    fn context(&self, key: &str) -> Option<&ContextLog> {
        self.index.get(key).map(|i| &self.contexts[*i as usize])
    }

    /// Merges an operation the service reported (a callback's outcome, a retry's timer).
    pub(crate) fn update(&mut self, op: Operation) {
        match self.ops.get_mut(&op.id) {
            Some(entry) => entry.op = op,
            None => {
                self.ops.insert(op.id.clone(), Entry { op, at: None });
            }
        }
    }

    /// The current record of an operation.
    pub(crate) fn get(&self, id: &str) -> Option<&Operation> {
        self.ops.get(id).map(|e| &e.op)
    }

    /// Whether code in context `key` is still re-executing recorded history: operations
    /// recorded there are unvisited and the code has not started a new one there.
    pub(crate) fn is_replaying(&self, key: &str) -> bool {
        self.context(key).is_some_and(|c| !c.live && c.left > 0)
    }

    /// The operations recorded before the invocation that it never visited, in contexts
    /// the code entered (children of a context returned from its record are not
    /// expected), in recorded order.
    pub(crate) fn unvisited(&self, entered: impl Fn(&str) -> bool) -> Vec<Operation> {
        let mut out = Vec::new();
        for log in &self.contexts {
            if !log.key.is_empty() && !entered(&log.key) {
                continue;
            }
            for (i, id) in log.ids.iter().enumerate() {
                if !log.done[i]
                    && let Some(e) = self.ops.get(id)
                {
                    out.push(e.op.clone());
                }
            }
        }
        out
    }

    /// Whether a context operation was visited (its code may have run).
    pub(crate) fn entered(&self, id: &str) -> bool {
        self.labels.contains_key(id)
    }

    /// Looks up the record at the call's id and checks it against the call and against
    /// the order of its context.
    pub(crate) fn visit(&mut self, call: &CallShape<'_>) -> Result<Visit, Box<Divergence>> {
        if !self.visited.insert(call.id) {
            let site = (call.describe)();
            return Err(Box::new(Divergence {
                operation_id: call.id.to_owned(),
                call_site: site.clone(),
                recorded: None,
                current: Some(OperationShape::of_call(call)),
                message: format!(
                    "two durable calls produced the same operation id {} ({site}); give the calls distinct names or \
                     pin distinct function names with #[durable(name = ...)]",
                    call.id
                ),
            }));
        }
        let key = call.parent_id.unwrap_or("");
        let removed = self.ops.remove(call.id);
        if call.op_type == OperationType::Context {
            let pos = removed.as_ref().and_then(|e| e.at).map(|(_, p)| p);
            self.labels.insert(Arc::from(call.id), (describe_context(call.name, call.id), pos));
        }
        let Some(Entry { op, at }) = removed else {
            let c = self.context_index(key) as usize;
            self.trace(c, call.id);
            let log = &self.contexts[c];
            if log.left == 0 || log.lenient {
                self.contexts[c].live = true;
                return Ok(Visit::New);
            }
            return match log.regions.last() {
                Some(false) => Ok(Visit::Park),
                Some(true) | None => Err(Box::new(self.inserted(c, call))),
            };
        };
        let rec_sub = op.sub_type.as_ref().map(SubType::as_str);
        if op.op_type != call.op_type
            || rec_sub != Some(call.sub_type)
            || op.name.as_deref() != call.name
            || op.parent_id.as_deref() != call.parent_id
        {
            let recorded = OperationShape::of_record(&op);
            let current = OperationShape::of_call(call);
            let site = (call.describe)();
            let message = format!(
                "non-deterministic replay at {site} (operation {}): the history recorded {recorded}, but the code \
                 now calls {current}. {GUIDANCE}.",
                call.id
            );
            return Err(Box::new(Divergence {
                operation_id: call.id.to_owned(),
                call_site: site,
                recorded: Some(recorded),
                current: Some(current),
                message,
            }));
        }
        let Some((c, pos)) = at else {
            // Reported by the service during this invocation, not part of the history.
            return Ok(Visit::Recorded(op));
        };
        let (c, pos) = (c as usize, pos as usize);
        self.trace(c, call.id);
        let log = &self.contexts[c];
        if log.regions.is_empty() && !log.lenient && pos != log.cursor {
            return Err(Box::new(self.passed_by(c, call, pos)));
        }
        self.done(c, pos);
        Ok(Visit::Recorded(op))
    }

    fn trace(&mut self, c: usize, id: &str) {
        let log = &mut self.contexts[c];
        if log.tracers > 0 {
            log.trace.push(Arc::from(id));
        }
    }

    fn done(&mut self, c: usize, pos: usize) {
        let log = &mut self.contexts[c];
        log.mark_done(pos);
        if log.left == 0 {
            for w in log.parked.drain(..) {
                w.wake();
            }
        }
    }

    /// Whether a parked call may go on now (every recorded operation of its context was
    /// met); if not, `waker` is woken when that changes.
    pub(crate) fn may_proceed(&mut self, key: &str, waker: &Waker) -> bool {
        let c = self.context_index(key) as usize;
        let log = &mut self.contexts[c];
        if log.left == 0 || log.lenient {
            log.live = true;
            return true;
        }
        log.parked.push(waker.clone());
        false
    }

    /// Notes a parked call (until [`History::unpark`]), for the message if it never goes on.
    pub(crate) fn park(&mut self, call: &CallShape<'_>) {
        let context = self.context_index(call.parent_id.unwrap_or(""));
        self.parked.push(ParkedCall {
            context,
            id: Arc::from(call.id),
            call_site: (call.describe)(),
            shape: OperationShape::of_call(call),
        });
    }

    pub(crate) fn unpark(&mut self, id: &str) {
        self.parked.retain(|p| &*p.id != id);
    }

    /// The divergence of parked calls that can never go on, if there are any: the
    /// invocation is about to suspend with them still parked. Which parked call replaced
    /// which recorded one cannot be told (concurrent code meets its context in any
    /// order), so the message names them all.
    pub(crate) fn stuck(&self) -> Option<Divergence> {
        let p = self.parked.first()?;
        let log = &self.contexts[p.context as usize];
        let ahead = log.ids.get(log.cursor).and_then(|id| self.ops.get(id))?;
        let recorded = OperationShape::of_record(&ahead.op);
        let calls: Vec<String> = self
            .parked
            .iter()
            .filter(|q| q.context == p.context)
            .map(|q| format!("{} at {} (operation {})", q.shape.short(), q.call_site, q.id))
            .collect();
        let missing: Vec<String> = (log.cursor..log.ids.len())
            .filter(|i| !log.done[*i])
            .filter_map(|i| self.ops.get(&log.ids[i]).map(|e| (i, e)))
            .map(|(i, e)| format!("#{} {} (operation {})", i + 1, OperationShape::of_record(&e.op).short(), e.op.id))
            .collect();
        Some(Divergence {
            operation_id: p.id.to_string(),
            call_site: p.call_site.clone(),
            message: format!(
                "non-deterministic replay in {}: the code calls {}, which the history does not have, while recorded \
                 {} {} never called: the code inserted, renamed or removed an operation. {GUIDANCE}.",
                self.describe(log),
                calls.join(" and "),
                if missing.len() == 1 { "operation" } else { "operations" },
                if missing.len() == 1 { format!("{} is", missing[0]) } else { format!("{} are", missing.join(", ")) },
            ),
            recorded: Some(recorded),
            current: Some(p.shape.clone()),
        })
    }

    /// The code returned from context `key`: every operation recorded there must have
    /// been met (or excused).
    pub(crate) fn close(&self, key: &str, site: &dyn Fn() -> String) -> Result<(), Box<Divergence>> {
        let Some(log) = self.context(key) else { return Ok(()) };
        if log.left == 0 || log.lenient {
            return Ok(());
        }
        let Some(ahead) = log.ids.get(log.cursor).and_then(|id| self.ops.get(id)) else { return Ok(()) };
        let recorded = OperationShape::of_record(&ahead.op);
        let site = site();
        Err(Box::new(Divergence {
            operation_id: ahead.op.id.to_string(),
            call_site: site.clone(),
            message: format!(
                "non-deterministic replay at {site}: the code of {} returned, but its recorded operation #{}, {} \
                 (operation {}), was never called: the code removed or renamed it. {GUIDANCE}.",
                self.describe(log),
                log.cursor + 1,
                recorded.short(),
                ahead.op.id,
            ),
            recorded: Some(recorded),
            current: None,
        }))
    }

    /// Recorded operations that the code will not meet again and need not: those of
    /// concurrent members it dropped.
    pub(crate) fn excuse<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            if let Some(&Entry { at: Some((c, pos)), .. }) = self.ops.get(id) {
                self.done(c as usize, pos as usize);
            }
        }
    }

    /// Excuses every unvisited operation recorded in context `key` after the operation at
    /// `after`: a combinator decided while replaying its members, and every recorded
    /// operation after it belongs to its members (the code after it had not run).
    /// Returns the excused ids.
    pub(crate) fn excuse_after(&mut self, key: &str, after: &str) -> Vec<Arc<str>> {
        let Some(&c) = self.index.get(key) else { return Vec::new() };
        let start = match self.position(after) {
            Some(p) => p + 1,
            // The combinator is new: the history ends before it.
            None => return Vec::new(),
        };
        let log = &self.contexts[c as usize];
        let ids: Vec<Arc<str>> = (start..log.ids.len()).filter(|i| !log.done[*i]).map(|i| log.ids[i].clone()).collect();
        for id in &ids {
            self.excuse([&**id]);
        }
        ids
    }

    /// The recorded position of a visited context operation in its context.
    fn position(&self, id: &str) -> Option<usize> {
        self.labels.get(id).and_then(|(_, p)| *p).map(|p| p as usize)
    }

    /// Stops checking context `key` for the rest of the invocation.
    pub(crate) fn relax(&mut self, key: &str) {
        let c = self.context_index(key) as usize;
        let log = &mut self.contexts[c];
        log.lenient = true;
        for w in log.parked.drain(..) {
            w.wake();
        }
    }

    /// Opens a region of context `key` (concurrent code runs); `complete` if it replays a
    /// recorded decision.
    pub(crate) fn enter_region(&mut self, key: &str, complete: bool) {
        let c = self.context_index(key) as usize;
        self.contexts[c].regions.push(complete);
    }

    pub(crate) fn leave_region(&mut self, key: &str) {
        if let Some(&c) = self.index.get(key) {
            self.contexts[c as usize].regions.pop();
        }
    }

    /// Starts recording the visits of context `key` (a combinator attributes them to its
    /// members; see [`Trace`](super::Trace)).
    pub(crate) fn start_trace(&mut self, key: &str) {
        let c = self.context_index(key) as usize;
        self.contexts[c].tracers += 1;
    }

    pub(crate) fn stop_trace(&mut self, key: &str) {
        if let Some(&c) = self.index.get(key) {
            let log = &mut self.contexts[c as usize];
            log.tracers -= 1;
            if log.tracers == 0 {
                log.trace.clear();
            }
        }
    }

    pub(crate) fn trace_len(&self, key: &str) -> usize {
        self.context(key).map_or(0, |c| c.trace.len())
    }

    pub(crate) fn traced(&self, key: &str, range: std::ops::Range<usize>) -> Vec<Arc<str>> {
        self.context(key).map(|c| c.trace[range].to_vec()).unwrap_or_default()
    }

    fn describe(&self, log: &ContextLog) -> String {
        if log.key.is_empty() {
            "the root context".to_owned()
        } else {
            self.labels.get(&log.key).map_or_else(|| format!("context {}", log.key), |(label, _)| label.clone())
        }
    }

    /// A call with no record while recorded operations of its context are ahead.
    fn inserted(&self, c: usize, call: &CallShape<'_>) -> Divergence {
        let log = &self.contexts[c];
        let site = (call.describe)();
        let current = OperationShape::of_call(call);
        let ahead = log.ids.get(log.cursor).and_then(|id| self.ops.get(id));
        let recorded = ahead.map(|e| OperationShape::of_record(&e.op));
        let message = format!(
            "non-deterministic replay at {site}: the code calls {} (operation {}), which the history does not have, \
             while recorded operation #{} of {}, {} (operation {}), is still ahead: the code inserted (or renamed) an \
             operation before it. {GUIDANCE}.",
            current.short(),
            call.id,
            log.cursor + 1,
            self.describe(log),
            recorded.as_ref().map_or_else(String::new, OperationShape::short),
            ahead.map_or("?", |e| &*e.op.id),
        );
        Divergence { operation_id: call.id.to_owned(), call_site: site, recorded, current: Some(current), message }
    }

    /// A recorded call met while an earlier recorded operation of its context was never
    /// called.
    fn passed_by(&self, c: usize, call: &CallShape<'_>, pos: usize) -> Divergence {
        let log = &self.contexts[c];
        let site = (call.describe)();
        let current = OperationShape::of_call(call);
        let skipped = self.ops.get(&log.ids[log.cursor]);
        let recorded = skipped.map(|e| OperationShape::of_record(&e.op));
        let message = format!(
            "non-deterministic replay at {site}: the code calls {} (operation {}, recorded #{} of {}), but recorded \
             operation #{}, {} (operation {}), comes before it and the code never called it: the code removed, \
             renamed or moved an operation. {GUIDANCE}.",
            current.short(),
            call.id,
            pos + 1,
            self.describe(log),
            log.cursor + 1,
            recorded.as_ref().map_or_else(String::new, OperationShape::short),
            log.ids[log.cursor],
        );
        Divergence {
            operation_id: log.ids[log.cursor].to_string(),
            call_site: site,
            recorded,
            current: Some(current),
            message,
        }
    }
}

fn describe_context(name: Option<&str>, id: &str) -> String {
    match name {
        Some(n) => format!("context {n:?} (operation {id})"),
        None => format!("context {id}"),
    }
}

/// The ids visited by this invocation. Ids made by `durable-id-v1` (32 lowercase hex
/// digits) are kept as the 128-bit number they spell, without allocating; others as text.
#[derive(Default)]
struct Visited {
    ids: HashSet<u128>,
    other: HashSet<String>,
}

impl Visited {
    /// Records `id`; `false` if it was visited before.
    fn insert(&mut self, id: &str) -> bool {
        if id.len() == 32
            && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && let Ok(n) = u128::from_str_radix(id, 16)
        {
            self.ids.insert(n)
        } else {
            self.other.insert(id.to_owned())
        }
    }
}
