//! Durable combinators (`all`, `all_settled`, `any`, `race`) and sagas: first run, replay
//! after suspension, recorded decisions that later events cannot change, and error paths.
//! (`patched` and changed code replaying old executions need stable ids: they are tested
//! through `#[durable]` in durable/tests/versioning.rs.)

use std::cell::{Cell, RefCell};
use std::future::IntoFuture;
use std::rc::Rc;
use std::time::Duration;

use durable_core::model::{ErrorObject, ExecutionStatus, OperationStatus, OperationType};
use durable_core::retry::presets;
use durable_core::testing::{TestExecution, TestRunner};
use durable_core::{ALL_FAILED_ERROR_TYPE, COMPENSATION_FAILED_ERROR_TYPE, DurableContext, Error, ErrorKind, handler};
use futures::future::LocalBoxFuture;

type Boxed<'a, T> = LocalBoxFuture<'a, Result<T, Error>>;

fn context_record(run: &TestExecution, name: &str) -> serde_json::Value {
    let op = run.operation(name).unwrap_or_else(|| panic!("no operation {name}"));
    assert_eq!(op.op_type, OperationType::Context);
    let payload = op.context_details.as_ref().and_then(|d| d.result.as_deref()).expect("a recorded decision");
    serde_json::from_str(payload).unwrap()
}

#[tokio::test]
async fn all_returns_values_in_member_order_and_replays_without_rerunning() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let r = r.clone();
        async move {
            let members: Vec<Boxed<'_, u32>> = (1..=3u32)
                .map(|i| {
                    let r = r.clone();
                    ctx.step(format!("price {i}"), async move |_| {
                        r.set(r.get() + 1);
                        Ok(i * 10)
                    })
                    .into_future()
                })
                .collect();
            let prices = ctx.all("prices", members).await?;
            // Suspends: the next invocation replays the combinator.
            ctx.wait("cool down", Duration::from_secs(5)).await?;
            Ok::<_, Error>(prices)
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<Vec<u32>>().unwrap(), [10, 20, 30]);
    assert_eq!(run.invocations(), 2, "suspended once on the wait");
    assert_eq!(runs.get(), 3, "each step body ran once; the replay used the records");
    let prices = run.operation("prices").unwrap();
    assert_eq!(prices.sub_type.as_ref().unwrap().as_str(), "All");
    assert_eq!(prices.status, OperationStatus::Succeeded);
    let record = context_record(&run, "prices");
    assert_eq!(record["members"], 3);
    assert_eq!(record["settled"].as_array().unwrap().len(), 3);
    run.assert_well_formed();
}

#[tokio::test]
async fn all_fails_with_the_first_failure_and_cancels_the_rest() {
    let f = |ctx: DurableContext, (): ()| async move {
        let quick_failure = ctx.step("declined", async |_| Err::<u32, _>(Error::new("Declined", "card declined")));
        let quick_failure = quick_failure.no_retry().into_future();
        let slow = ctx.wait("slow", Duration::from_mins(1));
        let slow: Boxed<'_, u32> = Box::pin(async move { slow.await.map(|()| 1) });
        ctx.all("both", [quick_failure, slow]).await
    };
    let run = TestRunner::new().run(f, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("Declined"));
    // Decided by the failure alone (member 0), without waiting for the minute.
    assert_eq!(context_record(&run, "both")["settled"], serde_json::json!([0]));
    assert_eq!(run.invocations(), 1);
    assert_ne!(run.operation("slow").map(|o| o.status), Some(OperationStatus::Succeeded));
}

#[tokio::test]
async fn all_settled_reports_every_outcome() {
    let f = |ctx: DurableContext, (): ()| async move {
        let ok = ctx.step("ok", async |_| Ok(1u8)).into_future();
        let bad = ctx.step("bad", async |_| Err::<u8, _>(Error::new("Bad", "no"))).no_retry().into_future();
        let outcomes = ctx.all_settled("everything", [ok, bad]).await?;
        Ok::<_, Error>(
            outcomes
                .iter()
                .map(|o| o.as_ref().map_err(|e| e.error_type().unwrap().to_owned()).copied())
                .collect::<Vec<_>>(),
        )
    };
    let run = TestRunner::new().run(f, ()).await;
    let outcomes: Vec<Result<u8, String>> = run.result().unwrap();
    assert_eq!(outcomes, [Ok(1), Err("Bad".to_owned())]);
}

#[tokio::test]
async fn any_takes_the_first_success_and_aggregates_when_all_fail() {
    let f = |ctx: DurableContext, fail_all: bool| async move {
        let a = ctx.step("primary", async |_| Err::<String, _>(Error::new("Down", "primary down"))).no_retry();
        let b = ctx.step("fallback", async move |_| {
            if fail_all { Err(Error::new("Down", "fallback down")) } else { Ok("fallback".to_owned()) }
        });
        ctx.any("first healthy", [a.into_future(), b.no_retry().into_future()]).await
    };
    let runner = TestRunner::new();
    let run = runner.run(f, false).await;
    assert_eq!(run.result::<String>().unwrap(), "fallback");
    assert_eq!(context_record(&run, "first healthy")["settled"], serde_json::json!([0, 1]));

    let run = runner.run(f, true).await;
    let error = run.error().unwrap();
    assert_eq!(error.error_type.as_deref(), Some(ALL_FAILED_ERROR_TYPE));
    let members: Vec<ErrorObject> = serde_json::from_str(error.error_data.as_deref().unwrap()).unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[1].error_message.as_deref(), Some("fallback down"));
}

/// A callback raced against a deadline: the approval, or `false` when the hour is up.
async fn approval_race(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let cb = ctx.create_callback::<String>("approval").await?;
    let approved: Boxed<'_, String> = Box::pin(cb.result());
    let deadline = ctx.wait("deadline", Duration::from_hours(1));
    let expired: Boxed<'_, String> = Box::pin(async move { deadline.await.map(|()| "expired".to_owned()) });
    let winner = ctx.race("approval or deadline", [approved, expired]).await?;
    // Another suspension after the race: its replay must return the same winner.
    ctx.wait("afterwards", Duration::from_hours(2)).await?;
    Ok(winner)
}

#[tokio::test]
async fn race_records_its_winner_and_replays_it_after_the_loser_finishes() {
    let runner = TestRunner::new();
    let h = handler(approval_race);
    let arn = runner.start("race", None, Some("null".into())).await.unwrap();
    let waiting = runner.settle(&h, &arn).await;
    assert_eq!(waiting.status(), ExecutionStatus::Running);
    let id = runner.callback_ids(&arn).await.remove(0);
    runner.callback_success(&id, "\"approved by ana\"").await.unwrap();
    // The next invocations replay the race after the deadline has fired too (the clock
    // skips past it to reach "afterwards"): the recorded winner stays the callback.
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.result::<String>().unwrap(), "approved by ana");
    assert_eq!(context_record(&run, "approval or deadline")["settled"], serde_json::json!([0]));
    assert!(run.invocations() >= 3);

    // Nobody answers: the deadline wins, and a late answer changes nothing.
    let arn = runner.start("race", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    runner.advance(Duration::from_hours(1));
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    let late = runner.callback_success(&id, "\"too late\"").await;
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.result::<String>().unwrap(), "expired", "late answer: {late:?}");
    assert_eq!(context_record(&run, "approval or deadline")["settled"], serde_json::json!([1]));
}

#[tokio::test]
async fn combinator_validation_and_changed_member_counts() {
    let f = |ctx: DurableContext, (): ()| async move {
        let none: Vec<Boxed<'_, u8>> = Vec::new();
        ctx.race("nothing", none).await
    };
    let run = TestRunner::new().run(f, ()).await;
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("ValidationError"));
    assert!(run.operation("nothing").is_none(), "nothing was checkpointed");
}

// ---- saga ----

#[derive(Default)]
struct Ledger {
    actions: RefCell<Vec<String>>,
}

async fn trip(ctx: DurableContext, fail_payment: bool, ledger: Rc<Ledger>) -> Result<String, Error> {
    let saga = ctx.saga();
    saga.compensation_retry(presets::none());
    let l = &ledger;
    saga.run(async {
        let flight = saga
            .step("book flight", async |_| {
                l.actions.borrow_mut().push("book flight".into());
                Ok("FL-1".to_owned())
            })
            .compensate(async |_, flight: String| {
                l.actions.borrow_mut().push(format!("cancel {flight}"));
                Ok(())
            })
            .await?;
        // A suspension between the steps: compensations registered before it are
        // registered again by the replay.
        ctx.wait("think", Duration::from_secs(30)).await?;
        let hotel = saga
            .step("book hotel", async |_| {
                l.actions.borrow_mut().push("book hotel".into());
                Ok("HT-2".to_owned())
            })
            .compensate(async |_, hotel: String| {
                l.actions.borrow_mut().push(format!("cancel {hotel}"));
                Ok(())
            })
            .await?;
        saga.step(
            "pay",
            async |_| {
                if fail_payment { Err(Error::new("PaymentDeclined", "card declined")) } else { Ok(()) }
            },
        )
        .retry(presets::none())
        .await?;
        Ok(format!("{flight}+{hotel}"))
    })
    .await
}

#[tokio::test]
async fn a_failed_saga_compensates_in_reverse_order_once() {
    let ledger = Rc::new(Ledger::default());
    let l = ledger.clone();
    let f = move |ctx: DurableContext, fail: bool| trip(ctx, fail, l.clone());
    let runner = TestRunner::new();
    let run = runner.run(f.clone(), true).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("PaymentDeclined"));
    assert_eq!(*ledger.actions.borrow(), ["book flight", "book hotel", "cancel HT-2", "cancel FL-1"]);
    let cancel_hotel = run.operation("compensate book hotel").unwrap();
    assert_eq!(cancel_hotel.status, OperationStatus::Succeeded);
    assert!(run.operation("compensate book flight").is_some());

    ledger.actions.borrow_mut().clear();
    let run = runner.run(f, false).await;
    assert_eq!(run.result::<String>().unwrap(), "FL-1+HT-2");
    assert_eq!(*ledger.actions.borrow(), ["book flight", "book hotel"], "no compensation on success");
}

#[tokio::test]
async fn failed_compensations_are_reported_together() {
    let f = |ctx: DurableContext, (): ()| async move {
        let saga = ctx.saga();
        saga.compensation_retry(presets::none());
        saga.run(async {
            saga.step("reserve", async |_| Ok(1u8))
                .compensate(async |_, _: u8| Err::<(), _>(Error::new("Stuck", "cannot release")))
                .await?;
            Err::<(), _>(Error::new("Later", "later step failed"))
        })
        .await
    };
    let run = TestRunner::new().run(f, ()).await;
    let error = run.error().unwrap();
    assert_eq!(error.error_type.as_deref(), Some(COMPENSATION_FAILED_ERROR_TYPE));
    assert!(error.error_message.as_deref().unwrap().contains("Later"), "{error:?}");
    let data: serde_json::Value = serde_json::from_str(error.error_data.as_deref().unwrap()).unwrap();
    assert_eq!(data[0]["step"], "reserve");
    assert_eq!(data[0]["error"]["ErrorType"], "Stuck");
    let _ = ErrorKind::Compensation;
}
