//! Operations completed by the outside world: callbacks, `wait_for_callback`, chained
//! invokes; and `wait_for_condition`. First run, replay after suspension, error paths.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use durable_core::model::{ErrorObject, EventType, ExecutionStatus, OperationStatus, OperationType};
use durable_core::retry::{Jitter, presets};
use durable_core::serdes::FnSerdes;
use durable_core::service::{ServiceConfig, ServiceError};
use durable_core::store::MemoryStore;
use durable_core::testing::{TestExecution, TestRunner};
use durable_core::{DurableContext, Error, ErrorKind, WaitDecision, handler, poll_until};

fn types(run: &TestExecution) -> Vec<&'static str> {
    run.history.iter().map(|e| e.event_type.as_str()).collect()
}

async fn approval(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let cb = ctx.create_callback::<String>("approve").timeout(Duration::from_hours(1)).await?;
    let verdict = cb.result().await?;
    Ok(format!("{verdict} ({} chars of id)", cb.id().len()))
}

#[tokio::test]
async fn a_callback_suspends_until_completed_from_outside() {
    let runner = TestRunner::new();
    let arn = runner.start("approval", None, Some("null".into())).await.unwrap();
    let h = handler(approval);
    let waiting = runner.settle(&h, &arn).await;
    assert_eq!(waiting.status(), ExecutionStatus::Running, "suspended on the callback");
    let ids = runner.callback_ids(&arn).await;
    assert_eq!(ids.len(), 1);
    runner.callback_success(&ids[0], "\"approved\"").await.unwrap();
    let run = runner.drive(&h, &arn).await;
    let result: String = run.result().unwrap();
    assert!(result.starts_with("approved ("), "{result}");
    assert_eq!(
        types(&run),
        [
            "ExecutionStarted",
            "CallbackStarted",
            "InvocationCompleted",
            "CallbackSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ]
    );
    let started = &run.history[1];
    assert_eq!(started.details.callback_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(started.details.timeout, Some(3600));
    assert_eq!(started.details.heartbeat_timeout, Some(0));
    let done = &run.history[3];
    assert_eq!(done.details.result.as_ref().unwrap().payload.as_deref(), Some("\"approved\""));
    // The replayed create_callback returned the same id: it is the one on record.
    assert_eq!(runner.callback_ids(&arn).await, ids);
}

#[tokio::test]
async fn callback_failures_and_timeouts_surface_as_errors() {
    let runner = TestRunner::new();
    let h = handler(approval);
    let arn = runner.start("approval", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    runner.callback_failure(&id, ErrorObject::new("Rejected", "the manager said no")).await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("Rejected"));
    assert!(types(&run).contains(&"CallbackFailed"));

    // Nobody answers within the hour: Callback.Timeout, in modelled time.
    let arn = runner.start("approval", None, Some("null".into())).await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("Callback.Timeout"));
    let timed_out = run.history.iter().find(|e| e.event_type == EventType::CallbackTimedOut).unwrap();
    assert_eq!(
        timed_out.details.error.as_ref().unwrap().payload.as_ref().unwrap().error_type.as_deref(),
        Some("Callback.Timeout")
    );
    let started = run.history.iter().find(|e| e.event_type == EventType::CallbackStarted).unwrap();
    assert_eq!(timed_out.event_timestamp.as_millis() - started.event_timestamp.as_millis(), 3_600_000);
}

async fn heartbeats(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let cb = ctx.create_callback::<String>("job").heartbeat_timeout(Duration::from_secs(10)).await?;
    match cb.result().await {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == ErrorKind::CallbackTimedOut => Ok(format!("gave up: {}", e.error_type().unwrap())),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn heartbeats_keep_a_callback_alive_and_their_absence_times_it_out() {
    let runner = TestRunner::new();
    let h = handler(heartbeats);
    let arn = runner.start("hb", None, Some("null".into())).await.unwrap();
    runner.invoke_once(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    runner.advance(Duration::from_secs(8));
    runner.callback_heartbeat(&id).await.unwrap();
    runner.advance(Duration::from_secs(8));
    runner.callback_heartbeat(&id).await.unwrap();
    runner.advance(Duration::from_secs(8));
    runner.callback_success(&id, "\"done\"").await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.result::<String>().unwrap(), "done", "24 s in, alive thanks to two heartbeats");
    assert_eq!(run.invocations(), 2, "heartbeats do not wake the execution");

    let arn = runner.start("hb", None, Some("null".into())).await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.result::<String>().unwrap(), "gave up: Callback.Heartbeat");
}

#[tokio::test]
async fn forged_unknown_and_completed_callback_ids_are_refused_and_change_nothing() {
    let runner = TestRunner::new();
    let h = handler(approval);
    let arn = runner.start("approval", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    let before = runner.inspect(&arn).await.history.len();

    let mut forged = id.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [
        forged.as_str(),
        "garbage",
        "",
        "eyJhIjoiYXJuOm5vbmUiLCJvIjoieCIsInQiOiIwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMCJ9",
    ] {
        let err = runner.callback_success(bad, "1").await.unwrap_err();
        assert!(err.to_string().contains("callback"), "{bad}: {err}");
    }
    assert_eq!(runner.inspect(&arn).await.history.len(), before, "nothing changed");

    runner.callback_success(&id, "\"yes\"").await.unwrap();
    let again = runner.callback_success(&id, "\"twice\"").await.unwrap_err();
    assert!(again.to_string().contains("already SUCCEEDED"), "{again}");
    let run = runner.drive(&h, &arn).await;
    assert!(run.result::<String>().unwrap().starts_with("yes"));
}

#[tokio::test]
async fn a_callback_result_that_is_not_json_is_refused_and_changes_nothing() {
    let runner = TestRunner::new();
    let h = handler(approval);
    let arn = runner.start("approval", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    let before = runner.inspect(&arn).await.history.len();
    for bad in ["approved", "", "{\"ok\":", "\"approved\" twice", "NaN"] {
        let err = runner.callback_success(&id, bad).await.unwrap_err();
        let ServiceError::InvalidParameter(e) = &err else { panic!("{bad:?}: {err}") };
        assert_eq!(e.error_type.as_deref(), Some("InvalidParameterValueException"), "{bad:?}");
        assert!(err.to_string().contains("must be JSON text"), "{bad:?}: {err}");
    }
    let waiting = runner.inspect(&arn).await;
    assert_eq!(waiting.history.len(), before, "nothing recorded");
    let callback = waiting.operation("approve").unwrap();
    assert_eq!(callback.status, OperationStatus::Started, "still pending");

    runner.callback_success(&id, " \"approved\"\n").await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert!(run.result::<String>().unwrap().starts_with("approved ("));
}

async fn maybe(ctx: DurableContext, (): ()) -> Result<Option<String>, Error> {
    ctx.create_callback::<Option<String>>("maybe").await?.result().await
}

#[tokio::test]
async fn a_callback_completed_without_a_result_decodes_null() {
    let runner = TestRunner::new();
    let h = handler(maybe);
    let arn = runner.start("maybe", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    runner.service().callback_success(&id, None).await.unwrap();
    assert_eq!(runner.drive(&h, &arn).await.result::<Option<String>>().unwrap(), None);
}

/// A callback read by a plain-text codec (no JSON quotes).
async fn plain_text(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let text = FnSerdes::new(|s: &String| Ok(s.clone()), |p: &str| Ok(p.to_owned()));
    ctx.create_callback::<String>("note").serdes(text).await?.result().await
}

#[tokio::test]
async fn callbacks_with_a_non_json_codec_need_the_json_check_off() {
    let h = handler(plain_text);
    // On (the default): the service cannot know the callback's codec, so it refuses.
    let runner = TestRunner::new();
    let arn = runner.start("note", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    assert!(runner.callback_success(&id, "see you at 5").await.is_err());

    let config = ServiceConfig { require_json_callback_results: false, ..ServiceConfig::default() };
    let runner = TestRunner::with_store(Arc::new(MemoryStore::new()), config);
    let arn = runner.start("note", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);
    runner.callback_success(&id, "see you at 5").await.unwrap();
    assert_eq!(runner.drive(&h, &arn).await.result::<String>().unwrap(), "see you at 5");
}

#[tokio::test]
async fn wait_for_callback_submits_the_id_in_a_step_and_waits() {
    let submitted: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = submitted.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let seen = seen.clone();
        async move {
            ctx.wait_for_callback::<u32>("payment", async |id: String, _s| {
                seen.borrow_mut().push(id);
                Ok(())
            })
            .timeout(Duration::from_mins(30))
            .await
        }
    };
    let runner = TestRunner::new();
    let h = handler(f);
    let arn = runner.start("wfc", None, Some("null".into())).await.unwrap();
    runner.settle(&h, &arn).await;
    let id = submitted.borrow()[0].clone();
    runner.callback_success(&id, "42").await.unwrap();
    let run = runner.drive(&h, &arn).await;
    assert_eq!(run.result::<u32>().unwrap(), 42);
    assert_eq!(submitted.borrow().len(), 1, "the submitter step is not re-run on replay");
    assert_eq!(
        types(&run),
        [
            "ExecutionStarted",
            "ContextStarted",
            "CallbackStarted",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
            "CallbackSucceeded",
            "ContextSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ]
    );
    let names: Vec<_> = run.history.iter().map(|e| e.name.as_deref().unwrap_or("")).collect();
    assert_eq!(names[1], "payment");
    assert_eq!(names[2], "payment create callback id");
    assert_eq!(names[3], "payment submitter");
    let ctx_op = run.operation("payment").unwrap();
    assert_eq!(ctx_op.sub_type.as_ref().unwrap().as_str(), "WaitForCallback");

    // A failing submitter fails the operation with its error.
    let g = |ctx: DurableContext, (): ()| async move {
        let r = ctx
            .wait_for_callback::<u32>("pay", async |_id: String, _s| Err(Error::new("Unreachable", "queue down")))
            .retry(presets::none())
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CallbackSubmitter);
        assert_eq!(e.error_type(), Some("Unreachable"));
        Ok::<_, Error>(())
    };
    assert_eq!(runner.run(g, ()).await.status(), ExecutionStatus::Succeeded);
}

async fn double(ctx: DurableContext, n: u32) -> Result<u32, Error> {
    ctx.step("double", async |_| Ok(n * 2)).await
}

async fn refuse(_ctx: DurableContext, n: u32) -> Result<u32, Error> {
    Err(Error::new("TooBig", format!("{n} is too big")))
}

async fn caller(ctx: DurableContext, n: u32) -> Result<(u32, String, String), Error> {
    let doubled: u32 = ctx.invoke("call double", "double:$LATEST", n).tenant_id("tenant-7").await?;
    let refused = ctx.invoke::<_, u32>("call refuse", "refuse", n).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Invoke);
    let missing = ctx.invoke::<_, u32>("call missing", "missing", n).await.unwrap_err();
    Ok((doubled, refused.error_type().unwrap().to_owned(), missing.error_type().unwrap().to_owned()))
}

#[tokio::test]
async fn chained_invokes_run_targets_as_executions_and_return_their_outcome() {
    let runner = TestRunner::new();
    runner.register("double", handler(double)).register("refuse", handler(refuse));
    let run = runner.run(caller, 21).await;
    let (doubled, refused, missing): (u32, String, String) = run.result().unwrap();
    assert_eq!(doubled, 42);
    assert_eq!(refused, "TooBig");
    assert_eq!(missing, "ResourceNotFoundException");
    run.assert_well_formed();
    let started: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::ChainedInvokeStarted).collect();
    assert_eq!(started.len(), 3);
    let first = &started[0].details;
    assert_eq!(first.function_name.as_deref(), Some("double:$LATEST"));
    assert_eq!(first.tenant_id.as_deref(), Some("tenant-7"));
    assert_eq!(first.input.as_ref().unwrap().payload.as_deref(), Some("21"));
    assert_eq!(first.executed_version.as_deref(), Some("$LATEST"));
    let child = first.durable_execution_arn.clone().unwrap();
    assert!(types(&run).contains(&"ChainedInvokeSucceeded") && types(&run).contains(&"ChainedInvokeFailed"));
    // The durable target ran as an execution with its own history.
    let child_run = runner.inspect(&child).await;
    assert_eq!(child_run.status(), ExecutionStatus::Succeeded);
    assert_eq!(child_run.result::<u32>().unwrap(), 42);
    assert!(child_run.operation("double").is_some());
    let op = run.operation("call double").unwrap();
    assert_eq!(op.op_type, OperationType::ChainedInvoke);
    assert_eq!(op.status, OperationStatus::Succeeded);
}

#[tokio::test]
async fn wait_for_condition_polls_with_its_strategy_and_replays_from_the_last_state() {
    let checks = Rc::new(RefCell::new(0u32));
    let count = checks.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let count = count.clone();
        async move {
            ctx.wait_for_condition(
                "until ready",
                0u32,
                async |state: u32, s| {
                    *count.borrow_mut() += 1;
                    assert_eq!(s.attempt(), state + 1, "attempts count polls");
                    Ok(state + 1)
                },
                poll_until(|s: &u32| *s < 3)
                    .initial_delay(Duration::from_secs(2))
                    .backoff_rate(2.0)
                    .jitter(Jitter::None),
            )
            .await
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<u32>().unwrap(), 3);
    assert_eq!(*checks.borrow(), 3, "each poll ran once");
    let polls: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::StepSucceeded).collect();
    assert_eq!(polls.len(), 3);
    let delays: Vec<_> =
        polls.iter().map(|e| e.details.retry_details.as_ref().unwrap().next_attempt_delay_seconds).collect();
    assert_eq!(delays, [Some(2), Some(4), None], "backoff 2 s then 4 s, then done");
    let states: Vec<_> = polls.iter().map(|e| e.details.result.as_ref().unwrap().payload.clone().unwrap()).collect();
    assert_eq!(states.iter().map(|s| &**s).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(run.operation("until ready").unwrap().sub_type.as_ref().unwrap().as_str(), "WaitForCondition");

    // A custom strategy, and a failing check.
    let g = |ctx: DurableContext, (): ()| async move {
        let capped = ctx
            .wait_for_condition(
                "capped",
                10u32,
                async |s: u32, _| Ok(s + 10),
                |_: &u32, attempt: u32| {
                    if attempt < 2 { WaitDecision::Continue(Duration::from_secs(1)) } else { WaitDecision::Stop }
                },
            )
            .await?;
        let failed = ctx
            .wait_for_condition(
                "broken",
                0u32,
                async |_: u32, _| Err::<u32, _>(Error::new("Sensor", "offline")),
                poll_until(|_: &u32| true),
            )
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::WaitForCondition);
        assert_eq!(failed.error_type(), Some("Sensor"));
        Ok::<_, Error>(capped)
    };
    let run = runner.run(g, ()).await;
    assert_eq!(run.result::<u32>().unwrap(), 30);
    assert!(types(&run).contains(&"StepFailed"));
}

#[tokio::test]
async fn wait_for_condition_fails_when_its_strategy_gives_up() {
    // `poll_until` whose condition never holds: the last permitted poll fails the operation
    // (StepFailed, as AWS's conformance requirement 6-6 expects), it does not return the
    // unmet state.
    let checks = Rc::new(RefCell::new(0u32));
    let count = checks.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let count = count.clone();
        async move {
            let exhausted = ctx
                .wait_for_condition(
                    "never ready",
                    0u32,
                    async |s: u32, _| {
                        *count.borrow_mut() += 1;
                        Ok(s + 1)
                    },
                    poll_until(|_: &u32| true)
                        .max_attempts(3)
                        .initial_delay(Duration::from_secs(2))
                        .jitter(Jitter::None),
                )
                .await
                .unwrap_err();
            assert_eq!(exhausted.kind(), ErrorKind::WaitForCondition);
            // A custom strategy can give up with its own error.
            let refused = ctx
                .wait_for_condition(
                    "refused",
                    0u32,
                    async |s: u32, _| Ok(s + 1),
                    |_: &u32, _: u32| WaitDecision::Fail(ErrorObject::new("Refused", "no more polling")),
                )
                .await
                .unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::WaitForCondition);
            assert_eq!(refused.error_type(), Some("Refused"));
            Err::<(), _>(exhausted)
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    run.assert_well_formed();
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("MaxAttemptsExceeded"));
    assert_eq!(*checks.borrow(), 3, "three polls, each run once");
    assert_eq!(
        types(&run),
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
            "StepStarted",
            "StepFailed",
            "StepStarted",
            "StepFailed",
            "InvocationCompleted",
            "ExecutionFailed"
        ]
    );
    let delays: Vec<_> = run
        .history
        .iter()
        .filter(|e| e.event_type == EventType::StepSucceeded)
        .map(|e| e.details.retry_details.as_ref().unwrap().next_attempt_delay_seconds)
        .collect();
    assert_eq!(delays, [Some(2), Some(3)], "exponential backoff between the permitted polls");
    let op = run.operation("never ready").unwrap();
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(
        op.step_details.as_ref().unwrap().error.as_ref().unwrap().error_type.as_deref(),
        Some("MaxAttemptsExceeded")
    );
    assert_eq!(run.operation("refused").unwrap().status, OperationStatus::Failed);
}
