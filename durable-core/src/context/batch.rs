//! `map` and `parallel`: run items or branches as child contexts, at most N at a time,
//! until a completion rule is met; the outcome is a [`BatchResult`].

use std::future::IntoFuture;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::child::ChildContext;
use super::{DurableContext, Name, OpIdent};
use crate::engine::{
    Call, Concurrent, Diverged, Lifecycle, Next, Outcome, PANIC_ERROR_TYPE, drive, panic_message, park,
};
use crate::error::{Error, ErrorKind};
use crate::id;
use crate::model::{ErrorObject, Operation, OperationStatus, OperationType, SubType};
use crate::serdes::{Json, Serdes};

/// When a batch is complete. With no criterion at all a batch fails fast: the first
/// failure completes it with `FAILURE_TOLERANCE_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CompletionConfig {
    /// Complete once this many items succeeded.
    pub min_successful: Option<usize>,
    /// Complete (failed) once more than this many items failed.
    pub tolerated_failure_count: Option<usize>,
    /// Complete (failed) once more than this percentage of all items failed.
    pub tolerated_failure_percentage: Option<f64>,
}

impl CompletionConfig {
    /// Every item must succeed; the first failure completes the batch (the default).
    pub fn all_successful() -> Self {
        CompletionConfig {
            min_successful: None,
            tolerated_failure_count: Some(0),
            tolerated_failure_percentage: Some(0.0),
        }
    }

    /// Run every item whatever fails.
    pub fn all_completed() -> Self {
        CompletionConfig {
            min_successful: None,
            tolerated_failure_count: None,
            tolerated_failure_percentage: Some(100.0),
        }
    }

    /// Complete at the first success.
    pub fn first_successful() -> Self {
        CompletionConfig { min_successful: Some(1), tolerated_failure_count: None, tolerated_failure_percentage: None }
    }

    /// Complete once `n` items succeeded.
    pub fn min_successful(n: usize) -> Self {
        CompletionConfig { min_successful: Some(n), ..CompletionConfig::default() }
    }

    /// Tolerate up to `n` failures.
    pub fn tolerated_failures(mut self, n: usize) -> Self {
        self.tolerated_failure_count = Some(n);
        self
    }

    /// Tolerate up to `pct` percent of the items failing.
    pub fn tolerated_failure_percentage(mut self, pct: f64) -> Self {
        self.tolerated_failure_percentage = Some(pct);
        self
    }

    fn is_empty(&self) -> bool {
        self.min_successful.is_none()
            && self.tolerated_failure_count.is_none()
            && self.tolerated_failure_percentage.is_none()
    }
}

/// Where the items' operations hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nesting {
    /// Each item is a CONTEXT operation (`MapIteration` / `ParallelBranch`) under the batch.
    #[default]
    Nested,
    /// Items are virtual: their operations hang directly under the batch operation (about
    /// 30% fewer operations); item results are recorded only in the batch's result.
    Flat,
}

/// Why a batch completed (`CompletionReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompletionReason {
    /// Every item finished.
    AllCompleted,
    /// Enough items succeeded.
    MinSuccessfulReached,
    /// Too many items failed.
    FailureToleranceExceeded,
}

/// The state of one item in a [`BatchResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemStatus {
    /// It returned a value.
    Succeeded,
    /// It returned an error.
    Failed,
    /// It was still running when the batch completed.
    Started,
}

/// One item of a [`BatchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem<T> {
    /// The item's index.
    pub index: usize,
    /// Its state.
    pub status: ItemStatus,
    /// Its value, if it succeeded.
    pub result: Option<T>,
    /// Its error, if it failed.
    pub error: Option<ErrorObject>,
}

/// The outcome of a `map` or `parallel`: every started item in index order, and why the
/// batch completed. The batch operation itself succeeds even when items failed: call
/// [`BatchResult::throw_if_error`] (or [`BatchResult::into_results`]) to turn failures
/// into an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult<T> {
    /// The items that started, in index order.
    pub all: Vec<BatchItem<T>>,
    /// Why the batch completed.
    #[serde(rename = "completionReason")]
    pub completion_reason: CompletionReason,
}

impl<T> BatchResult<T> {
    /// The items that succeeded.
    pub fn succeeded(&self) -> Vec<&BatchItem<T>> {
        self.all.iter().filter(|i| i.status == ItemStatus::Succeeded).collect()
    }

    /// The items that failed.
    pub fn failed(&self) -> Vec<&BatchItem<T>> {
        self.all.iter().filter(|i| i.status == ItemStatus::Failed).collect()
    }

    /// The items still running when the batch completed.
    pub fn started(&self) -> Vec<&BatchItem<T>> {
        self.all.iter().filter(|i| i.status == ItemStatus::Started).collect()
    }

    /// The values of the items that succeeded, in index order.
    pub fn results(&self) -> Vec<&T> {
        self.all.iter().filter_map(|i| i.result.as_ref()).collect()
    }

    /// The errors of the items that failed, in index order.
    pub fn errors(&self) -> Vec<&ErrorObject> {
        self.all.iter().filter_map(|i| i.error.as_ref()).collect()
    }

    /// Whether an item failed.
    pub fn has_failure(&self) -> bool {
        self.all.iter().any(|i| i.status == ItemStatus::Failed)
    }

    /// How many items succeeded.
    pub fn success_count(&self) -> usize {
        self.succeeded().len()
    }

    /// How many items failed.
    pub fn failure_count(&self) -> usize {
        self.failed().len()
    }

    /// How many items were still running.
    pub fn started_count(&self) -> usize {
        self.started().len()
    }

    /// How many items the result holds: the items that started (those never started
    /// because the batch completed early are not counted).
    pub fn total_count(&self) -> usize {
        self.all.len()
    }

    /// The batch's status: [`ItemStatus::Failed`] if an item failed, else
    /// [`ItemStatus::Succeeded`] (AWS's `BatchResult.status`). It says nothing about why
    /// the batch completed: see [`BatchResult::completion_reason`].
    pub fn status(&self) -> ItemStatus {
        if self.has_failure() { ItemStatus::Failed } else { ItemStatus::Succeeded }
    }

    /// The first item error, as an error of kind [`ErrorKind::BatchCompletion`] that keeps
    /// the item's error type, message and data.
    pub fn throw_if_error(&self) -> Result<(), Error> {
        match self.all.iter().find_map(|i| i.error.clone()) {
            Some(e) => Err(Error::from_object(ErrorKind::BatchCompletion, e)),
            None => Ok(()),
        }
    }

    /// The values in index order, or the first item error.
    pub fn into_results(self) -> Result<Vec<T>, Error> {
        self.throw_if_error()?;
        Ok(self.all.into_iter().filter_map(|i| i.result).collect())
    }
}

/// The summary recorded instead of a result too large to checkpoint (`ReplayChildren`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    #[serde(rename = "type")]
    kind: String,
    total_count: usize,
    completion_reason: CompletionReason,
    completed_indexes: Vec<usize>,
    started_indexes: Vec<usize>,
    started_count: usize,
    success_count: usize,
    failure_count: usize,
    status: String,
}

type BranchFuture<'a, T> = LocalBoxFuture<'a, Result<T, Error>>;
type Branch<'a, T> = Box<dyn FnOnce(DurableContext) -> BranchFuture<'a, T> + 'a>;
/// A started item: its index and outcome.
type Running<'a, T> = Concurrent<LocalBoxFuture<'a, (usize, Result<T, Error>)>>;

/// What `map` and `parallel` share: the batch operation and its items.
struct Batch<'a, T> {
    call: Call,
    item_sub_type: &'static str,
    summary_type: &'static str,
    branches: Vec<(String, Branch<'a, T>)>,
    max_concurrency: Option<usize>,
    completion: CompletionConfig,
    nesting: Nesting,
    item_serdes: Arc<dyn Serdes<T>>,
    serdes: Arc<dyn Serdes<BatchResult<T>>>,
    /// The recorded summary of a result too large to record: a replay rebuilds the result
    /// by replaying the items it names.
    summary: Option<Arc<str>>,
    /// How many items the batch has (once they run).
    total: usize,
}

impl<T: Serialize + DeserializeOwned + 'static> Batch<'_, T> {
    /// A batch operation of `ctx` with the defaults: no branches yet, no concurrency
    /// limit, every item awaited, nested item contexts, JSON codecs.
    fn new(
        ctx: &DurableContext,
        name: Name,
        method: &'static str,
        (sub_type, item_sub_type): (&'static str, &'static str),
        summary_type: &'static str,
    ) -> Self {
        Batch {
            call: ctx.call(method, OperationType::Context, sub_type, name),
            item_sub_type,
            summary_type,
            branches: Vec::new(),
            max_concurrency: None,
            completion: CompletionConfig::default(),
            nesting: Nesting::Nested,
            item_serdes: Arc::new(Json),
            serdes: Arc::new(Json),
            summary: None,
            total: 0,
        }
    }
}

/// Whether a batch of `total` items is complete, and why.
fn completion_of(
    config: CompletionConfig,
    total: usize,
    successes: usize,
    failures: usize,
) -> Option<CompletionReason> {
    let config = if config.is_empty() { CompletionConfig::all_successful() } else { config };
    let exceeded = config.tolerated_failure_count.is_some_and(|c| failures > c)
        || config.tolerated_failure_percentage.is_some_and(|p| total > 0 && failures as f64 / total as f64 * 100.0 > p);
    if exceeded {
        return Some(CompletionReason::FailureToleranceExceeded);
    }
    if config.min_successful.is_some_and(|m| successes >= m) {
        return Some(CompletionReason::MinSuccessfulReached);
    }
    (successes + failures == total).then_some(CompletionReason::AllCompleted)
}

impl<T: Serialize + DeserializeOwned + 'static> Lifecycle for Batch<'_, T> {
    type Output = BatchResult<T>;

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        if self.max_concurrency == Some(0) {
            return Err(Error::validation("max_concurrency must be at least 1"));
        }
        let n = self.branches.len();
        if let Some(m) = self.completion.min_successful
            && m > n
        {
            return Err(Error::validation(format!("min_successful is {m}, but there are only {n} items")));
        }
        if let Some(p) = self.completion.tolerated_failure_percentage
            && !(0.0..=100.0).contains(&p)
        {
            return Err(Error::validation(format!("tolerated_failure_percentage must be 0 to 100, not {p}")));
        }
        Ok(())
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<BatchResult<T>> {
        let Some(op) = recorded else { return Next::Start { ack: false, attempt: 0 } };
        let details = op.context_details.unwrap_or_default();
        match op.status {
            OperationStatus::Succeeded if details.replay_children == Some(true) => {
                self.summary = Some(details.result.unwrap_or_else(|| Arc::from("")));
                Next::Work(0)
            }
            OperationStatus::Succeeded => Next::Return(self.call.decode(&*self.serdes, details.result.as_deref())),
            OperationStatus::Started => Next::Work(0),
            _ => Next::Return(Err(Error::from_object(ErrorKind::BatchCompletion, details.error.unwrap_or_default()))),
        }
    }

    async fn work(&mut self, _: u32) -> Outcome<BatchResult<T>> {
        // A rebuild (large result) follows the recorded summary, not the race of this run.
        let rebuild = match self.summary.take().map(|s| serde_json::from_str::<Summary>(&s)) {
            None => None,
            Some(Ok(summary)) => Some(summary),
            Some(Err(e)) => {
                return Outcome::Return(Err(Error::serdes(format!(
                    "the recorded summary of {} {} is unreadable: {e}",
                    self.call.method, self.call.id
                ))));
            }
        };
        let Ok(result) = self.run_items(rebuild.as_ref()).await else { return park().await };
        if rebuild.is_some() {
            return Outcome::Return(Ok(result));
        }
        // The first run returns what a replay will: the result as its codec gives it back.
        let fail = |e: Error| Outcome::Fail { error: e.into_object(), kind: ErrorKind::BatchCompletion };
        match self.call.encode_context(&*self.serdes, result) {
            // Acknowledged before the result is returned: which items finished first decided
            // it, and a replay (whose items all finish at once) could decide otherwise.
            Ok(Ok(encoded)) => Outcome::succeed(encoded),
            // Too large to record: a summary, from which a replay rebuilds the result.
            Ok(Err(result)) => {
                let summary = Summary {
                    kind: self.summary_type.to_owned(),
                    total_count: self.total,
                    completion_reason: result.completion_reason,
                    completed_indexes: result
                        .all
                        .iter()
                        .filter(|i| i.status != ItemStatus::Started)
                        .map(|i| i.index)
                        .collect(),
                    started_indexes: result.started().iter().map(|i| i.index).collect(),
                    started_count: result.started_count(),
                    success_count: result.success_count(),
                    failure_count: result.failure_count(),
                    status: "SUCCEEDED".to_owned(),
                };
                let payload = serde_json::to_string(&summary).expect("plain summary");
                Outcome::Succeed { value: result, payload: Some(payload), replay_children: true, ack: true }
            }
            // A result its codec cannot write (or read back) fails the batch, as it would
            // fail a child context; a replay returns the same error.
            Err(e) => fail(e),
        }
    }
}

impl<'a, T: Serialize + DeserializeOwned + 'static> Batch<'a, T> {
    /// Runs the items, at most `max_concurrency` at a time in index order, as concurrent
    /// code of the batch's context, until the completion rule is met (or, rebuilding, the
    /// recorded items are back).
    async fn run_items(&mut self, rebuild: Option<&Summary>) -> Result<BatchResult<T>, Diverged> {
        let engine = self.call.engine().clone();
        let batch_id = self.call.id.clone();
        let branches = std::mem::take(&mut self.branches);
        let total = branches.len();
        self.total = total;
        let max = self.max_concurrency.unwrap_or(total).max(1);
        let scope = self.call.ctx.child_of(batch_id.clone());
        let mut results: Vec<Option<Result<T, ErrorObject>>> = (0..total).map(|_| None).collect();
        let mut started = vec![false; total];
        let mut pending = branches.into_iter().enumerate();
        let mut in_flight: FuturesUnordered<Running<'a, T>> = FuturesUnordered::new();
        let wanted = |i: usize| rebuild.is_none_or(|s| s.completed_indexes.contains(&i));
        let start = |i: usize, name: String, branch: Branch<'a, T>| -> Running<'a, T> {
            let item_id: Arc<str> = Arc::from(id::item_id(&batch_id, i));
            let item: LocalBoxFuture<'a, (usize, Result<T, Error>)> = match self.nesting {
                Nesting::Nested => {
                    let op = OpIdent { id: item_id, site: self.call.site };
                    let call =
                        scope.call_with(op, self.call.method, OperationType::Context, self.item_sub_type, name.into());
                    let child = ChildContext::new(
                        call,
                        async move |c: DurableContext| branch(c).await,
                        self.item_serdes.clone(),
                    );
                    Box::pin(async move { (i, child.await) })
                }
                Nesting::Flat => {
                    let virtual_ctx = self.call.ctx.virtual_child(batch_id.clone(), item_id);
                    let label = format!("{} {} item {i}", self.call.method, self.call.label());
                    Box::pin(async move {
                        let outcome = match AssertUnwindSafe(branch(virtual_ctx)).catch_unwind().await {
                            Ok(r) => r,
                            Err(panic) => Err(Error::from_object(
                                ErrorKind::User,
                                ErrorObject::new(
                                    PANIC_ERROR_TYPE,
                                    format!("{label} panicked: {}", panic_message(panic.as_ref())),
                                ),
                            )),
                        };
                        (i, outcome)
                    })
                }
            };
            // Items run concurrently: their operations are met in any order (as a set).
            Concurrent::new(&engine, batch_id.clone(), rebuild.is_some(), item)
        };
        let (mut successes, mut failures) = (0, 0);
        let mut reason = (total == 0).then_some(CompletionReason::AllCompleted);
        while reason.is_none() {
            while in_flight.len() < max {
                let Some((i, (name, branch))) = pending.next() else { break };
                if !wanted(i) {
                    continue;
                }
                started[i] = true;
                in_flight.push(start(i, name, branch));
            }
            let Some((i, outcome)) = in_flight.next().await else { break };
            match outcome {
                Ok(v) => {
                    successes += 1;
                    results[i] = Some(Ok(v));
                }
                Err(e) => {
                    failures += 1;
                    results[i] = Some(Err(e.into_object()));
                }
            }
            reason = match rebuild {
                Some(s) if successes + failures == s.completed_indexes.len() => Some(s.completion_reason),
                Some(_) => None,
                None => completion_of(self.completion, total, successes, failures),
            };
        }
        drop(in_flight);
        self.settle_history(&results)?;
        let reason = reason.unwrap_or(CompletionReason::AllCompleted);
        let rebuilt_started: Vec<usize> = rebuild.map(|s| s.started_indexes.clone()).unwrap_or_default();
        let all: Vec<BatchItem<T>> = results
            .into_iter()
            .enumerate()
            .filter(|(i, r)| r.is_some() || started[*i] || rebuilt_started.contains(i))
            .map(|(index, r)| match r {
                Some(Ok(v)) => BatchItem { index, status: ItemStatus::Succeeded, result: Some(v), error: None },
                Some(Err(e)) => BatchItem { index, status: ItemStatus::Failed, result: None, error: Some(e) },
                None => BatchItem { index, status: ItemStatus::Started, result: None, error: None },
            })
            .collect();
        Ok(BatchResult { all, completion_reason: reason })
    }

    /// After the items: those the batch did not finish (never admitted, or dropped when it
    /// completed) are not expected again; everything else recorded in the batch's context
    /// must have been met.
    fn settle_history(&self, results: &[Option<Result<T, ErrorObject>>]) -> Result<(), Diverged> {
        let engine = self.call.engine();
        let unfinished: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_none()).collect();
        match self.nesting {
            Nesting::Nested => {
                let ids: Vec<String> = unfinished.iter().map(|i| id::item_id(&self.call.id, *i)).collect();
                engine.history().excuse(ids.iter().map(String::as_str));
            }
            // A flat item's operations hang off the batch itself: which of them belong to
            // an unfinished item cannot be told.
            Nesting::Flat if !unfinished.is_empty() => engine.history().relax(&self.call.id),
            Nesting::Flat => {}
        }
        engine.close_context(&self.call.id, &|| self.call.describe())
    }
}

/// A `map`, ready to be awaited. Created by [`DurableContext::map`].
#[must_use = "a map does nothing until awaited"]
pub struct Map<'a, T, I> {
    batch: Batch<'a, T>,
    items: Vec<I>,
    /// Makes the branch of one item.
    make: Box<dyn Fn(I, usize) -> Branch<'a, T> + 'a>,
    namer: Option<ItemNamer<'a, I>>,
}

/// Names one item from the item and its index.
type ItemNamer<'a, I> = Box<dyn Fn(&I, usize) -> String + 'a>;

/// A `parallel`, ready to be awaited. Created by [`DurableContext::parallel`].
#[must_use = "a parallel does nothing until awaited"]
pub struct Parallel<'a, T> {
    batch: Batch<'a, T>,
}

impl DurableContext {
    /// Runs `f` on every item, each in its own child context (`MapIteration` named
    /// `map-item-<i>`, or see [`Map::item_namer`]), at most [`Map::max_concurrency`] at a
    /// time, until the [`CompletionConfig`] is met (by default the first failure stops it).
    /// Items are admitted in index order; an item waiting on a timer or a callback keeps its
    /// slot. The batch operation records a [`BatchResult`] and succeeds even when items
    /// failed.
    pub fn map<'a, I, T, F>(&self, name: impl Into<Name>, items: Vec<I>, f: F) -> Map<'a, T, I>
    where
        I: 'a,
        F: AsyncFn(DurableContext, I, usize) -> Result<T, Error> + 'a,
        T: Serialize + DeserializeOwned + 'static,
    {
        let f = std::rc::Rc::new(f);
        let make = move |item: I, i: usize| -> Branch<'a, T> {
            let f = f.clone();
            Box::new(move |c: DurableContext| Box::pin(async move { f(c, item, i).await }))
        };
        Map {
            items,
            make: Box::new(make),
            namer: None,
            batch: Batch::new(self, name.into(), "map", (SubType::MAP, SubType::MAP_ITERATION), "MapResult"),
        }
    }

    /// Runs branches (added with [`Parallel::branch`]) each in its own child context
    /// (`ParallelBranch` named `parallel-branch-<i>` or the given name), at most
    /// [`Parallel::max_concurrency`] at a time, until the [`CompletionConfig`] is met. The
    /// batch operation records a [`BatchResult`] and succeeds even when branches failed.
    pub fn parallel<'a, T>(&self, name: impl Into<Name>) -> Parallel<'a, T>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let kinds = (SubType::PARALLEL, SubType::PARALLEL_BRANCH);
        Parallel { batch: Batch::new(self, name.into(), "parallel", kinds, "ParallelResult") }
    }
}

macro_rules! batch_options {
    ($ty:ident $(, $item:ident)?) => {
        impl<'a, T: Serialize + DeserializeOwned + 'static $(, $item: 'a)?> $ty<'a, T $(, $item)?> {
            /// At most `n` items run at once (items waiting on a timer or callback count).
            pub fn max_concurrency(mut self, n: usize) -> Self {
                self.batch.max_concurrency = Some(n);
                self
            }

            /// When the batch is complete (default: the first failure completes it).
            pub fn completion(mut self, config: CompletionConfig) -> Self {
                self.batch.completion = config;
                self
            }

            /// [`Nesting::Nested`] (the default) or [`Nesting::Flat`].
            pub fn nesting(mut self, nesting: Nesting) -> Self {
                self.batch.nesting = nesting;
                self
            }

            /// The codec of each item's result in its own context (default [`Json`]).
            pub fn item_serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
                self.batch.item_serdes = Arc::new(serdes);
                self
            }

            /// The codec of the whole [`BatchResult`], recorded as the batch operation's
            /// result (default [`Json`]). A result it encodes to more than the inline limit
            /// is recorded as a summary instead, and a replay rebuilds it from the items.
            pub fn serdes(mut self, serdes: impl Serdes<BatchResult<T>> + 'static) -> Self {
                self.batch.serdes = Arc::new(serdes);
                self
            }
        }

        impl<'a, T: Serialize + DeserializeOwned + 'static $(, $item: 'a)?> IntoFuture for $ty<'a, T $(, $item)?> {
            type Output = Result<BatchResult<T>, Error>;
            type IntoFuture = LocalBoxFuture<'a, Result<BatchResult<T>, Error>>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(drive(self.into_batch()))
            }
        }
    };
}

batch_options!(Map, I);
batch_options!(Parallel);

impl<'a, T: Serialize + DeserializeOwned + 'static, I: 'a> Map<'a, T, I> {
    /// Names the items: `namer(&item, index)` instead of `map-item-<index>` (AWS's
    /// `item_namer`). The names are part of the recorded history: changing them breaks
    /// executions in flight.
    pub fn item_namer(mut self, namer: impl Fn(&I, usize) -> String + 'a) -> Self {
        self.namer = Some(Box::new(namer));
        self
    }

    fn into_batch(self) -> Batch<'a, T> {
        let Map { mut batch, items, make, namer } = self;
        batch.branches = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let name = namer.as_ref().map_or_else(|| format!("map-item-{i}"), |n| n(&item, i));
                (name, make(item, i))
            })
            .collect();
        batch
    }
}

impl<'a, T: Serialize + DeserializeOwned + 'static> Parallel<'a, T> {
    /// Adds a branch named `parallel-branch-<i>`.
    pub fn branch<F>(self, f: F) -> Self
    where
        F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
    {
        let i = self.batch.branches.len();
        self.branch_named(format!("parallel-branch-{i}"), f)
    }

    /// Adds a named branch.
    pub fn branch_named<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
    {
        let branch: Branch<'a, T> = Box::new(move |c: DurableContext| Box::pin(f(c)));
        self.batch.branches.push((name.into(), branch));
        self
    }

    fn into_batch(self) -> Batch<'a, T> {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_rules() {
        let all = CompletionConfig::default();
        assert_eq!(completion_of(all, 3, 1, 1), Some(CompletionReason::FailureToleranceExceeded), "fail fast");
        assert_eq!(completion_of(all, 3, 2, 0), None);
        assert_eq!(completion_of(all, 3, 3, 0), Some(CompletionReason::AllCompleted));
        let first = CompletionConfig::first_successful();
        assert_eq!(completion_of(first, 3, 0, 2), None, "failures are tolerated while a success may come");
        assert_eq!(completion_of(first, 3, 1, 2), Some(CompletionReason::MinSuccessfulReached));
        let pct = CompletionConfig::default().tolerated_failure_percentage(50.0);
        assert_eq!(completion_of(pct, 4, 0, 2), None);
        assert_eq!(completion_of(pct, 4, 0, 3), Some(CompletionReason::FailureToleranceExceeded));
        let all_done = CompletionConfig::all_completed();
        assert_eq!(completion_of(all_done, 2, 0, 2), Some(CompletionReason::AllCompleted));
        let json = serde_json::to_string(&BatchResult::<u8> {
            all: vec![BatchItem { index: 0, status: ItemStatus::Succeeded, result: Some(1), error: None }],
            completion_reason: CompletionReason::AllCompleted,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"all":[{"index":0,"status":"SUCCEEDED","result":1,"error":null}],"completionReason":"ALL_COMPLETED"}"#
        );
    }
}
