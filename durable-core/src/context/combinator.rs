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
use std::task::Poll;

use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{DurableContext, Name, OpIdent};
use crate::engine::{Expect, park};
use crate::error::{Error, ErrorKind};
use crate::model::{ErrorObject, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType};

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

/// What a combinator records: how many members it had and which settled, in order.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    members: usize,
    settled: Vec<usize>,
}

type Member<'a, T> = LocalBoxFuture<'a, Result<T, Error>>;

/// The member count and the outcomes that decided, in settlement order.
type Settled<T> = (usize, Vec<(usize, Result<T, Error>)>);

fn members<'a, T, I>(futures: I) -> Vec<Member<'a, T>>
where
    I: IntoIterator,
    I::Item: IntoFuture<Output = Result<T, Error>>,
    <I::Item as IntoFuture>::IntoFuture: 'a,
{
    futures.into_iter().map(|f| Box::pin(f.into_future()) as Member<'a, T>).collect()
}

impl DurableContext {
    /// Awaits every member; the first failure (in the order failures happen) ends it with
    /// that member's error, and the members still running are cancelled. The values come
    /// back in the members' order.
    ///
    /// Members are durable futures created before the call (their ids are fixed then),
    /// typically `ctx.step(..).into_future()`; any future whose output is
    /// `Result<T, Error>` works, e.g. an `async` block running several operations.
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// use durable_core::{DurableContext, Error};
    ///
    /// async fn both(ctx: DurableContext) -> Result<Vec<u32>, Error> {
    ///     let a = ctx.step("price a", async |_| Ok::<_, Error>(3)).into_future();
    ///     let b = ctx.step("price b", async |_| Ok::<_, Error>(4)).into_future();
    ///     ctx.all("prices", [a, b]).await
    /// }
    /// ```
    pub fn all<'a, T, I>(&self, name: impl Into<Name>, futures: I) -> impl Future<Output = Result<Vec<T>, Error>> + 'a
    where
        I: IntoIterator,
        I::Item: IntoFuture<Output = Result<T, Error>>,
        <I::Item as IntoFuture>::IntoFuture: 'a,
        T: 'a,
    {
        let run = self.combine(Kind::All, name.into(), members(futures));
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
    pub fn all_settled<'a, T, I>(
        &self,
        name: impl Into<Name>,
        futures: I,
    ) -> impl Future<Output = Result<Vec<Result<T, Error>>, Error>> + 'a
    where
        I: IntoIterator,
        I::Item: IntoFuture<Output = Result<T, Error>>,
        <I::Item as IntoFuture>::IntoFuture: 'a,
        T: 'a,
    {
        let run = self.combine(Kind::AllSettled, name.into(), members(futures));
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
    pub fn any<'a, T, I>(&self, name: impl Into<Name>, futures: I) -> impl Future<Output = Result<T, Error>> + 'a
    where
        I: IntoIterator,
        I::Item: IntoFuture<Output = Result<T, Error>>,
        <I::Item as IntoFuture>::IntoFuture: 'a,
        T: 'a,
    {
        let name = name.into();
        let label = name.as_deref().unwrap_or("(unnamed)").to_owned();
        let run = self.combine(Kind::Any, name, members(futures));
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
    /// use std::future::IntoFuture;
    /// use std::time::Duration;
    /// use durable_core::{DurableContext, Error};
    ///
    /// async fn approve_or_expire(ctx: DurableContext) -> Result<bool, Error> {
    ///     let approval = ctx.create_callback::<bool>("approval").await?;
    ///     let decided = approval.result();
    ///     let expired = ctx.wait("deadline", Duration::from_secs(3600));
    ///     let expired = async move { expired.await.map(|()| false) };
    ///     ctx.race("approval or deadline", [Box::pin(decided) as futures::future::LocalBoxFuture<_>, Box::pin(expired)]).await
    /// }
    /// ```
    pub fn race<'a, T, I>(&self, name: impl Into<Name>, futures: I) -> impl Future<Output = Result<T, Error>> + 'a
    where
        I: IntoIterator,
        I::Item: IntoFuture<Output = Result<T, Error>>,
        <I::Item as IntoFuture>::IntoFuture: 'a,
        T: 'a,
    {
        let run = self.combine(Kind::Race, name.into(), members(futures));
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
        let ctx = self.clone();
        let op = self.next_op();
        combine(ctx, op, kind, name, members)
    }
}

async fn combine<'a, T>(
    ctx: DurableContext,
    op: OpIdent,
    kind: Kind,
    name: Name,
    members: Vec<Member<'a, T>>,
) -> Result<Settled<T>, Error> {
    let engine = ctx.engine.clone();
    name.validate().map_err(Error::validation)?;
    let total = members.len();
    if total == 0 && matches!(kind, Kind::Any | Kind::Race) {
        return Err(Error::validation(format!(
            "{} {} has no members: it could never settle",
            kind.method(),
            name.as_deref().unwrap_or("(unnamed)")
        )));
    }
    let parent = ctx.scope.parent_id.clone();
    let expect = Expect {
        op_type: OperationType::Context,
        sub_type: kind.sub_type(),
        name: name.as_deref(),
        parent_id: parent.as_deref(),
    };
    let describe = || op.site.describe(kind.method());
    let Ok(recorded) = engine.visit(&op.id, &expect, &describe) else {
        return park().await;
    };
    let mut slots: Vec<Option<Member<'a, T>>> = members.into_iter().map(Some).collect();
    let update = |action| {
        OperationUpdate::new(op.id.clone(), OperationType::Context, action).placed(
            parent.clone(),
            name.shared(),
            SubType::new(kind.sub_type()),
        )
    };
    match recorded {
        Some(rec) if rec.status == OperationStatus::Succeeded => {
            // Replay: await the members that decided, in the recorded order.
            let payload = rec.context_details.and_then(|d| d.result).unwrap_or_default();
            let record = match serde_json::from_str::<Record>(&payload) {
                Ok(r) if r.members == total && r.settled.iter().all(|i| *i < total) => r,
                Ok(r) => {
                    engine.fail_nondeterministic(&op.id, describe(), None, None, format!(
                        "non-deterministic replay at {} (operation {}): the history recorded {} with {} members, but \
                         the code now passes {total}",
                        describe(),
                        op.id,
                        kind.method(),
                        r.members
                    ));
                    return park().await;
                }
                Err(e) => {
                    engine.fail_nondeterministic(
                        &op.id,
                        describe(),
                        None,
                        None,
                        format!(
                            "the recorded outcome of {} at {} (operation {}) is unreadable ({e}): {payload:?}",
                            kind.method(),
                            describe(),
                            op.id
                        ),
                    );
                    return park().await;
                }
            };
            let mut settled = Vec::with_capacity(record.settled.len());
            for i in record.settled {
                let Some(member) = slots[i].take() else {
                    engine.fail_nondeterministic(
                        &op.id,
                        describe(),
                        None,
                        None,
                        format!(
                            "the recorded outcome of {} at {} (operation {}) lists member {i} twice",
                            kind.method(),
                            describe(),
                            op.id
                        ),
                    );
                    return park().await;
                };
                settled.push((i, member.await));
            }
            return Ok((total, settled));
        }
        Some(_) => {}
        None => engine.enqueue(update(OperationAction::Start)),
    }
    let mut settled: Vec<(usize, Result<T, Error>)> = Vec::new();
    while !kind.decided(total, &settled) {
        let next = poll_fn(|cx| {
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(member) = slot
                    && let Poll::Ready(r) = member.as_mut().poll(cx)
                {
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
    drop(slots);
    let record = Record { members: total, settled: settled.iter().map(|(i, _)| *i).collect() };
    let mut done = update(OperationAction::Succeed);
    done.payload = Some(serde_json::to_string(&record).expect("a record serialises").into());
    // Acknowledged before the caller sees the result: whatever it does next (a step with a
    // side effect) happens only once the decision is durable.
    engine.enqueue_sync(done).await;
    Ok((total, settled))
}
