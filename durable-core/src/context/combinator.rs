//! Durable combinators: `all`, `all_settled`, `any` and `race` over durable futures.
//!
//! A combinator is one CONTEXT operation (sub-type `All`, `AllSettled`, `Any` or `Race`)
//! beside its members, which are ordinary operations created before it, so their ids are
//! fixed when they are created. When the combinator decides, it records which members
//! settled, in the order they settled: `{"members":3,"settled":[2]}`. A replay awaits
//! exactly those members in that order (they replay from their own records) and reaches
//! the same decision, whatever has finished since: a race has the same winner on every
//! replay. Members that did not take part in the decision are dropped (cancelled) both
//! times.

use std::future::{Future, IntoFuture, poll_fn};
use std::sync::Arc;
use std::task::Poll;

use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{DurableContext, Name};
use crate::engine::{Call, Concurrent, Lifecycle, Next, Outcome, Region, Trace, drive, park};
use crate::error::{Error, ErrorKind};
use crate::model::{ErrorObject, Operation, OperationStatus, OperationType};

/// The error type of `any` when every member failed.
pub const ALL_FAILED_ERROR_TYPE: &str = "AllMembersFailedError";

/// Which combinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    All,
    AllSettled,
    Any,
    Race,
}

impl Kind {
    fn sub_type(self) -> &'static str {
        match self {
            Kind::All => "All",
            Kind::AllSettled => "AllSettled",
            Kind::Any => "Any",
            Kind::Race => "Race",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Kind::All => "all",
            Kind::AllSettled => "all_settled",
            Kind::Any => "any",
            Kind::Race => "race",
        }
    }

    /// Whether the outcomes so far (in settlement order) decide the result.
    fn decided<T>(self, total: usize, settled: &[(usize, Result<T, Error>)]) -> bool {
        let last_ok = settled.last().map(|(_, r)| r.is_ok());
        match self {
            Kind::All => settled.len() == total || last_ok == Some(false),
            Kind::AllSettled => settled.len() == total,
            Kind::Any => settled.len() == total || last_ok == Some(true),
            Kind::Race => !settled.is_empty() || total == 0,
        }
    }
}

/// What a combinator records: how many members it had, which settled, in order, and the
/// operations of the members it dropped (their records are not met again on replay).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    members: usize,
    settled: Vec<usize>,
    /// Absent in records made before the replay order checks: a replay then stops
    /// checking the combinator's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped: Option<Vec<Arc<str>>>,
}

type Member<'a, T> = LocalBoxFuture<'a, Result<T, Error>>;

/// The member count and the outcomes that decided, in settlement order.
type Settled<T> = (usize, Vec<(usize, Result<T, Error>)>);

/// The members of a combinator: durable futures whose output is `Result<T, Error>`. A
/// tuple takes futures of different types (a step and a wait mapped to the same type,
/// say); a `Vec` or an array takes any number of one type. Step, child-context and other
/// operation builders are futures already (no `.into_future()`, no boxing).
pub trait Members<'a, T> {
    /// The members, boxed, in order.
    fn into_members(self) -> Vec<LocalBoxFuture<'a, Result<T, Error>>>;
}

impl<'a, T, F> Members<'a, T> for Vec<F>
where
    F: IntoFuture<Output = Result<T, Error>>,
    F::IntoFuture: 'a,
{
    fn into_members(self) -> Vec<Member<'a, T>> {
        self.into_iter().map(|f| Box::pin(f.into_future()) as Member<'a, T>).collect()
    }
}

impl<'a, T, F, const N: usize> Members<'a, T> for [F; N]
where
    F: IntoFuture<Output = Result<T, Error>>,
    F::IntoFuture: 'a,
{
    fn into_members(self) -> Vec<Member<'a, T>> {
        self.into_iter().map(|f| Box::pin(f.into_future()) as Member<'a, T>).collect()
    }
}

macro_rules! tuple_members {
    ($($name:ident)+) => {
        impl<'a, T, $($name),+> Members<'a, T> for ($($name,)+)
        where
            $($name: IntoFuture<Output = Result<T, Error>>, $name::IntoFuture: 'a,)+
        {
            #[allow(non_snake_case, reason = "the members are named by their type parameters")]
            fn into_members(self) -> Vec<Member<'a, T>> {
                let ($($name,)+) = self;
                vec![$(Box::pin($name.into_future()) as Member<'a, T>),+]
            }
        }
    };
}

tuple_members!(A);
tuple_members!(A B);
tuple_members!(A B C);
tuple_members!(A B C D);
tuple_members!(A B C D E);
tuple_members!(A B C D E G);
tuple_members!(A B C D E G H);
tuple_members!(A B C D E G H I);
tuple_members!(A B C D E G H I J);
tuple_members!(A B C D E G H I J K);
tuple_members!(A B C D E G H I J K L);
tuple_members!(A B C D E G H I J K L M);

impl DurableContext {
    /// Awaits every member; the first failure (in the order failures happen) ends it with
    /// that member's error, and the members still running are cancelled. The values come
    /// back in the members' order.
    ///
    /// Members are durable futures created before the call (their ids are fixed then): a
    /// tuple of them, or a `Vec` or array of one type (see [`Members`]). Any future whose
    /// output is `Result<T, Error>` works, e.g. an `async` block running several
    /// operations.
    ///
    /// ```
    /// use durable_core::{DurableContext, Result};
    ///
    /// async fn both(ctx: DurableContext) -> Result<Vec<u32>> {
    ///     let a = ctx.step("price a", async |_| Ok(3));
    ///     let b = ctx.step("price b", async |_| Ok(4));
    ///     ctx.all("prices", (a, b)).await
    /// }
    /// ```
    pub fn all<'a, T: 'a>(
        &self,
        name: impl Into<Name>,
        members: impl Members<'a, T>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + 'a {
        let run = self.combine(Kind::All, name.into(), members.into_members());
        async move {
            let (total, settled) = run.await?;
            let mut values: Vec<Option<T>> = std::iter::repeat_with(|| None).take(total).collect();
            for (i, r) in settled {
                values[i] = Some(r?);
            }
            Ok(values.into_iter().map(|v| v.expect("all members settled")).collect())
        }
    }

    /// Awaits every member and returns each outcome, in the members' order. It never
    /// fails because a member did (the `Err` case is for a bad name or an aborted
    /// invocation).
    pub fn all_settled<'a, T: 'a>(
        &self,
        name: impl Into<Name>,
        members: impl Members<'a, T>,
    ) -> impl Future<Output = Result<Vec<Result<T, Error>>, Error>> + 'a {
        let run = self.combine(Kind::AllSettled, name.into(), members.into_members());
        async move {
            let (total, settled) = run.await?;
            let mut outcomes: Vec<Option<Result<T, Error>>> = std::iter::repeat_with(|| None).take(total).collect();
            for (i, r) in settled {
                outcomes[i] = Some(r);
            }
            Ok(outcomes.into_iter().map(|o| o.expect("all members settled")).collect())
        }
    }

    /// The value of the first member to succeed; the others are cancelled. When every
    /// member fails, the error has type [`ALL_FAILED_ERROR_TYPE`] and its data is the JSON
    /// array of the members' errors, in the members' order. No members is a validation
    /// error.
    pub fn any<'a, T: 'a>(
        &self,
        name: impl Into<Name>,
        members: impl Members<'a, T>,
    ) -> impl Future<Output = Result<T, Error>> + 'a {
        let name = name.into();
        let label = name.as_deref().unwrap_or("(unnamed)").to_owned();
        let run = self.combine(Kind::Any, name, members.into_members());
        async move {
            let (total, settled) = run.await?;
            let mut errors: Vec<Option<ErrorObject>> = vec![None; total];
            for (i, r) in settled {
                match r {
                    Ok(v) => return Ok(v),
                    Err(e) => errors[i] = Some(e.into_object()),
                }
            }
            let errors: Vec<ErrorObject> = errors.into_iter().map(Option::unwrap_or_default).collect();
            let data = serde_json::to_string(&errors).unwrap_or_default();
            let mut object =
                ErrorObject::new(ALL_FAILED_ERROR_TYPE, format!("all {total} members of any {label:?} failed"));
            object.error_data = Some(data);
            Err(Error::from_object(ErrorKind::Combinator, object))
        }
    }

    /// The outcome (value or error) of the first member to settle; the others are
    /// cancelled. Replays return the same winner. No members is a validation error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use durable_core::{DurableContext, Result};
    ///
    /// async fn approve_or_expire(ctx: DurableContext) -> Result<bool> {
    ///     let approval = ctx.create_callback::<bool>("approval").await?;
    ///     let expired = ctx.wait("deadline", Duration::from_secs(3600));
    ///     ctx.race("approval or deadline", (approval.result(), async { expired.await.map(|()| false) })).await
    /// }
    /// ```
    pub fn race<'a, T: 'a>(
        &self,
        name: impl Into<Name>,
        members: impl Members<'a, T>,
    ) -> impl Future<Output = Result<T, Error>> + 'a {
        let run = self.combine(Kind::Race, name.into(), members.into_members());
        async move {
            let (_, mut settled) = run.await?;
            settled.pop().map_or_else(|| Err(Error::validation("race has no members")), |(_, r)| r)
        }
    }

    /// The shared engine of the four combinators: returns the member count and the
    /// outcomes that decided, in settlement order. The id is taken now, at the call.
    fn combine<'a, T: 'a>(
        &self,
        kind: Kind,
        name: Name,
        members: Vec<Member<'a, T>>,
    ) -> impl Future<Output = Result<Settled<T>, Error>> + 'a {
        let call = self.call(kind.method(), OperationType::Context, kind.sub_type(), name);
        drive(Combine { call, kind, members: members.into_iter().map(Some).collect(), recorded: None })
    }
}

/// A combinator's lifecycle: the members run as concurrent code of the combinator's
/// context; the decision is recorded, and replayed from its record.
struct Combine<'a, T> {
    call: Call,
    kind: Kind,
    members: Vec<Option<Member<'a, T>>>,
    /// The recorded decision's payload (a replay of a decided combinator).
    recorded: Option<Arc<str>>,
}

impl<'a, T: 'a> Lifecycle for Combine<'a, T> {
    type Output = Settled<T>;

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        if self.members.is_empty() && matches!(self.kind, Kind::Any | Kind::Race) {
            return Err(Error::validation(format!(
                "{} {} has no members: it could never settle",
                self.kind.method(),
                self.call.label()
            )));
        }
        Ok(())
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<Settled<T>> {
        match recorded {
            None => Next::Start { ack: false, attempt: 0 },
            Some(op) if op.status == OperationStatus::Succeeded => {
                self.recorded = Some(op.context_details.and_then(|d| d.result).unwrap_or_else(|| Arc::from("")));
                Next::Work(0)
            }
            Some(op) if op.status == OperationStatus::Started => Next::Work(0),
            Some(op) => Next::Return(Err(Error::from_object(
                ErrorKind::Combinator,
                op.context_details.and_then(|d| d.error).unwrap_or_default(),
            ))),
        }
    }

    async fn work(&mut self, _: u32) -> Outcome<Settled<T>> {
        match self.recorded.take() {
            Some(payload) => Outcome::Return(self.replay(&payload).await),
            None => self.decide().await,
        }
    }
}

impl<'a, T: 'a> Combine<'a, T> {
    /// The context the members run in: the combinator's own.
    fn key(&self) -> Arc<str> {
        Arc::from(self.call.parent_id().unwrap_or(""))
    }

    /// Replays a recorded decision: awaits the members that decided, in the recorded
    /// order (they replay from their own records).
    async fn replay(&mut self, payload: &str) -> Result<Settled<T>, Error> {
        let engine = self.call.engine().clone();
        let total = self.members.len();
        let record = match serde_json::from_str::<Record>(payload) {
            Ok(r) if r.members == total && r.settled.iter().all(|i| *i < total) => r,
            Ok(r) => {
                engine.diverge_at(
                    &self.call,
                    format!(
                        "non-deterministic replay at {} (operation {}): the history recorded {} with {} members, but                          the code now passes {total}",
                        self.call.describe(),
                        self.call.id,
                        self.kind.method(),
                        r.members
                    ),
                );
                return park().await;
            }
            Err(e) => {
                engine.diverge_at(
                    &self.call,
                    format!(
                        "the recorded outcome of {} at {} (operation {}) is unreadable ({e}): {payload:?}",
                        self.kind.method(),
                        self.call.describe(),
                        self.call.id
                    ),
                );
                return park().await;
            }
        };
        let key = self.key();
        let mut settled = Vec::with_capacity(record.settled.len());
        for i in record.settled {
            let Some(member) = self.members[i].take() else {
                engine.diverge_at(
                    &self.call,
                    format!(
                        "the recorded outcome of {} at {} (operation {}) lists member {i} twice",
                        self.kind.method(),
                        self.call.describe(),
                        self.call.id
                    ),
                );
                return park().await;
            };
            // Every operation of a member that decided is recorded: a new one diverges.
            settled.push((i, Concurrent::new(&engine, key.clone(), true, member).await));
        }
        match &record.dropped {
            Some(ids) => engine.history().excuse(ids.iter().map(|id| &**id)),
            None => engine.history().relax(&key),
        }
        Ok((total, settled))
    }

    /// Runs the members until the combinator decides, and records the decision.
    async fn decide(&mut self) -> Outcome<Settled<T>> {
        let engine = self.call.engine().clone();
        let key = self.key();
        let total = self.members.len();
        let trace = Trace::start(&engine, &key);
        // The operations each member met in this context, to know what a dropped one left.
        let mut lanes: Vec<Vec<Arc<str>>> = vec![Vec::new(); total];
        let mut settled: Vec<(usize, Result<T, Error>)> = Vec::new();
        while !self.kind.decided(total, &settled) {
            let next = poll_fn(|cx| {
                for (i, slot) in self.members.iter_mut().enumerate() {
                    let Some(member) = slot else { continue };
                    let before = engine.history().trace_len(&key);
                    let polled = {
                        let _region = Region::open(&engine, &key, false);
                        member.as_mut().poll(cx)
                    };
                    let after = engine.history().trace_len(&key);
                    lanes[i].extend(engine.history().traced(&key, before..after));
                    if let Poll::Ready(r) = polled {
                        *slot = None;
                        return Poll::Ready((i, r));
                    }
                }
                Poll::Pending
            })
            .await;
            settled.push(next);
        }
        // Members that did not decide are cancelled before the decision is recorded.
        self.members.clear();
        let mut dropped: Vec<Arc<str>> = Vec::new();
        for (i, lane) in lanes.into_iter().enumerate() {
            if !settled.iter().any(|(s, _)| *s == i) {
                dropped.extend(lane);
            }
        }
        drop(trace);
        {
            let mut history = engine.history();
            history.excuse(dropped.iter().map(|id| &**id));
            // Recorded operations of members this replay did not reach before deciding.
            dropped.extend(history.excuse_after(&key, &self.call.id));
        }
        dropped.sort_unstable();
        dropped.dedup();
        let record =
            Record { members: total, settled: settled.iter().map(|(i, _)| *i).collect(), dropped: Some(dropped) };
        let payload = serde_json::to_string(&record).expect("a record serialises");
        // Acknowledged before the caller sees the result: whatever it does next (a step with a
        // side effect) happens only once the decision is durable.
        Outcome::Succeed { value: (total, settled), payload: Some(payload), replay_children: false, ack: true }
    }
}
