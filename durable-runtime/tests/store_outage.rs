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
use support::{DISK_FULL, FlakyStore, eventually, raw};

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
