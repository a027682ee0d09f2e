//! Managed mode end to end: AWS's own durable-execution emulator (`dex-local-runner`)
//! invokes durable's Lambda binaries served by `cargo lambda watch`; they checkpoint back
//! to the emulator through aws-sdk-lambda. `scripts/standins/lambda.sh` starts both and
//! exports `DURABLE_EMULATOR_ENDPOINT`. Built only with the `standins` feature (which
//! `./scripts/test` turns on); built, the tests fail when the stand-ins are missing.
//!
//! ```text
//! scripts/standins/lambda.sh cargo test -p durable-tests --features standins --test emulator
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durable::model::ErrorObject;
use durable_tests::conformance::harness::{Outcome, requirements_dir};
use durable_tests::conformance::report::{Comparison, KnownFailures};
use durable_tests::conformance::requirement::load_all;
use durable_tests::emulator::{Emulator, LAMBDA_ORDER_HISTORY, endpoint, event_types, run_requirement, watch_endpoint};
use serde_json::{Value, json};

/// Long enough for a cold function process and a 2 s wait, with room for a loaded machine.
const WORKFLOW_TIMEOUT: Duration = Duration::from_secs(90);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", durable_tests::conformance::placeholders::random_string(12))
}

/// The id of the callback that the history started under `name`, once there is one.
fn callback_id(history: &[Value], name: &str) -> Option<String> {
    history
        .iter()
        .find(|e| e["EventType"] == "CallbackStarted" && e["Name"] == name)
        .and_then(|e| e["CallbackStartedDetails"]["CallbackId"].as_str())
        .map(str::to_owned)
}

fn status(execution: &Value) -> &str {
    execution["Status"].as_str().unwrap_or_default()
}

#[test]
fn order_workflow_steps_waits_and_takes_a_callback_in_managed_mode() {
    let em = endpoint();
    let input = json!({"id": "o-77", "amount_cents": 1999}).to_string();
    let arn = em.start("lambda-order", &unique("order"), Some(&input)).unwrap();

    // It suspends twice: on the 2 s wait (the emulator re-invokes it), then on the callback.
    let (execution, history) =
        em.wait_for(&arn, WORKFLOW_TIMEOUT, |_, h| callback_id(h, "shipping-confirmation").is_some()).unwrap();
    assert_eq!(status(&execution), "RUNNING");
    let id = callback_id(&history, "shipping-confirmation").unwrap();
    em.callback_success(&id, Some("\"trk-42\"")).unwrap();

    let (execution, history) = em.wait_for(&arn, WORKFLOW_TIMEOUT, |e, _| status(e) != "RUNNING").unwrap();
    assert_eq!(status(&execution), "SUCCEEDED", "{execution}");
    let result: Value = serde_json::from_str(execution["Result"].as_str().unwrap()).unwrap();
    assert_eq!(
        result,
        json!({"order": "o-77", "reservation": "rsv-o-77", "payment": "pay-o-77-1", "shipment": "trk-42"})
    );
    let types = event_types(&history);
    assert_eq!(types, LAMBDA_ORDER_HISTORY, "{history:#?}");
    let wait = history.iter().find(|e| e["EventType"] == "WaitStarted").unwrap();
    assert_eq!(wait["Name"], "cool-off");
    assert_eq!(wait["WaitStartedDetails"]["Duration"], 2);
    let callback = history.iter().find(|e| e["EventType"] == "CallbackSucceeded").unwrap();
    assert_eq!(callback["CallbackSucceededDetails"]["Result"]["Payload"], "\"trk-42\"");
}

#[test]
fn approval_workflow_is_approved_or_rejected_from_outside() {
    let em = endpoint();
    let expense = json!({"id": "e-1", "employee": "ada", "amount_cents": 12000}).to_string();
    let approved = em.start("lambda-approval", &unique("approve"), Some(&expense)).unwrap();
    let rejected = em.start("lambda-approval", &unique("reject"), Some(&expense)).unwrap();

    for (arn, approve) in [(&approved, true), (&rejected, false)] {
        // wait_for_callback names its callback after the operation, as AWS's SDKs do.
        let (_, history) =
            em.wait_for(arn, WORKFLOW_TIMEOUT, |_, h| h.iter().any(|e| e["EventType"] == "CallbackStarted")).unwrap();
        let started = history.iter().find(|e| e["EventType"] == "CallbackStarted").unwrap();
        let id = started["CallbackStartedDetails"]["CallbackId"].as_str().unwrap();
        // (The emulator renders CallbackStarted without the update's Timeout: REFERENCE 4.4.)
        assert_eq!(started["Name"], "manager-approval create callback id", "{started}");
        if approve {
            em.callback_success(id, Some("\"fine by me\"")).unwrap();
        } else {
            em.callback_failure(id, Some(&ErrorObject::new("Rejected", "over budget"))).unwrap();
        }
    }
    for (arn, want) in [
        (&approved, json!({"expense": "e-1", "approved": true, "note": "fine by me"})),
        (&rejected, json!({"expense": "e-1", "approved": false, "note": "over budget"})),
    ] {
        let (execution, history) = em.wait_for(arn, WORKFLOW_TIMEOUT, |e, _| status(e) != "RUNNING").unwrap();
        assert_eq!(status(&execution), "SUCCEEDED", "{execution}");
        let result: Value = serde_json::from_str(execution["Result"].as_str().unwrap()).unwrap();
        assert_eq!(result, want);
        let types = event_types(&history);
        assert_eq!(types.first(), Some(&"ExecutionStarted"));
        assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
        // A rejection fails the wait_for_callback context; the function catches it.
        let (callback, context) = if want["approved"] == true {
            ("CallbackSucceeded", "ContextSucceeded")
        } else {
            ("CallbackFailed", "ContextFailed")
        };
        assert!(types.contains(&"ContextStarted") && types.contains(&context), "{types:?}");
        assert!(types.contains(&callback), "{types:?}");
    }
}

#[test]
fn an_event_that_is_no_durable_invocation_gets_an_error_naming_what_was_expected() {
    let watch = watch_endpoint();
    let (status, body) = Emulator::new(&watch)
        .post_json("/2015-03-31/functions/lambda-order/invocations", &json!({"orderId": 1}))
        .unwrap();
    // cargo lambda watch answers a function error with HTTP 500 (Lambda: 200 and
    // X-Amz-Function-Error); the body is the error either way.
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("Durable.UnrecognisedEvent"), "{body}");
    assert!(body.contains("DurableExecutionArn, CheckpointToken, InitialExecutionState"), "{body}");
}

/// Requirements run at once: the emulator and `cargo lambda watch --concurrency` serve
/// several executions in parallel; most of a requirement's time is real waits.
const WORKERS: usize = 8;

#[test]
fn conformance_requirements_through_aws_emulator() {
    let em = endpoint();
    let registry = durable_tests::conformance::handlers::Registry::new();
    let requirements: Vec<_> =
        load_all(&requirements_dir()).unwrap().into_iter().filter(|r| registry.get(&r.id).is_some()).collect();
    assert_eq!(requirements.len(), 155, "every requirement has a handler");
    let known = KnownFailures::load(&emulator_known_failures_path()).unwrap();

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(Outcome, bool)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(req) = requirements.get(i) else { break };
                    let outcome = run_requirement(&em, req);
                    outcomes.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let mut runs = outcomes.into_inner().unwrap();
    runs.sort_by_key(|(o, _)| durable_tests::conformance::requirement::id_sort_key(&o.id));
    let strict = runs.iter().filter(|(o, strict)| o.passed() && *strict).count();
    let outcomes: Vec<Outcome> = runs.iter().map(|(o, _)| o.clone()).collect();
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    eprintln!(
        "conformance through AWS's emulator: {passed} of {} pass ignoring the emulator's blind spots, {strict} \
         strictly ({:.0} s)",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    for (o, strict) in &runs {
        let verdict = match (o.reason(), strict) {
            (None, true) => "pass (strict)".to_owned(),
            (None, false) => "pass".to_owned(),
            (Some(r), _) => format!("FAIL {r}"),
        };
        eprintln!("  {:6} {verdict}", o.id);
    }
    let comparison = Comparison::new(&outcomes, &known);
    assert!(comparison.is_clean(), "against {}:\n{}", emulator_known_failures_path().display(), comparison.describe());
}

fn emulator_known_failures_path() -> std::path::PathBuf {
    durable_tests::conformance::harness::workspace_root().join("tests/conformance/emulator-known-failures.txt")
}
