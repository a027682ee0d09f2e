//! A human-approval workflow as an AWS Lambda durable function (managed mode): the
//! function asks a manager to approve an expense and suspends until the manager answers
//! (a callback completed from outside), for at most a day.
//!
//! ```text
//! cargo lambda build --release -p durable-examples --features lambda --bin lambda-approval
//! ```
//!
//! Deploy and drive it as README.md, "Deploy to AWS Lambda", shows for `lambda-order`:
//! `aws lambda send-durable-execution-callback-success` approves,
//! `aws lambda send-durable-execution-callback-failure` rejects.

use std::time::Duration;

use durable::ErrorKind;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// What the function is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Expense {
    id: String,
    employee: String,
    amount_cents: u64,
}

/// What it returns.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Decision {
    expense: String,
    approved: bool,
    note: String,
}

#[durable(name = "lambda-approval")]
async fn approve_expense(ctx: DurableContext, expense: Expense) -> Result<Decision> {
    let summary = ctx
        .step("validate", async |_| {
            if expense.amount_cents == 0 {
                return Err(Error::new("InvalidExpense", "the amount is zero"));
            }
            Ok(format!("{} asks ${:.2}", expense.employee, expense.amount_cents as f64 / 100.0))
        })
        .await?;

    // The submitter hands the callback id to the approver (a real one would send an email
    // or a chat message; this one logs it, and the logs go to CloudWatch).
    let answer = ctx
        .wait_for_callback::<String>("manager-approval", async |callback_id, _| {
            println!("approval requested: {summary}; callback id {callback_id}");
            Ok(())
        })
        .timeout(Duration::from_hours(24))
        .await;

    let (approved, note) = match answer {
        Ok(note) => (true, note),
        Err(e) if e.kind() == ErrorKind::CallbackFailed => (false, e.message().unwrap_or("rejected").to_owned()),
        Err(e) => return Err(e),
    };
    let decision = Decision { expense: expense.id.clone(), approved, note };
    ctx.step("record-decision", async |_| Ok(())).await?;
    Ok(decision)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), durable::lambda::lambda_runtime::Error> {
    durable::lambda::run(handler(approve_expense)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable::model::{ErrorObject, ExecutionStatus};
    use durable::testing::TestRunner;

    fn expense() -> Expense {
        Expense { id: "e-7".into(), employee: "ada".into(), amount_cents: 12_000 }
    }

    /// Starts an approval and runs it, without moving the clock (`run` would skip to the
    /// callback's 24-hour timeout), until it waits for the manager.
    async fn waiting_for_the_manager(runner: &TestRunner) -> (String, String) {
        let input = serde_json::to_string(&expense()).unwrap();
        let arn = runner.start("lambda-approval", None, Some(input)).await.unwrap();
        let run = runner.settle(&handler(approve_expense), &arn).await;
        assert_eq!(run.status(), ExecutionStatus::Running);
        let id = runner.callback_ids(&arn).await.remove(0);
        (arn, id)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_approval_and_a_rejection() {
        let runner = TestRunner::new();
        let (arn, id) = waiting_for_the_manager(&runner).await;
        runner.callback_success(&id, "\"fine by me\"").await.unwrap();
        let run = runner.settle(&handler(approve_expense), &arn).await;
        let d: Decision = run.result().unwrap();
        assert_eq!(d, Decision { expense: "e-7".into(), approved: true, note: "fine by me".into() });

        let (arn, id) = waiting_for_the_manager(&runner).await;
        runner.callback_failure(&id, ErrorObject::new("Rejected", "over budget")).await.unwrap();
        let run = runner.settle(&handler(approve_expense), &arn).await;
        let d: Decision = run.result().unwrap();
        assert_eq!(d, Decision { expense: "e-7".into(), approved: false, note: "over budget".into() });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_manager_who_never_answers_times_the_request_out() {
        let runner = TestRunner::new();
        let (arn, _) = waiting_for_the_manager(&runner).await;
        let run = runner.drive(&handler(approve_expense), &arn).await;
        assert_eq!(run.status(), ExecutionStatus::Failed);
        assert_eq!(run.error().map(|e| e.error_type.as_deref()), Some(Some("Callback.Timeout")));
    }
}
