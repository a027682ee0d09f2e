//! A human-approval workflow: an expense is checked, a manager is asked to approve it, the
//! execution waits (suspended: nothing runs) until the manager answers from another
//! process, and the decision is recorded.
//!
//! ```text
//! cargo run --bin approval                         # waits for you: approve from another terminal
//! cargo run --bin approval -- --approve-after 2    # approves itself after 2 s (non-interactive)
//! APPROVE_AFTER=2 cargo run --bin approval         # the same
//! ```
//!
//! The program hosts the function on a local worker and serves the control plane (the AWS
//! durable-execution routes) on `127.0.0.1:9323` (another free port if that one is taken),
//! then prints the commands that complete the callback, for example
//!
//! ```text
//! cargo run --bin durable -- --endpoint http://127.0.0.1:9323 callback succeed <id> '"approved"'
//! cargo run --bin durable -- --endpoint http://127.0.0.1:9323 callback fail <id> --type Rejected --message 'over budget'
//! ```
//!
//! Any AWS client pointed at the endpoint works too, for example `aws lambda
//! send-durable-execution-callback-success --endpoint-url http://127.0.0.1:9323
//! --callback-id <id> --result '"approved"'` (AWS CLI v2 also needs
//! `--cli-binary-format raw-in-base64-out` to send the result as text). When the callback
//! completes, the worker resumes the execution, and the program prints the outcome and a
//! timeline of the history. The journal is in memory: see the `order` example for the
//! embedded store and restarts.

use std::time::Duration;

use durable::ErrorKind;
use durable::client::Client;
use durable::control_plane::DEFAULT_ADDR;
use durable::inspect::Timeline;
use durable::model::{OperationStatus, OperationType};
use durable::prelude::*;
use durable::service::CheckpointService;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Expense {
    id: String,
    employee: String,
    amount_cents: u64,
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Decision {
    expense: String,
    approved: bool,
    note: String,
}

#[durable]
async fn expense_approval(ctx: DurableContext, expense: Expense) -> Result<Decision> {
    let summary = ctx
        .step("validate", async |_| {
            if expense.amount_cents == 0 {
                return Err(Error::new("InvalidExpense", "the amount is zero"));
            }
            Ok(format!("{} asks ${:.2} for {}", expense.employee, expense.amount_cents as f64 / 100.0, expense.reason))
        })
        .await?;

    // Create a callback, hand its id to the approver in a step (here the step only logs;
    // a real one would send an email or a chat message), then wait for the answer. The
    // execution suspends until the callback is completed from outside, or for a day.
    let answer = ctx
        .wait_for_callback::<String>("manager-approval", async |callback_id, _step| {
            println!(
                "  asked     the manager to approve: {summary} (callback {}…)",
                callback_id.get(..12).unwrap_or(&callback_id)
            );
            Ok(())
        })
        .timeout(Duration::from_hours(24))
        .await;

    let (approved, note) = match answer {
        Ok(note) => (true, note),
        // `callback fail` rejects the expense; a timeout fails the execution instead.
        Err(e) if e.kind() == ErrorKind::CallbackFailed => {
            (false, format!("{}: {}", e.error_type().unwrap_or("Rejected"), e.message().unwrap_or("no reason given")))
        }
        Err(e) => return Err(e),
    };
    ctx.step("record-decision", async |_| {
        println!("  recorded  expense {} {}", expense.id, if approved { "approved" } else { "rejected" });
        Ok(())
    })
    .await?;
    Ok(Decision { expense: expense.id, approved, note })
}

/// The callback the execution waits on, once the worker has created it.
async fn pending_callback(
    service: &CheckpointService,
    arn: &str,
) -> std::result::Result<String, durable::service::ServiceError> {
    loop {
        let found = service.operations(arn).await?.into_iter().find_map(|op| {
            (op.op_type == OperationType::Callback && op.status == OperationStatus::Started)
                .then(|| op.callback_details.and_then(|d| d.callback_id))
                .flatten()
        });
        if let Some(id) = found {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The approver's side, as another process would see it: prints the callback id and the
/// command that completes it, and answers it itself after `approve_after`, if given.
async fn ask_manager(
    service: std::sync::Arc<durable::service::CheckpointService>,
    arn: String,
    endpoint: String,
    approve_after: Option<Duration>,
) -> std::result::Result<(), String> {
    let id = pending_callback(&service, &arn).await.map_err(|e| e.to_string())?;
    let cli = format!("cargo run --bin durable -- --endpoint {endpoint}");
    println!("\nwaiting for the manager. From another terminal, approve:\n");
    println!("  {cli} callback succeed {id} '\"approved\"'\n");
    println!("or reject:\n\n  {cli} callback fail {id} --type Rejected --message 'over budget'\n");
    println!("or look at it: {cli} timeline expense-42\n");
    if let Some(after) = approve_after {
        tokio::time::sleep(after).await;
        println!("  (approving it after {after:?}, as asked, through the control plane)");
        let client = Client::new(&endpoint).map_err(|e| e.to_string())?;
        client.callback_success(&id, Some("\"approved (demo)\"")).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `--approve-after <secs>` (or `--approve-after=<secs>`), else `APPROVE_AFTER`.
fn approve_after() -> std::result::Result<Option<Duration>, String> {
    let mut args = std::env::args().skip(1);
    let mut value = std::env::var("APPROVE_AFTER").ok();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--approve-after") {
            Some("") => value = Some(args.next().ok_or("--approve-after needs a number of seconds")?),
            Some(v) if v.starts_with('=') => value = Some(v[1..].to_owned()),
            _ => return Err(format!("unknown argument {arg:?}; usage: approval [--approve-after <secs>]")),
        }
    }
    value
        .map(|v| v.parse::<f64>().map(Duration::from_secs_f64).map_err(|_| format!("{v:?} is not a number of seconds")))
        .transpose()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let approve_after = approve_after()?;
    let runner = LocalRunner::builder().register("expense-approval", handler(expense_approval)).build();
    let server = match runner.control_plane(DEFAULT_ADDR).await {
        Ok(server) => server,
        Err(_) => runner.control_plane("127.0.0.1:0").await?,
    };
    let endpoint = server.endpoint();
    println!("worker and control plane at {endpoint}");

    let expense = Expense {
        id: "exp-42".into(),
        employee: "Ada".into(),
        amount_cents: 129_900,
        reason: "a standing desk".into(),
    };
    let arn = runner.start("expense-approval", &expense, Some("expense-42")).await?;
    println!("started execution expense-42\n");

    // The approver's side, as another process would see it: the callback id, and the
    // command that completes it.
    let approver = tokio::spawn(ask_manager(runner.service().clone(), arn.clone(), endpoint, approve_after));

    let record = runner.run_until_finished(&arn).await?;
    approver.abort();
    println!("\nexecution {} {}", record.name, record.status);
    match (&record.result, &record.error) {
        (Some(result), _) => println!("decision: {result}"),
        (_, Some(error)) => println!("error: {error}"),
        _ => {}
    }
    println!("\n{}", Timeline::from_events(&runner.service().full_history(&arn).await?));
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use durable::model::{ErrorObject, ExecutionStatus};
    use durable::testing::TestRunner;

    use super::*;

    fn desk() -> String {
        let e = Expense { id: "exp-1".into(), employee: "Ada".into(), amount_cents: 500, reason: "a desk".into() };
        serde_json::to_string(&e).unwrap()
    }

    /// Starts the workflow and runs it until it waits for the manager; returns the
    /// execution and the callback id.
    async fn waiting(runner: &TestRunner, h: &dyn durable::Handler) -> (String, String) {
        let arn = runner.start("expense-approval", None, Some(desk())).await.unwrap();
        assert_eq!(runner.settle(h, &arn).await.status(), ExecutionStatus::Running);
        let id = runner.callback_ids(&arn).await.pop().expect("a callback");
        (arn, id)
    }

    #[tokio::test]
    async fn approved_rejected_and_unanswered_expenses() {
        let runner = TestRunner::new();
        let h = handler(expense_approval);

        let (arn, id) = waiting(&runner, &h).await;
        runner.callback_success(&id, "\"fine\"").await.unwrap();
        let d: Decision = runner.settle(&h, &arn).await.result().unwrap();
        assert!(d.approved && d.note == "fine", "{d:?}");

        let (arn, id) = waiting(&runner, &h).await;
        runner.callback_failure(&id, ErrorObject::new("Rejected", "over budget")).await.unwrap();
        let d: Decision = runner.settle(&h, &arn).await.result().unwrap();
        assert!(!d.approved && d.note == "Rejected: over budget", "{d:?}");

        // Nobody answers within a day: the callback times out and the execution fails.
        let (arn, _) = waiting(&runner, &h).await;
        let run = runner.drive(&h, &arn).await;
        assert_eq!(run.status(), ExecutionStatus::Failed);
        assert_eq!(run.error().and_then(|e| e.error_type.as_deref()), Some("Callback.Timeout"));
    }
}
