//! The local runner: idempotent starts, timers resumed by the worker, and executions
//! picked up after a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use durable_core::clock::ManualClock;
use durable_core::model::{EventType, ExecutionStatus, Timestamp};
use durable_core::{DurableContext, Error, handler};
use durable_runtime::{LocalRunner, RunnerError};
use tokio::sync::Notify;

async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
    let g = ctx.step("greet", async |_| Ok(format!("hello {name}"))).await?;
    ctx.wait("pause", Duration::from_secs(1)).await?;
    Ok(g)
}

#[tokio::test]
async fn idempotent_starts_and_clear_errors() {
    let runner = LocalRunner::builder().register("greet", handler(greet)).build();
    let a = runner.start("greet", &"ada", Some("greet-ada")).await.unwrap();
    let b = runner.start("greet", &"ada", Some("greet-ada")).await.unwrap();
    assert_eq!(a, b, "same name and input: the existing execution");
    let err = runner.start("greet", &"bob", Some("greet-ada")).await.unwrap_err();
    assert!(err.to_string().contains("already exists with a different input"), "{err}");
    let err = runner.start("nope", &"ada", None).await.unwrap_err();
    assert!(matches!(err, RunnerError::UnknownFunction(_)), "{err}");
}

// The runner's clock follows paused Tokio time (a tick every 10 ms): the one-second wait
// takes no wall time, and only the worker's own timer can wake it (nothing calls wake()).
#[tokio::test(start_paused = true)]
async fn the_worker_resumes_executions_when_their_timer_is_due() {
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let runner = LocalRunner::builder().clock(Arc::new(clock.clone())).register("greet", handler(greet)).build();
    let arn = runner.start("greet", &"ada", None).await.unwrap();
    let ticks = async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            clock.advance(Duration::from_millis(10));
        }
    };
    let t = tokio::time::Instant::now();
    let record = tokio::select! {
        record = runner.run_until_finished(&arn) => record.unwrap(),
        () = ticks => unreachable!("the clock ticks for ever"),
    };
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.result.as_deref(), Some("\"hello ada\""));
    assert_eq!(record.invocation, 2, "the wait suspended the first invocation");
    assert!(t.elapsed() >= Duration::from_secs(1), "the wait lasted its second");
    assert!(t.elapsed() < Duration::from_secs(2), "and was resumed promptly: {:?}", t.elapsed());
}

#[tokio::test]
async fn run_until_idle_stops_at_a_suspension() {
    let runner = LocalRunner::builder().register("greet", handler(greet)).build();
    let arn = runner.start("greet", &"ada", None).await.unwrap();
    runner.run_until_idle().await.unwrap();
    let record = runner.service().get_record(&arn).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Running);
    assert!(record.wake_at.is_some(), "waiting on its timer");
}

#[tokio::test]
async fn a_restarted_runner_picks_up_interrupted_executions() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let hang = Arc::new(AtomicBool::new(true));
    let hung = Arc::new(Notify::new());
    let make = |runs: Arc<AtomicU32>, hang: Arc<AtomicBool>, hung: Arc<Notify>| {
        move |ctx: DurableContext, (): ()| {
            let runs = runs.clone();
            let hang = hang.clone();
            let hung = hung.clone();
            async move {
                let v = ctx
                    .step("work", async |_| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        if hang.load(Ordering::SeqCst) {
                            hung.notify_one();
                            std::future::pending::<()>().await;
                        }
                        Ok(7)
                    })
                    .await?;
                Ok::<_, Error>(v)
            }
        }
    };
    let arn = {
        let runner = LocalRunner::builder()
            .embedded(dir.path())
            .unwrap()
            .register("work", handler(make(runs.clone(), hang.clone(), hung.clone())))
            .build();
        let arn = runner.start("work", &(), Some("job-1")).await.unwrap();
        // The "process" dies while the step runs.
        tokio::select! {
            r = runner.run_until_finished(&arn) => panic!("the step hangs, so the run cannot finish: {r:?}"),
            () = hung.notified() => {}
        }
        arn
    };
    hang.store(false, Ordering::SeqCst);
    let runner = LocalRunner::builder()
        .embedded(dir.path())
        .unwrap()
        .register("work", handler(make(runs.clone(), hang.clone(), hung.clone())))
        .build();
    let record = runner.run_until_finished(&arn).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.result.as_deref(), Some("7"));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the interrupted at-least-once step ran again");
    let history = runner.service().full_history(&arn).await.unwrap();
    let lost = history.iter().find(|e| e.event_type == EventType::InvocationCompleted).unwrap();
    let error = lost.details.error.as_ref().unwrap().payload.as_ref().unwrap();
    assert_eq!(error.error_type.as_deref(), Some("Runtime.ExitError"));
}

async fn approval(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let cb = ctx.create_callback::<String>("approval").await?;
    cb.result().await
}

// Paused Tokio time: the approver's sleep ends only once every task is idle, the worker in
// its wait for a minute-long timer included, and the clock then shows whether the worker
// woke at the completion or at that timer.
#[tokio::test(start_paused = true)]
async fn a_callback_completed_through_the_service_wakes_the_worker() {
    let runner = LocalRunner::builder().register("approval", handler(approval)).build();
    let arn = runner.start("approval", &(), None).await.unwrap();
    runner.run_until_idle().await.unwrap();
    let ops = runner.service().operations(&arn).await.unwrap();
    let id = ops.iter().find_map(|o| o.callback_details.as_ref()?.callback_id.clone()).expect("a callback id");
    let approve = async {
        // Someone else completes the callback while the worker idles (its next timer is
        // a minute away): no runner.wake() call.
        tokio::time::sleep(Duration::from_millis(50)).await;
        runner.service().callback_success(&id, Some("\"yes\"".to_owned())).await.unwrap();
    };
    let t = tokio::time::Instant::now();
    let (record, ()) = tokio::join!(runner.run_until_finished(&arn), approve);
    let record = record.unwrap();
    assert_eq!(record.result.as_deref(), Some("\"yes\""));
    assert!(t.elapsed() < Duration::from_secs(1), "woken by the completion, not by the idle timer: {:?}", t.elapsed());
}

/// Returns a string whose JSON text is `bytes` long.
async fn sized(_ctx: DurableContext, bytes: usize) -> Result<String, Error> {
    Ok("x".repeat(bytes - 2))
}

#[tokio::test]
async fn an_execution_result_over_its_maximum_fails_the_execution_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let runner = LocalRunner::builder().embedded(dir.path()).unwrap().register("sized", handler(sized)).build();
    let limit = runner.service().limits().max_execution_result;
    let mut arns = Vec::new();
    for (bytes, status) in [(limit + 1, ExecutionStatus::Failed), (limit, ExecutionStatus::Succeeded)] {
        let arn = runner.start("sized", &bytes, None).await.unwrap();
        // A result the store could not hold once left the execution RUNNING for ever.
        let record = tokio::time::timeout(Duration::from_mins(2), runner.run_until_finished(&arn))
            .await
            .unwrap_or_else(|_| panic!("run_until_finished hung on a result of {bytes} bytes"))
            .unwrap();
        assert_eq!(record.status, status, "{bytes} bytes: {:?}", record.error);
        arns.push(arn);
    }
    drop(runner);

    // Both ends are recorded: the store reopened has them.
    let runner = LocalRunner::builder().embedded(dir.path()).unwrap().build();
    let failed = runner.service().get_record(&arns[0]).await.unwrap();
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.error_type.as_deref(), Some(durable_core::PAYLOAD_TOO_LARGE_ERROR_TYPE));
    assert!(error.error_message.unwrap().contains(&format!("at most {limit} bytes")));
    let history = runner.service().full_history(&arns[0]).await.unwrap();
    assert_eq!(history.last().map(|e| e.event_type), Some(EventType::ExecutionFailed));
    let succeeded = runner.service().get_record(&arns[1]).await.unwrap();
    assert_eq!(succeeded.result.map(|r| r.len()), Some(limit), "a result at the maximum is kept whole");
}
