//! Self-hosted mode's event handling on the in-memory store, with time skipping. The
//! wake-up channels are an in-process outbox that the tests deliver by hand (as SQS and
//! Lambda would); the real channels (SQS on moto, Lambda invokes through `cargo lambda
//! watch`) and the DynamoDB store are tested end to end in `tests/tests/selfhosted.rs`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_core::model::{EventType, ExecutionStatus, OperationStatus};
use durable_core::store::MemoryStore;
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, handler};
use serde_json::{Value, json};

use super::wakeups::function_of;
use super::*;
use crate::lambda::*;

/// What the function sent: `(None, event, delay)` to its queue, `(Some(function), event, 0)`
/// as an asynchronous invoke.
#[derive(Default)]
struct Outbox {
    sent: RefCell<Vec<(Option<String>, SelfHostedEvent, Duration)>>,
    /// No queue configured: `enqueue` sends nothing.
    no_queue: bool,
}

impl Outbox {
    fn take(&self) -> Vec<(Option<String>, SelfHostedEvent, Duration)> {
        std::mem::take(&mut *self.sent.borrow_mut())
    }
}

#[async_trait(?Send)]
impl Wakeups for Outbox {
    async fn enqueue(&self, event: &SelfHostedEvent, delay: Duration) -> Result<bool, String> {
        if self.no_queue {
            return Ok(false);
        }
        self.sent.borrow_mut().push((None, event.clone(), delay));
        Ok(true)
    }

    async fn invoke(&self, function: &str, event: &SelfHostedEvent) -> Result<(), String> {
        self.sent.borrow_mut().push((Some(function.to_owned()), event.clone(), Duration::ZERO));
        Ok(())
    }
}

async fn order(ctx: DurableContext, id: String) -> Result<String, Error> {
    let r = ctx.step("reserve", async |_| Ok(format!("rsv-{id}"))).await?;
    ctx.wait("cool-off", Duration::from_secs(2)).await?;
    let cb = ctx.create_callback::<String>("carrier").await?;
    let shipment = cb.result().await?;
    Ok(format!("{r}/{shipment}"))
}

struct Fixture {
    runner: TestRunner,
    outbox: Rc<Outbox>,
    functions: Functions,
}

fn fixture(functions: Functions) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let runner = TestRunner::with_store(store.clone(), durable_core::service::ServiceConfig::default());
    let outbox = Rc::new(Outbox::default());
    let mode = SelfHosted::new(store, outbox.clone()).clock(Arc::new(runner.clock().clone()));
    Fixture { runner, outbox, functions: functions.self_hosted(mode) }
}

impl Fixture {
    async fn send(&self, function: &str, event: Value) -> Result<Value, Diagnostic> {
        self.functions.handle(event, function).await
    }
}

fn resume_of(event: &SelfHostedEvent) -> &str {
    match event {
        SelfHostedEvent::Resume { execution_arn, .. } => execution_arn,
        other => panic!("not a resume: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn start_wait_callback_and_duplicate_resumes() {
    let f = fixture(Functions::new().handler(handler(order)));
    let out = f.send("orders", json!({"durable": "start", "input": "o-1", "executionName": "o-1"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert_eq!(out["status"], "RUNNING");
    assert_eq!(out["created"], true);
    assert_eq!(out["invocations"], 1);
    assert!(arn.contains(":function:orders:"), "{arn}");

    // The 2 s wait: one resume queued, delayed 2 s.
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, None);
    assert_eq!(resume_of(&sent[0].1), arn);
    assert_eq!(sent[0].2, Duration::from_secs(2));

    // The same start again is idempotent and runs nothing; another input is refused.
    let again = f.send("orders", json!({"durable": "start", "input": "o-1", "executionName": "o-1"})).await.unwrap();
    assert_eq!((again["created"].clone(), again["invocations"].clone()), (json!(false), json!(0)));
    let err = f.send("orders", json!({"durable": "start", "input": "o-2", "executionName": "o-1"})).await.unwrap_err();
    assert_eq!(err.error_type, INVALID_EVENT_ERROR_TYPE);
    assert!(err.error_message.contains("DurableExecutionAlreadyStartedException"), "{}", err.error_message);

    // A resume that comes early does nothing.
    let early = f.send("orders", json!({"durable": "resume", "executionArn": arn})).await.unwrap();
    assert_eq!(early["invocations"], 0);
    assert!(f.outbox.take().is_empty());

    // On time: it runs and suspends on the callback (nothing to queue: no timer).
    f.runner.advance(Duration::from_secs(2));
    let out = f.send("orders", json!({"durable": "resume", "executionArn": arn})).await.unwrap();
    assert_eq!((out["invocations"].clone(), out["status"].clone()), (json!(1), json!("RUNNING")));
    assert!(f.outbox.take().is_empty());
    // A duplicate of that resume is harmless.
    let dup = f.send("orders", json!({"durable": "resume", "executionArn": arn})).await.unwrap();
    assert_eq!(dup["invocations"], 0);
    let ids = f.runner.callback_ids(&arn).await;
    assert_eq!(ids.len(), 1);

    // A forged callback id (another operation's id, a truncated id, garbage): an error,
    // nothing changed.
    let before = f.runner.inspect(&arn).await;
    for forged in [&ids[0][..ids[0].len() - 2], "not-a-callback-id", ""] {
        let err = f
            .send("orders", json!({"durable": "callback", "action": "succeed", "callbackId": forged, "result": "x"}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type, INVALID_EVENT_ERROR_TYPE, "{forged}");
        assert!(err.error_message.contains("callback id"), "{}", err.error_message);
    }
    let after = f.runner.inspect(&arn).await;
    assert_eq!(before.history.len(), after.history.len());
    assert_eq!(before.record.version, after.record.version);
    assert!(f.outbox.take().is_empty());

    // A heartbeat changes nothing the function waits on: no wake-up.
    f.send("orders", json!({"durable": "callback", "action": "heartbeat", "callbackId": ids[0]})).await.unwrap();
    assert!(f.outbox.take().is_empty());

    // The carrier's answer wakes the execution at once, through the queue.
    let out = f
        .send("orders", json!({"durable": "callback", "action": "succeed", "callbackId": ids[0], "result": "trk-9"}))
        .await
        .unwrap();
    assert_eq!(out["executionArn"], arn.as_str());
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1);
    assert_eq!((resume_of(&sent[0].1), sent[0].2), (arn.as_str(), Duration::ZERO));
    let out = f.send("orders", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
    assert_eq!(out["result"], "\"rsv-o-1/trk-9\"");
    // Completing it again: an error (the execution is closed), nothing changes.
    let err = f
        .send("orders", json!({"durable": "callback", "action": "succeed", "callbackId": ids[0], "result": "again"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, INVALID_EVENT_ERROR_TYPE);
    // Resumes of a closed execution are harmless.
    let dup = f.send("orders", json!({"durable": "resume", "executionArn": arn})).await.unwrap();
    assert_eq!((dup["status"].clone(), dup["invocations"].clone()), (json!("SUCCEEDED"), json!(0)));

    let run = f.runner.inspect(&arn).await;
    run.assert_well_formed();
    assert_eq!(run.invocations(), 3);

    // get and history answer as the control plane does.
    let got = f.send("orders", json!({"durable": "get", "executionArn": arn})).await.unwrap();
    assert_eq!(got["Status"], "SUCCEEDED");
    assert_eq!(got["DurableExecutionName"], "o-1");
    let history = f.send("orders", json!({"durable": "history", "executionArn": arn})).await.unwrap();
    assert_eq!(history["Events"].as_array().unwrap().len(), run.history.len());
    let page = f.send("orders", json!({"durable": "history", "executionArn": arn, "maxItems": 5})).await.unwrap();
    assert_eq!(page["Events"].as_array().unwrap().len(), 5);
    let marker = page["NextMarker"].as_str().unwrap();
    let rest = f.send("orders", json!({"durable": "history", "executionArn": arn, "marker": marker})).await.unwrap();
    assert_eq!(rest["Events"].as_array().unwrap().len(), run.history.len() - 5);
    assert_eq!(rest["Events"][0]["EventId"], 6);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_callback_and_an_unknown_execution() {
    let f = fixture(Functions::new().handler(handler(order)));
    let out = f.send("orders", json!({"durable": "start", "input": "o-3"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    f.runner.advance(Duration::from_secs(2));
    f.send("orders", json!({"durable": "resume", "executionArn": arn})).await.unwrap();
    f.outbox.take();
    let id = f.runner.callback_ids(&arn).await.remove(0);
    f.send(
        "orders",
        json!({"durable": "callback", "action": "fail", "callbackId": id,
               "error": {"ErrorType": "Lost", "ErrorMessage": "parcel lost"}}),
    )
    .await
    .unwrap();
    let sent = f.outbox.take();
    let out = f.send("orders", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!(out["status"], "FAILED");
    assert_eq!(out["error"]["ErrorType"], "Lost");

    let err = f.send("orders", json!({"durable": "resume", "executionArn": "arn:nothing"})).await.unwrap_err();
    assert_eq!(err.error_type, INVALID_EVENT_ERROR_TYPE);
    let err = f.send("orders", json!({"durable": "launch"})).await.unwrap_err();
    assert_eq!(err.error_type, INVALID_EVENT_ERROR_TYPE);
    assert!(err.error_message.contains("\"start\""), "{}", err.error_message);
}

/// `n` steps of 40 ms each, on the wall clock: the Lambda deadline these tests stop at is a
/// wall-clock instant, which self-hosted mode measures with `SystemTime::now()` (and again
/// before each further invocation in the same event), so neither paused Tokio time nor the
/// mode's injected clock can stand in for it.
async fn slow_steps(ctx: DurableContext, n: u32) -> Result<u32, Error> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx
            .step("slow", async |_| {
                tokio::time::sleep(Duration::from_millis(40)).await;
                Ok(i)
            })
            .await?;
    }
    Ok(sum)
}

#[tokio::test(flavor = "current_thread")]
async fn an_invocation_stops_before_its_deadline_and_queues_its_own_resume() {
    let f = fixture(Functions::new().handler(handler(slow_steps)));
    let mode = SelfHosted::new(f.runner.service().store().clone(), f.outbox.clone())
        .clock(Arc::new(f.runner.clock().clone()))
        .deadline_margin(Duration::from_millis(100));
    let functions = Functions::new().handler(handler(slow_steps)).self_hosted(mode);
    // 10 steps of 40 ms with 300 ms left and a 100 ms margin: it stops after a few.
    let deadline = SystemTime::now() + Duration::from_millis(300);
    let inv = Invocation { function_name: "slow", function_arn: None, deadline: Some(deadline) };
    let out = functions.handle_invocation(json!({"durable": "start", "input": 10}), &inv).await.unwrap();
    assert_eq!(out["status"], "RUNNING", "{out}");
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert!(SystemTime::now() < deadline, "stopped before the deadline");
    let run = f.runner.inspect(&arn).await;
    let done = run.operations_named("slow").iter().filter(|o| o.status == OperationStatus::Succeeded).count();
    assert!((2..10).contains(&done), "{done} steps finished");
    let lost = run.history.iter().filter(|e| e.event_type == EventType::InvocationCompleted).count();
    assert_eq!(lost, 1);
    let completed = run.history.iter().rfind(|e| e.event_type == EventType::InvocationCompleted).unwrap();
    let error = completed.details.error.as_ref().and_then(|e| e.payload.as_ref()).unwrap();
    assert_eq!(error.error_type.as_deref(), Some(DEADLINE_ERROR_TYPE));
    // Due at once: a resume is queued without delay.
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1);
    assert_eq!((resume_of(&sent[0].1), sent[0].2), (arn.as_str(), Duration::ZERO));

    // The next invocation (no deadline) finishes the rest; every step ran at most twice.
    let out = functions.handle(serde_json::to_value(&sent[0].1).unwrap(), "slow").await.unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
    assert_eq!(out["result"], "45");
    f.runner.inspect(&arn).await.assert_well_formed();
}

async fn parent(ctx: DurableContext, n: u32) -> Result<u32, Error> {
    let doubled: u32 = ctx.invoke("double it", "doubler", n).await?;
    Ok(doubled + 1)
}

async fn doubler(ctx: DurableContext, n: u32) -> Result<u32, Error> {
    ctx.step("double", async |_| Ok(n * 2)).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_chained_invoke_invokes_the_child_function_which_resumes_the_parent() {
    let f = fixture(Functions::new().register("parent", handler(parent)).register("doubler", handler(doubler)));
    let out = f.send("parent", json!({"durable": "start", "input": 20})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert_eq!(out["status"], "RUNNING");
    // The child execution exists; its function is invoked with a resume of it.
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0.as_deref(), Some("doubler"));
    let child = resume_of(&sent[0].1).to_owned();
    assert!(child.contains(":function:doubler:"), "{child}");

    // The child runs, ends, and invokes the parent's function with a resume of the parent.
    let out = f.send("doubler", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!((out["status"].clone(), out["result"].clone()), (json!("SUCCEEDED"), json!("40")));
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0.as_deref(), Some("parent"));
    assert_eq!(resume_of(&sent[0].1), arn);
    let out = f.send("parent", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!((out["status"].clone(), out["result"].clone()), (json!("SUCCEEDED"), json!("41")));
    let run = f.runner.inspect(&arn).await;
    run.assert_well_formed();
    assert_eq!(run.operation("double it").unwrap().status, OperationStatus::Succeeded);

    // A resume of the child sent to the parent's function is forwarded to the child's.
    let out = f.send("parent", json!({"durable": "resume", "executionArn": child})).await.unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "closed: nothing to forward");
}

#[tokio::test(flavor = "current_thread")]
async fn the_sweep_recovers_lost_wake_ups_and_dead_invocations() {
    let f = fixture(Functions::new().handler(handler(order)));
    let out = f.send("orders", json!({"durable": "start", "input": "o-5"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    // The queued wake-up is lost.
    f.outbox.take();
    // Not overdue yet: the sweep leaves it to its wake-up.
    f.runner.advance(Duration::from_secs(2));
    let swept = f.send("orders", json!({"durable": "sweep"})).await.unwrap();
    assert_eq!(swept["resumed"], json!([]));
    // Overdue by more than the grace period: the sweep resumes it.
    f.runner.advance(Duration::from_secs(10));
    let swept = f.send("orders", json!({"durable": "sweep"})).await.unwrap();
    assert_eq!(swept["resumed"], json!([arn]));
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(resume_of(&sent[0].1), arn);

    // An invocation that died (begun, never ended): due again once its lease passes.
    let now = durable_core::clock::Clock::now(f.runner.clock());
    f.runner.service().begin_invocation_leased(&arn, now.plus_seconds(60)).await.unwrap();
    let swept = f.send("orders", json!({"durable": "sweep"})).await.unwrap();
    assert_eq!(swept["resumed"], json!([]), "the lease holds");
    let out = f.send("orders", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!(out["invocations"], 0, "a resume during a live lease does nothing");
    f.runner.advance(Duration::from_secs(71));
    let swept = f.send("orders", json!({"durable": "sweep"})).await.unwrap();
    assert_eq!(swept["resumed"], json!([arn]));
    let out = f.send("orders", serde_json::to_value(&f.outbox.take()[0].1).unwrap()).await.unwrap();
    assert_eq!(out["invocations"], 1);
    let run = f.runner.inspect(&arn).await;
    run.assert_well_formed();
    assert_eq!(run.status(), ExecutionStatus::Running);
    assert_eq!(run.operation("carrier").unwrap().status, OperationStatus::Started, "on to the callback");
    let lost = run.history.iter().filter(|e| {
        e.event_type == EventType::InvocationCompleted
            && e.details.error.as_ref().and_then(|x| x.payload.as_ref()).and_then(|p| p.error_type.as_deref())
                == Some(durable_core::service::INVOCATION_LOST_ERROR_TYPE)
    });
    assert_eq!(lost.count(), 1, "the dead invocation is recorded as lost");
}

#[tokio::test(flavor = "current_thread")]
async fn an_sqs_batch_runs_each_message_and_reports_transient_failures() {
    let f = fixture(Functions::new().handler(handler(order)));
    let out = f.send("orders", json!({"durable": "start", "input": "o-6"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    f.outbox.take();
    f.runner.advance(Duration::from_secs(2));
    let record = |id: &str, body: Value| {
        json!({"messageId": id, "receiptHandle": "rh", "body": body.to_string(), "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:wake", "attributes": {}})
    };
    let batch = json!({"Records": [
        record("m1", json!({"durable": "resume", "executionArn": arn})),
        record("m2", json!({"durable": "resume", "executionArn": arn})),
        record("m3", json!({"hello": "world"})),
        record("m4", json!({"durable": "resume", "executionArn": "arn:unknown"})),
    ]});
    assert!(matches!(DurableEvent::parse(batch.clone()).unwrap(), DurableEvent::Sqs(m) if m.len() == 4));
    let out = f.send("orders", batch).await.unwrap();
    // Nothing transient failed; the bad messages are dropped, not retried forever.
    assert_eq!(out, json!({"batchItemFailures": []}));
    let run = f.runner.inspect(&arn).await;
    assert_eq!(run.invocations(), 2, "the duplicate resume did nothing");
    assert_eq!(run.operation("carrier").unwrap().status, OperationStatus::Started);
}

#[tokio::test(flavor = "current_thread")]
async fn self_hosted_events_without_a_table_say_what_to_configure() {
    // The function reads its table from the process's environment, as a Lambda function
    // does; a test process with one set cannot check this, and says so instead of passing.
    for var in [TABLE_VAR, "DURABLE_DYNAMODB_TABLE"] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} is set in the test's environment: this test checks a function without a table; unset it"
        );
    }
    let functions = Functions::new().handler(handler(order));
    let err = functions.handle(json!({"durable": "sweep"}), "orders").await.unwrap_err();
    assert_eq!(err.error_type, NOT_CONFIGURED_ERROR_TYPE);
    assert!(err.error_message.contains("DURABLE_TABLE"), "{}", err.error_message);
}

#[tokio::test(flavor = "current_thread")]
async fn a_short_timeout_still_makes_progress_instead_of_queueing_itself_forever() {
    let f = fixture(Functions::new().handler(handler(slow_steps)));
    // The default margin (10 s) is more than the 150 ms this event has: a third of it is
    // kept instead, and every event gets some steps done.
    let mut arn = String::new();
    let mut event = json!({"durable": "start", "input": 6});
    for event_no in 0..20 {
        let inv = Invocation {
            function_name: "slow",
            function_arn: None,
            deadline: Some(SystemTime::now() + Duration::from_millis(150)),
        };
        let out = f.functions.handle_invocation(event.clone(), &inv).await.unwrap();
        arn = out["executionArn"].as_str().unwrap().to_owned();
        if out["status"] == "SUCCEEDED" {
            assert_eq!(out["result"], "15");
            assert!(event_no >= 1, "150 ms are not enough for 6 steps of 40 ms");
            f.runner.inspect(&arn).await.assert_well_formed();
            return;
        }
        assert_eq!(out["invocations"], 1, "{out}");
        let sent = f.outbox.take();
        assert_eq!(sent.len(), 1);
        event = serde_json::to_value(&sent[0].1).unwrap();
    }
    panic!("{arn} did not finish in 20 events");
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_queue_delayed_wake_ups_are_the_sweeps_and_immediate_ones_invoke_the_function() {
    let store = Arc::new(MemoryStore::new());
    let runner = TestRunner::with_store(store.clone(), durable_core::service::ServiceConfig::default());
    let outbox = Rc::new(Outbox { no_queue: true, ..Outbox::default() });
    let mode = SelfHosted::new(store, outbox.clone()).clock(Arc::new(runner.clock().clone()));
    let functions = Functions::new().handler(handler(order)).self_hosted(mode);
    let out = functions.handle(json!({"durable": "start", "input": "o-9"}), "orders").await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert!(outbox.take().is_empty(), "the 2 s wait is left to the sweep");
    runner.advance(Duration::from_secs(12));
    functions.handle(json!({"durable": "sweep"}), "orders").await.unwrap();
    let sent = outbox.take();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.as_deref(), resume_of(&sent[0].1)), (Some("orders"), arn.as_str()), "invoked directly");
    functions.handle(serde_json::to_value(&sent[0].1).unwrap(), "orders").await.unwrap();
    let id = runner.callback_ids(&arn).await.remove(0);
    functions
        .handle(json!({"durable": "callback", "action": "succeed", "callbackId": id, "result": "t"}), "orders")
        .await
        .unwrap();
    let sent = outbox.take();
    assert_eq!(sent[0].0.as_deref(), Some("orders"));
    let out = functions.handle(serde_json::to_value(&sent[0].1).unwrap(), "orders").await.unwrap();
    assert_eq!(out["result"], "\"rsv-o-9/t\"");
}

async fn long_nap(ctx: DurableContext, id: String) -> Result<String, Error> {
    ctx.wait("long-nap", Duration::from_mins(40)).await?;
    ctx.wait("short-nap", Duration::from_mins(1)).await?;
    Ok(id)
}

/// The wake-up time a relayed resume carries.
fn relay_of(event: &SelfHostedEvent) -> Option<i64> {
    match event {
        SelfHostedEvent::Resume { wake_at, .. } => *wake_at,
        other => panic!("not a resume: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_wait_beyond_the_queues_15_minutes_is_relayed_to_the_minute_and_duplicates_die_out() {
    let f = fixture(Functions::new().handler(handler(long_nap)));
    let out = f.send("naps", json!({"durable": "start", "input": "n-1"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    let due = f.runner.inspect(&arn).await.record.wake_at.unwrap().as_millis();

    // 40 minutes: a relay delayed the queue's 15 minutes, carrying the wake-up time.
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0.as_deref(), sent[0].2), (None, MAX_QUEUE_DELAY));
    assert_eq!(relay_of(&sent[0].1), Some(due));
    let relay = serde_json::to_value(&sent[0].1).unwrap();
    assert_eq!(relay["wakeAt"], json!(due), "on the wire: {relay}");

    // Each hop runs nothing and sends the relay on: 15, then the 10 minutes left.
    f.runner.advance(MAX_QUEUE_DELAY);
    let out = f.send("naps", relay.clone()).await.unwrap();
    assert_eq!((out["invocations"].clone(), out["relayed"].clone()), (json!(0), json!(true)));
    let hop = f.outbox.take();
    assert_eq!((hop.len(), hop[0].2, relay_of(&hop[0].1)), (1, MAX_QUEUE_DELAY, Some(due)));
    // SQS delivered that hop twice: both go on (the duplicate lives as long as the wait).
    f.runner.advance(MAX_QUEUE_DELAY);
    let hop = serde_json::to_value(&hop[0].1).unwrap();
    f.send("naps", hop.clone()).await.unwrap();
    f.send("naps", hop).await.unwrap();
    let last = f.outbox.take();
    assert_eq!(last.len(), 2);
    assert!(last.iter().all(|(_, e, d)| *d == Duration::from_mins(10) && relay_of(e).is_none()), "{last:?}");

    // On time, the first runs the execution on to the next (short) wait; the duplicate
    // finds nothing due and, being no relay, sends nothing.
    f.runner.advance(Duration::from_mins(10));
    let out = f.send("naps", serde_json::to_value(&last[0].1).unwrap()).await.unwrap();
    assert_eq!(out["invocations"], 1);
    let next = f.outbox.take();
    assert_eq!((next.len(), next[0].2), (1, Duration::from_mins(1)));
    let dup = f.send("naps", serde_json::to_value(&last[1].1).unwrap()).await.unwrap();
    assert_eq!(dup["invocations"], 0);
    assert!(f.outbox.take().is_empty());

    // A stale relay (its wake-up time is no longer the execution's) is dropped.
    let out = f.send("naps", relay).await.unwrap();
    assert_eq!((out["invocations"].clone(), out.get("relayed")), (json!(0), None));
    assert!(f.outbox.take().is_empty());

    f.runner.advance(Duration::from_mins(1));
    let out = f.send("naps", serde_json::to_value(&next[0].1).unwrap()).await.unwrap();
    assert_eq!(out["result"], "\"n-1\"");
}

async fn two_day_nap(ctx: DurableContext, (): ()) -> Result<(), Error> {
    ctx.wait("two-days", Duration::from_hours(48)).await?;
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_wait_beyond_the_relay_horizon_is_left_to_the_sweep() {
    let f = fixture(Functions::new().handler(handler(two_day_nap)));
    let out = f.send("naps", json!({"durable": "start"})).await.unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert!(f.outbox.take().is_empty(), "48 h is past the default 24 h horizon: no relay");
    f.runner.advance(Duration::from_hours(48) + Duration::from_secs(11));
    let swept = f.send("naps", json!({"durable": "sweep"})).await.unwrap();
    assert_eq!(swept["resumed"], json!([arn]));
    let sent = f.outbox.take();
    let out = f.send("naps", serde_json::to_value(&sent[0].1).unwrap()).await.unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
}

#[test]
fn function_names_come_out_of_execution_arns() {
    assert_eq!(
        function_of("arn:aws:lambda:us-east-1:1:function:lambda-order:$LATEST/durable-execution/o-1/abc"),
        "lambda-order"
    );
    assert_eq!(function_of("arn:aws:lambda:us-east-1:1:function:child"), "child");
    assert_eq!(function_of("child:live"), "child");
    assert_eq!(function_of("child"), "child");
}

#[test]
fn a_payload_the_store_cannot_hold_is_dropped_not_retried() {
    let too_large = service_error(ServiceError::Store(StoreError::TooLarge("a record of 70 MiB".into())));
    assert_eq!(too_large.error_type, INVALID_EVENT_ERROR_TYPE, "{too_large:?}");
    assert!(too_large.error_message.starts_with("RequestTooLargeException"), "{too_large:?}");
    let throttled = service_error(ServiceError::Store(StoreError::backend("throttled", true)));
    assert_eq!(throttled.error_type, TRANSIENT_ERROR_TYPE, "{throttled:?}");
}
