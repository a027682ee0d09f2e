//! The replay engine through the test runner: every operation on its first run, on replay
//! after a suspension, and on its error paths. These functions do not use `#[durable]`, so
//! their operations get positional ids.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use durable_core::model::{EventType, ExecutionStatus, OperationStatus, OperationType};
use durable_core::retry::{Backoff, Jitter, presets};
use durable_core::serdes::{FnSerdes, Postcard};
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, ErrorKind, handler};

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

#[tokio::test]
async fn steps_run_once_and_replay_across_a_wait() {
    let runs = counter();
    let r = runs.clone();
    let f = move |ctx: DurableContext, n: u32| {
        let r = r.clone();
        async move {
            let a = ctx
                .step("double", async |_| {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok(n * 2)
                })
                .await?;
            ctx.wait("nap", Duration::from_hours(1)).await?;
            let b = ctx
                .step("add", async |_| {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok(a + 1)
                })
                .await?;
            Ok::<_, Error>(b)
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, 20).await;
    assert_eq!(run.result::<u32>().unwrap(), 41);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "replay does not re-run finished steps");
    assert_eq!(run.invocations(), 2);
    run.assert_well_formed();
    assert_eq!(
        run.event_types().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "WaitStarted",
            "InvocationCompleted",
            "WaitSucceeded",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ]
    );
    let wait = run.history.iter().find(|e| e.event_type == EventType::WaitStarted).unwrap();
    assert_eq!(wait.details.duration, Some(3600), "the history keeps the modelled duration");
    let double = run.operation("double").unwrap();
    assert_eq!(double.step_details.as_ref().unwrap().result.as_deref(), Some("40"));
    assert_eq!(double.sub_type.as_ref().unwrap().as_str(), "Step");
}

#[tokio::test]
async fn failed_attempts_retry_with_their_delay_then_succeed() {
    let attempts = Rc::new(RefCell::new(Vec::new()));
    let seen = attempts.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let seen = seen.clone();
        async move {
            ctx.step("flaky", async |s| {
                seen.borrow_mut().push(s.attempt());
                if s.attempt() < 3 {
                    Err(Error::new("Transient", format!("attempt {}", s.attempt())))
                } else {
                    Ok("ok".to_owned())
                }
            })
            .retry(presets::fixed(Duration::from_secs(5)))
            .await
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<String>().unwrap(), "ok");
    assert_eq!(*attempts.borrow(), [1, 2, 3]);
    assert_eq!(run.invocations(), 3, "each retry suspends until its delay passed");
    let failed: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::StepFailed).collect();
    assert_eq!(failed.len(), 2);
    for (i, e) in failed.iter().enumerate() {
        let rd = e.details.retry_details.as_ref().unwrap();
        assert_eq!(rd.current_attempt, Some(i as u32 + 1));
        assert_eq!(rd.next_attempt_delay_seconds, Some(5));
        let err = e.details.error.as_ref().unwrap().payload.as_ref().unwrap();
        assert_eq!(err.error_type.as_deref(), Some("Transient"));
    }
    let ok = run.history.iter().find(|e| e.event_type == EventType::StepSucceeded).unwrap();
    assert_eq!(ok.details.retry_details.as_ref().unwrap().current_attempt, Some(3));
    // The second attempt started 5 s of modelled time after the first failed.
    let starts: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::StepStarted).collect();
    assert_eq!(starts[1].event_timestamp.as_millis() - failed[0].event_timestamp.as_millis(), 5000);
    run.assert_well_formed();
}

#[tokio::test]
async fn exhausted_or_filtered_retries_fail_the_step_and_the_error_can_be_handled() {
    let f = |ctx: DurableContext, (): ()| async move {
        let strategy =
            Backoff::exponential().max_attempts(2).jitter(Jitter::None).initial_delay(Duration::from_secs(1));
        let first =
            ctx.step("always", async |_| Err::<u8, _>(Error::new("Boom", "always fails"))).retry(strategy).await;
        let e = first.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Step);
        assert_eq!(e.error_type(), Some("Boom"));
        let filtered = ctx
            .step("fatal", async |_| Err::<u8, _>(Error::new("Fatal", "do not retry")))
            .retry(Backoff::exponential().retry_on_error_types(["Transient"]))
            .await;
        assert_eq!(filtered.unwrap_err().error_type(), Some("Fatal"));
        Ok::<_, Error>("handled")
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<String>().unwrap(), "handled");
    let always = run.operation("always").unwrap();
    assert_eq!(always.status, OperationStatus::Failed);
    assert_eq!(always.step_details.as_ref().unwrap().attempt, Some(2));
    let fatal = run.operation("fatal").unwrap();
    assert_eq!(fatal.step_details.as_ref().unwrap().attempt, Some(1), "a filtered error is not retried");
    assert_eq!(run.invocations(), 2);
}

#[tokio::test]
async fn a_failed_step_fails_the_execution_identically_on_replay() {
    let f = |ctx: DurableContext, (): ()| async move {
        ctx.step("declined", async |_| {
            Err::<(), _>(Error::new("PaymentDeclined", "card expired").with_data("{\"code\":51}"))
        })
        .no_retry()
        .await?;
        Ok::<_, Error>(())
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some("PaymentDeclined"));
    assert_eq!(e.error_data.as_deref(), Some("{\"code\":51}"));
    run.assert_well_formed();
}

#[tokio::test]
async fn panics_in_a_step_are_step_errors_and_outside_fail_the_execution() {
    let f = |ctx: DurableContext, (): ()| async move {
        let r = ctx.step("panics", async |_| -> Result<u8, Error> { panic!("kaboom") }).no_retry().await;
        let e = r.unwrap_err();
        assert_eq!(e.error_type(), Some("Panic"));
        assert!(e.message().unwrap().contains("kaboom"));
        Ok::<_, Error>(())
    };
    let runner = TestRunner::new();
    assert_eq!(runner.run(f, ()).await.status(), ExecutionStatus::Succeeded);

    let g = |_ctx: DurableContext, (): ()| async move {
        let fail = true;
        assert!(!fail, "outside");
        Ok::<_, Error>(())
    };
    let run = runner.run(g, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_eq!(run.error().unwrap().error_type.as_deref(), Some("Panic"));
}

#[tokio::test]
async fn child_contexts_nest_and_replay_without_rerunning() {
    let runs = counter();
    let r = runs.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let r = r.clone();
        async move {
            let total = ctx
                .run_in_child_context("outer", async |outer: DurableContext| {
                    let a = outer.step("a", async |_| Ok(1)).await?;
                    let b = outer
                        .run_in_child_context("inner", async |inner: DurableContext| {
                            r.fetch_add(1, Ordering::SeqCst);
                            inner.step("b", async |_| Ok(2)).await
                        })
                        .await?;
                    Ok(a + b)
                })
                .await?;
            ctx.wait("w", Duration::from_secs(1)).await?;
            Ok::<_, Error>(total)
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<u32>().unwrap(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a finished child is not re-run on replay");
    let outer = run.operation("outer").unwrap();
    let inner = run.operation("inner").unwrap();
    let a = run.operation("a").unwrap();
    let b = run.operation("b").unwrap();
    assert_eq!(outer.op_type, OperationType::Context);
    assert_eq!(outer.parent_id, None);
    assert_eq!(a.parent_id.as_deref(), Some(&*outer.id));
    assert_eq!(inner.parent_id.as_deref(), Some(&*outer.id));
    assert_eq!(b.parent_id.as_deref(), Some(&*inner.id));
    assert_eq!(outer.context_details.as_ref().unwrap().result.as_deref(), Some("3"));
    run.assert_well_formed();
}

#[tokio::test]
async fn a_failing_child_context_keeps_the_inner_error() {
    let f = |ctx: DurableContext, (): ()| async move {
        let r: Result<u8, Error> = ctx
            .run_in_child_context("c", async |c: DurableContext| {
                c.step("s", async |_| Err::<u8, _>(Error::new("Inner", "nope"))).no_retry().await
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ChildContext);
        assert_eq!(e.error_type(), Some("Inner"));
        Err::<(), _>(e)
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let c = run.operation("c").unwrap();
    assert_eq!(c.status, OperationStatus::Failed);
    assert_eq!(c.context_details.as_ref().unwrap().error.as_ref().unwrap().error_type.as_deref(), Some("Inner"));
    assert!(run.event_types().contains(&EventType::ContextFailed));
}

#[tokio::test]
async fn now_random_and_uuid_replay_the_recorded_values() {
    type Seen = (SystemTime, u64, uuid::Uuid);
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let s = seen.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let s = s.clone();
        async move {
            let t = ctx.now().await?;
            let r: u64 = ctx.random().await?;
            let u = ctx.uuid().await?;
            s.borrow_mut().push((t, r, u));
            ctx.wait("w", Duration::from_secs(10)).await?;
            Ok::<_, Error>(r)
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "two invocations");
    assert_eq!(seen[0], seen[1], "replay returns the recorded now/random/uuid");
    assert_eq!(run.result::<u64>().unwrap(), seen[0].1);
    let subs: Vec<_> =
        run.operations.iter().filter_map(|o| o.sub_type.as_ref().map(|s| s.as_str().to_owned())).collect();
    assert_eq!(subs, ["Now", "Random", "Uuid", "Wait"]);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Parcel {
    id: u32,
    weight: f32,
}

#[tokio::test]
async fn custom_codecs_round_trip_and_wrong_types_are_clear_errors() {
    let f = |ctx: DurableContext, (): ()| async move {
        let p = ctx.step("pack", async |_| Ok(Parcel { id: 7, weight: 1.5 })).serdes(Postcard).await?;
        let upper = ctx
            .step("shout", async |_| Ok("quiet".to_owned()))
            .serdes(FnSerdes::new(|s: &String| Ok(s.to_uppercase()), |p: &str| Ok(p.to_owned())))
            .await?;
        ctx.wait("w", Duration::from_secs(1)).await?;
        Ok::<_, Error>((p, upper))
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    let (p, upper): (Parcel, String) = run.result().unwrap();
    assert_eq!(p, Parcel { id: 7, weight: 1.5 });
    assert_eq!(upper, "QUIET", "the first run returns what the codec recorded, as a replay would");
    let stored = run.operation("pack").unwrap().step_details.as_ref().unwrap().result.clone().unwrap();
    assert!(!stored.contains('{'), "postcard payloads are base64, not JSON: {stored}");

    // Code changed to read the recorded step as another type: a clear serdes error.
    let runner = TestRunner::new();
    let first = |ctx: DurableContext, (): ()| async move {
        ctx.step("value", async |_| Ok("text".to_owned())).await?;
        ctx.wait("w", Duration::from_secs(1)).await?;
        Ok::<_, Error>(())
    };
    let changed = |ctx: DurableContext, (): ()| async move {
        let n: u32 = ctx.step("value", async |_| Ok(1)).await?;
        Ok::<_, Error>(n)
    };
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();
    runner.invoke_once(&handler(first), &arn).await;
    let run = runner.drive(&handler(changed), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some("SerDesError"));
    assert!(e.error_message.as_deref().unwrap().contains("u32"), "{e}");
}

#[tokio::test]
async fn changed_code_fails_the_execution_naming_both_sides() {
    let runner = TestRunner::new();
    let v1 = |ctx: DurableContext, (): ()| async move {
        ctx.step("reserve", async |_| Ok(1)).await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        Ok::<_, Error>(())
    };
    let v2 = |ctx: DurableContext, (): ()| async move {
        ctx.step("charge", async |_| Ok(1)).await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        Ok::<_, Error>(())
    };
    let v3 = |ctx: DurableContext, (): ()| async move {
        ctx.wait("reserve", Duration::from_secs(1)).await?;
        Ok::<_, Error>(())
    };
    let cases: Vec<(Box<dyn durable_core::Handler>, &str)> = vec![
        (
            Box::new(handler(v2)),
            "the history recorded STEP/Step named \"reserve\" at the root, but the code now calls STEP/Step named \"charge\"",
        ),
        (Box::new(handler(v3)), "but the code now calls WAIT/Wait named \"reserve\""),
    ];
    for (changed, want) in cases {
        let arn = runner.start("f", None, Some("null".into())).await.unwrap();
        runner.invoke_once(&handler(v1), &arn).await;
        let run = runner.drive(changed.as_ref(), &arn).await;
        assert_eq!(run.status(), ExecutionStatus::Failed, "non-determinism fails the execution, never PENDING");
        let e = run.error().unwrap();
        assert_eq!(e.error_type.as_deref(), Some("NonDeterministicExecutionError"));
        let msg = e.error_message.as_deref().unwrap();
        assert!(msg.contains(want), "{msg}");
        assert!(msg.contains("call #1 made outside a #[durable] function (positional id)"), "{msg}");
        run.assert_well_formed();
    }
}

#[tokio::test]
async fn oversized_results_fail_the_step_without_retrying() {
    let f = |ctx: DurableContext, (): ()| async move {
        let big = ctx.step("big", async |_| Ok("x".repeat(300 * 1024))).await;
        let e = big.unwrap_err();
        assert_eq!(e.error_type(), Some("PayloadTooLargeError"));
        assert!(e.message().unwrap().contains("262144"), "{e}");
        Ok::<_, Error>(())
    };
    let runner = TestRunner::with_aws_limits();
    let run = runner.run(f, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    let big = run.operation("big").unwrap();
    assert_eq!(big.status, OperationStatus::Failed);
    assert_eq!(big.step_details.as_ref().unwrap().attempt, Some(1), "no retries for a permanent failure");
}

#[tokio::test]
async fn invalid_arguments_fail_before_any_checkpoint() {
    let f = |ctx: DurableContext, (): ()| async move {
        let zero = ctx.wait("zero", Duration::ZERO).await.unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::Validation);
        let long = ctx.wait("long", Duration::from_secs(40_000_000)).await.unwrap_err();
        assert_eq!(long.kind(), ErrorKind::Validation);
        let bad_name = ctx.step("tab\tname", async |_| Ok(1)).await.unwrap_err();
        assert_eq!(bad_name.kind(), ErrorKind::Validation);
        let bad_sub = ctx.step("s", async |_| Ok(1)).sub_type("no spaces allowed").await.unwrap_err();
        assert_eq!(bad_sub.kind(), ErrorKind::Validation);
        Ok::<_, Error>(())
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    assert_eq!(run.operations.len(), 1, "only the EXECUTION operation");
    // The protocol counts whole seconds: a fraction is refused, not rounded.
    let g = |ctx: DurableContext, (): ()| async move {
        for d in [Duration::from_millis(1500), Duration::from_millis(300)] {
            let e = ctx.wait("w", d).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.message().unwrap().contains("whole number of seconds"), "{e}");
        }
        Ok::<_, Error>(())
    };
    let run = runner.run(g, ()).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    assert!(run.history.iter().all(|e| e.event_type != EventType::WaitStarted), "nothing recorded");
}

#[tokio::test]
async fn a_bad_input_fails_with_a_clear_error() {
    let f = |_ctx: DurableContext, p: Parcel| async move { Ok::<_, Error>(p.id) };
    let runner = TestRunner::new();
    let run = runner.run(f, "not a parcel").await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some("SerDesError"));
    assert!(e.error_message.as_deref().unwrap().contains("Parcel"), "{e}");
}

#[tokio::test]
async fn large_child_results_replay_their_children() {
    let runs = counter();
    let r = runs.clone();
    let f = move |ctx: DurableContext, (): ()| {
        let r = r.clone();
        async move {
            let big = ctx
                .run_in_child_context("big", async |c: DurableContext| {
                    r.fetch_add(1, Ordering::SeqCst);
                    let a = c.step("half-1", async |_| Ok("a".repeat(200 * 1024))).await?;
                    let b = c.step("half-2", async |_| Ok("b".repeat(200 * 1024))).await?;
                    Ok(a + &b)
                })
                .await?;
            ctx.wait("w", Duration::from_secs(1)).await?;
            Ok::<_, Error>(big.len())
        }
    };
    let runner = TestRunner::with_aws_limits();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), 400 * 1024);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "replay re-ran the child to rebuild its result");
    let big = run.operation("big").unwrap();
    assert_eq!(big.context_details.as_ref().unwrap().replay_children, Some(true));
}

#[tokio::test]
async fn at_most_once_steps_are_not_rerun_after_a_crash_mid_attempt() {
    for at_most_once in [true, false] {
        let runs = counter();
        let hung = Arc::new(tokio::sync::Notify::new());
        let (r, hanging) = (runs.clone(), hung.clone());
        let f = move |ctx: DurableContext, (): ()| {
            let (r, hanging) = (r.clone(), hanging.clone());
            async move {
                let step = ctx.step("charge", async |_| {
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        // The first attempt hangs: the process "dies" before it finishes.
                        hanging.notify_one();
                        std::future::pending::<()>().await;
                    }
                    Ok("charged".to_owned())
                });
                let step = if at_most_once { step.at_most_once().no_retry() } else { step };
                step.await
            }
        };
        let h = handler(f);
        let runner = TestRunner::new();
        let arn = runner.start("f", None, Some("null".into())).await.unwrap();
        // The "crash": the invocation is dropped once its first attempt hangs.
        tokio::select! {
            outcome = runner.invoke_once(&h, &arn) => panic!("the first invocation never finishes: {outcome:?}"),
            () = hung.notified() => {}
        }
        let run = runner.drive(&h, &arn).await;
        if at_most_once {
            assert_eq!(runs.load(Ordering::SeqCst), 1, "an at-most-once attempt is never run twice");
            assert_eq!(run.status(), ExecutionStatus::Failed);
            assert_eq!(run.error().unwrap().error_type.as_deref(), Some("StepInterruptedError"));
        } else {
            assert_eq!(runs.load(Ordering::SeqCst), 2, "an at-least-once attempt runs again");
            assert_eq!(run.result::<String>().unwrap(), "charged");
        }
        let lost = run.history.iter().find(|e| e.event_type == EventType::InvocationCompleted).unwrap();
        let err = lost.details.error.as_ref().unwrap().payload.as_ref().unwrap();
        assert_eq!(err.error_type.as_deref(), Some("Runtime.ExitError"));
        run.assert_well_formed();
    }
}
