//! Self-hosted mode end to end: the `lambda-order` binary, unchanged, served by `cargo lambda
//! watch` as a plain Lambda function journaling to DynamoDB (moto, single-threaded) and
//! queueing its wake-ups in SQS (moto, threaded). The test plays what AWS would do around
//! it: it invokes the function through the Lambda Invoke API, plays the SQS event source
//! mapping (receive, invoke with an SQS event, delete) and the EventBridge schedule (a
//! `sweep` event), and completes the callback from outside. `scripts/standins/selfhosted.sh`
//! starts the stand-ins and exports their endpoints. Built only with the `standins` feature
//! (which `./scripts/test` turns on); built, the tests fail when the stand-ins are missing.
//!
//! ```text
//! scripts/standins/selfhosted.sh cargo test -p durable-tests --features standins --test selfhosted
//! ```

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable::lambda::aws_sdk_lambda;
use durable::lambda::aws_sdk_sqs;
use durable::lambda::selfhosted::AwsWakeups;
use durable::lambda::{Functions, SelfHosted};
use durable::model::{EventType, ExecutionStatus};
use durable::prelude::*;
use durable::service::{CheckpointService, ServiceConfig, StartExecution};
use durable::store::dynamodb::{DynamoOptions, DynamoStore};
use durable::testing::{TestExecution, TestRunner};
use durable_tests::emulator::{Emulator, LAMBDA_ORDER_HISTORY, event_types};
use serde_json::{Value, json};

/// A variable `scripts/standins/selfhosted.sh` exports: watch's endpoint
/// (`DURABLE_SELFHOSTED_WATCH_ENDPOINT`), the table (`DURABLE_SELFHOSTED_TABLE`: not
/// `DURABLE_TABLE`, which would configure self-hosted mode in every test process), the
/// queue. Without the stand-ins the suite fails here, saying how to start them.
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this suite runs against the self-hosted stand-ins; start them and run it with \
             `scripts/standins/selfhosted.sh cargo test -p durable-tests --features standins --test selfhosted` \
             (./scripts/test does)"
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", durable_tests::conformance::placeholders::random_string(12))
}

/// The AWS side of the test: a Lambda client pointed at watch (SDK retries off: watch
/// answers a function error with HTTP 500, which the SDK would retry), SQS and DynamoDB
/// clients from the environment (moto).
struct Aws {
    lambda: aws_sdk_lambda::Client,
    sqs: aws_sdk_sqs::Client,
    config: durable::lambda::aws_config::SdkConfig,
    watch: Emulator,
    queue: String,
}

impl Aws {
    async fn new(watch: &str) -> Aws {
        let config = durable::lambda::aws_config::defaults(durable::lambda::aws_config::BehaviorVersion::latest())
            .retry_config(durable::lambda::aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&config).endpoint_url(watch).build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&config);
        let store = DynamoStore::new(&config, DynamoOptions::new(env("DURABLE_SELFHOSTED_TABLE")));
        store.create_table().await.expect("create the table");
        Aws { lambda, sqs, config, watch: Emulator::new(watch), queue: env("DURABLE_QUEUE_URL") }
    }

    /// Invokes `lambda-order` synchronously with `event` through the Lambda Invoke API;
    /// the function's answer.
    async fn invoke(&self, event: &Value) -> Value {
        self.invoke_function("lambda-order", event).await
    }

    /// Invokes `function` synchronously with `event`; the function's answer.
    async fn invoke_function(&self, function: &str, event: &Value) -> Value {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke {event}: {e:?}"));
        assert_eq!(out.function_error, None);
        serde_json::from_slice(out.payload.expect("a payload").as_ref()).expect("JSON")
    }

    /// Invokes with `event`, expecting a function error (HTTP 500 from watch); its body.
    fn invoke_failing(&self, event: &Value) -> String {
        let (status, body) = self.watch.post_json("/2015-03-31/functions/lambda-order/invocations", event).unwrap();
        assert_ne!(status, 200, "{body}");
        body
    }

    /// Receives what the queue holds within `wait` (long polls).
    async fn receive(&self, wait: Duration) -> Vec<aws_sdk_sqs::types::Message> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .wait_time_seconds(left.as_secs().min(5) as i32)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if !messages.is_empty() || left.is_zero() {
                return messages;
            }
        }
    }

    /// The SQS event source mapping: invokes the function with the messages as an SQS
    /// event, then deletes them; the function's answer.
    async fn deliver(&self, messages: &[aws_sdk_sqs::types::Message]) -> Value {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:durable-wake",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let answer = self.invoke(&json!({ "Records": records })).await;
        self.delete(messages).await;
        answer
    }

    async fn delete(&self, messages: &[aws_sdk_sqs::types::Message]) {
        for m in messages {
            self.sqs
                .delete_message()
                .queue_url(&self.queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }

    async fn history(&self, arn: &str) -> Vec<Value> {
        let h = self.invoke(&json!({"durable": "history", "executionArn": arn})).await;
        h["Events"].as_array().cloned().unwrap_or_default()
    }

    async fn get(&self, arn: &str) -> Value {
        self.invoke(&json!({"durable": "get", "executionArn": arn})).await
    }
}

/// The execution a `resume` message body names.
fn resumed(m: &aws_sdk_sqs::types::Message) -> String {
    let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(body["durable"], "resume", "{body}");
    body["executionArn"].as_str().unwrap().to_owned()
}

fn callback_id(history: &[Value]) -> Option<String> {
    history
        .iter()
        .find(|e| e["EventType"] == "CallbackStarted")
        .and_then(|e| e["CallbackStartedDetails"]["CallbackId"].as_str())
        .map(str::to_owned)
}

/// The order workflow, then a chained invoke across two functions: one after the other,
/// since both play the event source mapping of the same queue.
#[tokio::test(flavor = "current_thread")]
async fn order_workflow_and_chained_invoke_through_lambda_and_sqs() {
    let aws = Aws::new(&env("DURABLE_SELFHOSTED_WATCH_ENDPOINT")).await;
    order_workflow_waits_takes_a_callback_and_recovers_a_lost_wake_up(&aws).await;
    chained_invoke_starts_the_child_function_which_resumes_the_parent(&aws).await;
}

async fn order_workflow_waits_takes_a_callback_and_recovers_a_lost_wake_up(aws: &Aws) {
    let started = Instant::now();

    // Start through the Lambda Invoke API: the first invocation runs until the 2 s wait.
    let name = unique("order");
    let start = json!({"durable": "start", "input": {"id": "o-77", "amount_cents": 1999}, "executionName": name});
    let out = aws.invoke(&start).await;
    assert_eq!((out["status"].clone(), out["created"].clone()), (json!("RUNNING"), json!(true)), "{out}");
    let arn = out["executionArn"].as_str().unwrap().to_owned();
    assert!(arn.contains(":function:lambda-order:"), "{arn}");
    // Idempotent by name.
    let again = aws.invoke(&start).await;
    assert_eq!((again["executionArn"].as_str(), again["created"].clone()), (Some(arn.as_str()), json!(false)));

    // The wake-up is an SQS message delayed by the wait: nothing to receive at once.
    let early = aws.receive(Duration::ZERO).await;
    assert!(early.is_empty(), "the resume is delayed: {early:?}");
    let messages = aws.receive(Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(resumed(&messages[0]), arn);
    assert!(started.elapsed() >= Duration::from_millis(1500), "delivered after the wait, not before");
    let answer = aws.deliver(&messages).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));

    // Now it waits for the carrier: nothing queued; a duplicate resume does nothing.
    let history = aws.history(&arn).await;
    let id = callback_id(&history).expect("a callback started");
    let dup = aws.invoke(&json!({"durable": "resume", "executionArn": arn})).await;
    assert_eq!((dup["status"].clone(), dup["invocations"].clone()), (json!("RUNNING"), json!(0)));
    assert!(aws.receive(Duration::ZERO).await.is_empty());

    // A forged callback id is refused and changes nothing.
    let forged = format!("{}AA", &id[..id.len() - 2]);
    let body = aws.invoke_failing(&json!({"durable": "callback", "action": "succeed", "callbackId": forged}));
    assert!(body.contains("Durable.InvalidEvent") && body.contains("callback id"), "{body}");
    assert_eq!(aws.history(&arn).await.len(), history.len());

    // The carrier answers from outside: the callback event queues an immediate resume.
    let done =
        aws.invoke(&json!({"durable": "callback", "action": "succeed", "callbackId": id, "result": "trk-42"})).await;
    assert_eq!(done["executionArn"], arn.as_str());
    let messages = aws.receive(Duration::from_secs(10)).await;
    assert_eq!(messages.iter().map(resumed).collect::<Vec<_>>(), [arn.as_str()]);
    aws.deliver(&messages).await;

    let execution = aws.get(&arn).await;
    assert_eq!(execution["Status"], "SUCCEEDED", "{execution}");
    let result: Value = serde_json::from_str(execution["Result"].as_str().unwrap()).unwrap();
    assert_eq!(
        result,
        json!({"order": "o-77", "reservation": "rsv-o-77", "payment": "pay-o-77-1", "shipment": "trk-42"})
    );
    let history = aws.history(&arn).await;
    assert_eq!(event_types(&history), LAMBDA_ORDER_HISTORY, "{history:#?}");
    let callback = history.iter().find(|e| e["EventType"] == "CallbackSucceeded").unwrap();
    assert_eq!(callback["CallbackSucceededDetails"]["Result"]["Payload"], "\"trk-42\"");

    // A lost wake-up: another order's delayed resume is received and dropped, never
    // delivered. The sweep (the EventBridge schedule's event) finds it overdue and queues
    // it again.
    let lost = aws
        .invoke(
            &json!({"durable": "start", "input": {"id": "o-78", "amount_cents": 5}, "executionName": unique("lost")}),
        )
        .await;
    let lost_arn = lost["executionArn"].as_str().unwrap().to_owned();
    let messages = aws.receive(Duration::from_secs(20)).await;
    assert_eq!(messages.iter().map(resumed).collect::<Vec<_>>(), [lost_arn.as_str()]);
    aws.delete(&messages).await;
    // Sweeps until one finds it overdue by more than the sweep's grace (1 s here). A
    // wall-clock poll: the function's clock is its process's own. Bounded: the wake-up was
    // due when its message arrived, so the grace passes within a second or two.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let swept = aws.invoke(&json!({"durable": "sweep"})).await;
        let swept: BTreeSet<&str> = swept["resumed"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        if swept.contains(lost_arn.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "no sweep found {lost_arn} overdue within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let messages = aws.receive(Duration::from_secs(10)).await;
    assert!(messages.iter().any(|m| resumed(m) == lost_arn));
    aws.deliver(&messages).await;
    let history = aws.history(&lost_arn).await;
    assert!(callback_id(&history).is_some(), "the recovered order went on to its callback: {history:#?}");
    eprintln!("self-hosted order workflow: {:.1} s", started.elapsed().as_secs_f64());
}

async fn chained_invoke_starts_the_child_function_which_resumes_the_parent(aws: &Aws) {
    let started = Instant::now();
    // The parent's invocation suspends on the invoke and invokes `chain-child`
    // asynchronously (Lambda's Invoke, InvocationType=Event) with a resume of the child
    // execution; the child runs until its 1 s wait and queues its wake-up.
    let out = aws.invoke_function("chain-parent", &json!({"durable": "start", "input": 20})).await;
    let parent = out["executionArn"].as_str().unwrap().to_owned();
    assert!(parent.contains(":function:chain-parent:"), "{parent}");
    let history = aws.history(&parent).await;
    let invoked = history.iter().find(|e| e["EventType"] == "ChainedInvokeStarted").expect("an invoke started");
    assert_eq!(invoked["ChainedInvokeStartedDetails"]["FunctionName"], "chain-child");
    let child = invoked["ChainedInvokeStartedDetails"]["DurableExecutionArn"].as_str().unwrap().to_owned();
    let child_history = aws.history(&child).await;
    assert!(event_types(&child_history).contains(&"WaitStarted"), "the child ran: {child_history:#?}");

    // The child's wake-up arrives on the queue, which this test delivers to `lambda-order`:
    // that function forwards it to the child's (another Invoke); the child finishes and
    // invokes the parent's function with a resume of the parent, which finishes too.
    let messages = aws.receive(Duration::from_secs(20)).await;
    assert_eq!(messages.iter().map(resumed).collect::<Vec<_>>(), [child.as_str()]);
    assert_eq!(aws.deliver(&messages).await, json!({"batchItemFailures": []}));
    let execution = aws.get(&parent).await;
    assert_eq!(execution["Status"], "SUCCEEDED", "{execution}");
    assert_eq!(execution["Result"], "41");
    let history = aws.history(&parent).await;
    assert_eq!(
        event_types(&history),
        [
            "ExecutionStarted",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ],
        "{history:#?}"
    );
    assert_eq!(aws.get(&child).await["Result"], "40");
    assert!(aws.receive(Duration::ZERO).await.is_empty(), "nothing left to wake");
    eprintln!("self-hosted chained invoke: {:.1} s", started.elapsed().as_secs_f64());
}

/// Sums `n` steps, each body taking `ms` milliseconds of real time (so racing invocations
/// interleave: they race against DynamoDB over HTTP, whose clock is no clock of ours).
async fn tally(ctx: DurableContext, (n, ms): (u32, u64)) -> Result<u32> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx
            .step("add", async |_| {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(i)
            })
            .await?;
    }
    Ok(sum)
}

/// Whoever lost the race, the execution is whole: one result, every step succeeded once,
/// a well-formed history.
async fn assert_whole(store: &Arc<dyn durable::store::Store>, arn: &str, what: &str) -> TestExecution {
    let run = TestRunner::with_store(store.clone(), ServiceConfig::default()).inspect(arn).await;
    run.assert_well_formed();
    assert_eq!(run.status(), ExecutionStatus::Succeeded, "{what}");
    assert_eq!(run.result::<u32>().unwrap(), 15, "{what}");
    let succeeded = run.history.iter().filter(|e| e.event_type == EventType::StepSucceeded).count();
    assert_eq!(succeeded, 6, "{what}: every step succeeded once");
    assert_eq!(run.operations_named("add").len(), 6, "{what}");
    run
}

#[tokio::test(flavor = "current_thread")]
async fn racing_resumes_of_one_execution_cannot_corrupt_it() {
    let aws = Aws::new(&env("DURABLE_SELFHOSTED_WATCH_ENDPOINT")).await;
    // Its own queue, so the order test's messages and these never mix.
    let queue = aws.sqs.create_queue().queue_name(unique("race")).send().await.unwrap().queue_url.unwrap();
    // Its own table too: the order test's sweep must not find these executions (their
    // function, `tally`, is no Lambda function).
    let table = format!("{}-race", env("DURABLE_SELFHOSTED_TABLE"));
    DynamoStore::new(&aws.config, DynamoOptions::new(&table)).create_table().await.expect("create the table");
    // Two "processes": each its own store client, service and function registry.
    let process = || {
        let store = Arc::new(DynamoStore::new(&aws.config, DynamoOptions::new(&table)));
        let wakeups = AwsWakeups::new(
            aws_sdk_sqs::Client::new(&aws.config),
            Some(queue.clone()),
            aws_sdk_lambda::Client::new(&aws.config),
        );
        Functions::new().register("tally", handler(tally)).self_hosted(SelfHosted::new(store, Rc::new(wakeups)))
    };
    let (a, b) = (process(), process());
    let store: Arc<dyn durable::store::Store> = Arc::new(DynamoStore::new(&aws.config, DynamoOptions::new(&table)));
    let service = Arc::new(CheckpointService::new(store.clone()));
    let start = async |step_ms: u64| {
        let input = Some(format!("[6, {step_ms}]"));
        let req = StartExecution { function_name: "tally".into(), input, ..StartExecution::default() };
        service.start_execution(req).await.unwrap().arn
    };

    // Two resumes at once of an execution that is due: both see it due; the store's
    // conditional writes let one begin, the other backs off (or begins later and fences
    // the first off).
    for round in 0..3 {
        let arn = start(20).await;
        let resume = json!({"durable": "resume", "executionArn": arn});
        let (ra, rb) = tokio::join!(a.handle(resume.clone(), "tally"), b.handle(resume, "tally"));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let ran = ra["invocations"].as_u64().unwrap() + rb["invocations"].as_u64().unwrap();
        assert!(ran >= 1, "round {round}: {ra} {rb}");
        assert_whole(&store, &arn, &format!("round {round}: {ra} {rb}")).await;
    }

    // A zombie: an invocation whose lease has passed (its process stalled) still running
    // when a resume comes. The resume fences it off; the zombie's next checkpoint is
    // refused, so it stops without writing anything more. (Its steps take 150 ms: a
    // zombie that writes without pause delays the takeover until it pauses.)
    let arn = start(150).await;
    let now = durable::clock::Clock::now(&durable::clock::SystemClock);
    let input = service.begin_invocation_leased(&arn, now).await.unwrap();
    let zombie_handler = handler(tally);
    let zombie = durable::engine::run_invocation(&zombie_handler, input, service.checkpointer());
    let resume = async {
        // The resume comes once the zombie is under way: its first step is in the store. A
        // bounded wall-clock poll of the store (moto), which notifies nobody.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !service.operations(&arn).await.unwrap().iter().any(|o| o.name.as_deref() == Some("add")) {
            assert!(Instant::now() < deadline, "the zombie recorded no step within 20 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.handle(json!({"durable": "resume", "executionArn": arn}), "tally").await
    };
    let (zombie, resumed) = tokio::join!(zombie, resume);
    assert!(matches!(zombie, durable::engine::InvocationOutcome::Revoked(_)), "{zombie:?} / {resumed:?}");
    assert_eq!(resumed.unwrap()["invocations"], 1);
    let run = assert_whole(&store, &arn, "zombie").await;
    let lost = run.history.iter().filter(|e| {
        e.event_type == EventType::InvocationCompleted
            && e.details.error.as_ref().and_then(|x| x.payload.as_ref()).and_then(|p| p.error_type.as_deref())
                == Some(durable::service::INVOCATION_LOST_ERROR_TYPE)
    });
    assert_eq!(lost.count(), 1, "the zombie's invocation is recorded as lost");
}
