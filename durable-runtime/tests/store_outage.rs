//! A store that fails (a full disk): the worker backs off instead of retrying at once,
//! reports the outage in `health()` and `GET /health`, and finishes the work once the store
//! works again.

mod support;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use durable_core::clock::ManualClock;
use durable_core::model::{ExecutionStatus, Timestamp};
use durable_core::retry::Jitter;
use durable_core::{DurableContext, Error, handler};
use durable_runtime::{Health, LocalRunner};
use support::{DISK_FULL, FlakyStore, TokioClock, eventually, raw};

const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
    ctx.step("greet", async |_| Ok(format!("hello {name}"))).await
}

/// The default back-off without its jitter, so the number of attempts in a minute is known.
fn exact_backoff() -> durable_core::retry::Backoff {
    durable_core::retry::Backoff::exponential()
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(30))
        .jitter(Jitter::None)
}

fn outage(runner: &LocalRunner) -> durable_runtime::StoreOutage {
    match runner.health() {
        Health::Unhealthy(o) => o,
        Health::Healthy => panic!("expected the store to be reported unhealthy"),
    }
}

/// Runs the worker for `d` of (paused, auto-advancing) Tokio time.
async fn run_worker_for(runner: &LocalRunner, d: Duration) {
    let stop = Cell::new(false);
    let timer = async {
        tokio::time::sleep(d).await;
        stop.set(true);
        runner.wake();
    };
    let (worker, ()) = tokio::join!(runner.run_worker(|| stop.get()), timer);
    worker.expect("a failing store does not end the worker");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_worker_backs_off_while_commits_fail_and_finishes_once_they_work() {
    let store = FlakyStore::new();
    let clock = ManualClock::new(START);
    let runner = LocalRunner::builder()
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .store_backoff(exact_backoff())
        .register("greet", handler(greet))
        .build();
    let arn = runner.start("greet", &"ada", None).await.unwrap();
    assert_eq!(runner.health(), Health::Healthy);

    store.fail_commits(true);
    let calls = store.calls();
    run_worker_for(&runner, Duration::from_mins(1)).await;

    // Attempts at 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 12.7, 25.5 and 51.1 s: ten, not the
    // thousands a worker that retries at once makes.
    assert_eq!(store.failed_commits(), 10, "one commit per attempt");
    let calls = store.calls() - calls;
    assert!(calls <= 100, "{calls} store calls in a minute");
    let o = outage(&runner);
    assert!(o.last_error.contains(DISK_FULL), "{o:?}");
    assert_eq!(o.since, START, "the first failure, by the runner's clock");
    assert_eq!((o.errors, o.attempt, o.backoff), (10, 10, Duration::from_secs(30)), "{o:?}");
    let record = runner.service().get_record(&arn).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Running, "nothing was lost: it waits");

    store.fail_commits(false);
    let done = runner.run_until_finished(&arn).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result.as_deref(), Some("\"hello ada\""));
    assert_eq!(runner.health(), Health::Healthy, "the first success ends the outage");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_invocation_cut_short_by_the_store_is_retried_once_it_works() {
    let store = FlakyStore::new();
    let runs = Arc::new(AtomicU32::new(0));
    let fill_disk = Arc::new(AtomicBool::new(true));
    let f = {
        let (store, runs, fill_disk) = (store.clone(), runs.clone(), fill_disk.clone());
        move |ctx: DurableContext, (): ()| {
            let (store, runs, fill_disk) = (store.clone(), runs.clone(), fill_disk.clone());
            async move {
                ctx.step("work", async |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // The disk fills up while the first attempt runs: its checkpoint fails
                    // (the invocation ends `Retry`), and so does recording its end.
                    if fill_disk.swap(false, Ordering::SeqCst) {
                        store.fail_commits(true);
                    }
                    Ok(7)
                })
                .await
            }
        }
    };
    let runner = LocalRunner::builder()
        .store(store.clone())
        .clock(Arc::new(ManualClock::new(START)))
        .register("work", handler(f))
        .build();
    let arn = runner.start("work", &(), None).await.unwrap();
    run_worker_for(&runner, Duration::from_secs(20)).await;
    let o = outage(&runner);
    assert!(o.last_error.contains(DISK_FULL), "{o:?}");
    assert!(store.failed_commits() < 30, "{} failed commits in 20 s", store.failed_commits());
    let record = runner.service().get_record(&arn).await.unwrap();
    assert!(record.invocation_started.is_some(), "its end could not be recorded: {record:?}");

    store.fail_commits(false);
    let done = runner.run_until_finished(&arn).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result.as_deref(), Some("7"));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the step whose result was not recorded ran again");
    assert_eq!(runner.health(), Health::Healthy);
}

/// Real time here: the control plane is real TCP. Only the first back-offs (100 ms,
/// 200 ms) pass before the store works again.
#[tokio::test]
async fn get_health_answers_503_naming_the_error_while_the_store_fails_and_200_after() {
    let store = FlakyStore::new();
    let runner = LocalRunner::builder().store(store.clone()).register("greet", handler(greet)).build();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let healthy = raw(addr, "GET", "/health", b"").await;
    assert_eq!((healthy.status, healthy.json()), (200, serde_json::json!({"Status": "ok"})));

    store.fail_commits(true);
    let arn = runner.start("greet", &"ada", None).await.unwrap();
    let stop = AtomicBool::new(false);
    let worker = runner.run_worker(|| stop.load(Ordering::SeqCst));
    let test = async {
        eventually("the first failure", async || (!runner.health().is_healthy()).then_some(())).await;
        let sick = raw(addr, "GET", "/health", b"").await;
        sick.assert_error(503, "ServiceUnavailableException");
        let body = sick.json();
        assert!(body["LastError"].as_str().unwrap().contains(DISK_FULL), "{body}");
        assert!(body["message"].as_str().unwrap().contains(DISK_FULL), "{body}");
        assert_eq!(body["Type"], "Service");
        let Health::Unhealthy(o) = runner.health() else { panic!("unhealthy") };
        assert_eq!(body["Since"], serde_json::to_value(o.since).unwrap(), "{body}");
        assert!(body["Errors"].as_u64().unwrap() >= 1, "{body}");

        store.fail_commits(false);
        let done = eventually("the execution to finish", async || {
            let r = runner.service().get_record(&arn).await.unwrap();
            r.status.is_terminal().then_some(r)
        })
        .await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        let healthy = raw(addr, "GET", "/health", b"").await;
        assert_eq!(healthy.status, 200, "{healthy:?}");
        stop.store(true, Ordering::SeqCst);
        runner.wake();
    };
    let (worker, ()) = tokio::join!(worker, test);
    worker.unwrap();
}

/// The write that records an invocation's end fails once (its answer lost): the runner
/// records that same end again once the store answers, without a restart and without
/// invoking again: the history has no lost invocation, and the step ran once.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_end_that_could_not_be_recorded_is_recorded_again_without_a_restart() {
    let store = FlakyStore::new();
    let runner = LocalRunner::builder()
        .store(store.clone())
        .clock(Arc::new(ManualClock::new(START)))
        .store_backoff(exact_backoff())
        .register("greet", handler(greet))
        .build();
    let arn = runner.start("greet", &"ada", None).await.unwrap();
    store.fail_invocation_ends(1);
    let done = tokio::time::timeout(Duration::from_mins(1), runner.run_until_finished(&arn))
        .await
        .expect("the execution finishes, although its end was lost once")
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result.as_deref(), Some("\"hello ada\""));
    assert_eq!(store.failed_commits(), 1, "exactly the end's write failed");
    let history = runner.service().full_history(&arn).await.unwrap();
    let invocations: Vec<_> =
        history.iter().filter(|e| e.event_type == durable_core::model::EventType::InvocationCompleted).collect();
    assert_eq!(invocations.len(), 1, "one invocation, its end recorded once: {invocations:#?}");
    assert!(invocations[0].details.error.is_none(), "no invocation was lost: {invocations:#?}");
    assert_eq!(runner.health(), Health::Healthy);
}

/// Reads fail (the network to a remote store goes) while an at-most-once step runs: the
/// worker backs off, but the step is not cancelled: it runs once, is recorded, and the
/// execution finishes when reads work again.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failing_reads_neither_stop_the_worker_nor_cancel_a_running_step() {
    let store = FlakyStore::new();
    let runs = Arc::new(AtomicU32::new(0));
    let f = {
        let (store, runs) = (store.clone(), runs.clone());
        move |ctx: DurableContext, (): ()| {
            let (store, runs) = (store.clone(), runs.clone());
            async move {
                let paid = ctx
                    .step("charge", async |_| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        store.fail_reads(true);
                        // The worker's look for due work fails meanwhile.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(12)
                    })
                    .at_most_once()
                    .await?;
                ctx.wait("cool-down", Duration::from_secs(3)).await?;
                Ok::<u32, Error>(paid)
            }
        }
    };
    let runner = LocalRunner::builder()
        .store(store.clone())
        .clock(TokioClock::new(START))
        .store_backoff(exact_backoff())
        .register("pay", handler(f))
        .build();
    let arn = runner.start("pay", &(), None).await.unwrap();
    let healer = {
        let store = store.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            store.fail_reads(false);
        }
    };
    let (done, ()) = tokio::join!(
        async { tokio::time::timeout(Duration::from_mins(5), runner.run_until_finished(&arn)).await },
        healer
    );
    let done = done.expect("no hang").unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_deref(), Some("12"));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the at-most-once body ran exactly once");
}

/// What an execution costs in reads: no polling while it runs; every read has a reason
/// (a begin's load, a look for due work at a wake-up, `run_until_finished`'s check).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_running_execution_reads_no_more_than_it_writes_plus_a_constant_and_an_idle_worker_once_a_minute() {
    async fn steps(ctx: DurableContext, n: u32) -> Result<u32, Error> {
        let mut total = 0;
        for i in 0..n {
            total += ctx.step("add", async move |_| Ok(i)).await?;
        }
        ctx.wait("pause", Duration::from_secs(2)).await?;
        for i in 0..n {
            total += ctx.step("add-again", async move |_| Ok(i)).await?;
        }
        Ok(total)
    }
    let store = FlakyStore::new();
    let runner = LocalRunner::builder()
        .store(store.clone())
        .clock(TokioClock::new(START))
        .register("steps", handler(steps))
        .build();
    let arn = runner.start("steps", &10u32, None).await.unwrap();
    let (reads, writes) = (store.reads(), store.commits());
    let done = runner.run_until_finished(&arn).await.unwrap();
    assert_eq!(done.result.as_deref(), Some("90"));
    let (reads, writes) = (store.reads() - reads, store.commits() - writes);
    assert!(writes >= 3, "{writes} writes");
    assert!(reads <= writes + 12, "{reads} reads for {writes} writes");

    let before = store.reads();
    run_worker_for(&runner, Duration::from_mins(10)).await;
    let idle = store.reads() - before;
    assert!(idle <= 13, "an idle worker read {idle} times in 10 minutes");
}

/// An execution of a function no handler here runs: `run_until_finished` says so instead
/// of waiting for an end that will never come.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn run_until_finished_fails_for_a_function_no_handler_runs() {
    let runner = LocalRunner::builder().register("greet", handler(greet)).build();
    let started = runner
        .service()
        .start_execution(durable_core::service::StartExecution {
            function_name: "ghost".into(),
            input: Some("null".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_mins(1), runner.run_until_finished(&started.arn))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(err, durable_runtime::RunnerError::UnknownFunction(ref f) if f == "ghost"), "{err:?}");
}
