//! What a durable function may return, and what is recorded: handlers without input,
//! errors of any type that converts (boxed, `anyhow`, standard errors, durable errors passed
//! through them), and recorded error types that stay put when code moves.

use durable::model::{EventType, ExecutionStatus};
use durable::prelude::*;
use durable::testing::TestRunner;

#[derive(Debug, thiserror::Error)]
#[error("card {0} declined")]
struct Declined(u32);

fn charge(card: u32) -> std::result::Result<String, Declined> {
    if card == 0 { Err(Declined(card)) } else { Ok(format!("charged {card}")) }
}

#[durable]
async fn nightly(ctx: DurableContext) -> Result<String> {
    ctx.step("sweep", async |_| Ok("swept".to_owned())).await
}

#[durable]
async fn boxed(
    ctx: DurableContext,
    card: u32,
) -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>> {
    if card == 1 {
        return Err("card 1 is blocked".into());
    }
    Ok(ctx.step("charge", async |_| Ok(charge(card)?)).no_retry().await?)
}

#[durable]
async fn with_anyhow(ctx: DurableContext, card: u32) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let charged = ctx.step("charge", async |_| Ok(charge(card)?)).no_retry().await;
    let receipt = charged.map_err(anyhow::Error::from).context("charging")?;
    Ok(receipt)
}

#[durable]
async fn named(ctx: DurableContext, card: u32) -> Result<String> {
    ctx.step("charge", async |_| charge(card).error_type("PaymentDeclined"))
        .retry(Backoff::exponential().max_attempts(2).retry_on_error_types(["PaymentDeclined"]))
        .await
}

#[durable]
async fn filtered(ctx: DurableContext, card: u32) -> Result<String> {
    // Retry filters match a converted error's type by its last segment.
    ctx.step("charge", async |_| Ok(charge(card)?))
        .retry(Backoff::exponential().max_attempts(3).retry_on_error_types(["Declined"]))
        .await
}

#[tokio::test]
async fn handlers_take_no_input_or_any_error_type() {
    let runner = TestRunner::new();
    let run = runner.run(nightly, ()).await;
    assert_eq!(run.result::<String>().unwrap(), "swept");

    // Boxed: a durable error travels through the box unchanged; a string is an `Error`.
    let run = runner.run(boxed, 0).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some("errors::Declined"), "the step's recorded error, unchanged");
    assert_eq!(e.error_message.as_deref(), Some("card 0 declined"));
    let run = runner.run(boxed, 1).await;
    let e = run.error().unwrap();
    assert_eq!((e.error_type.as_deref(), e.error_message.as_deref()), (Some("Error"), Some("card 1 is blocked")));
    assert_eq!(runner.run(boxed, 2).await.result::<String>().unwrap(), "charged 2");

    // anyhow: the durable error inside, with the context added on the way.
    let run = runner.run(with_anyhow, 0).await;
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some("errors::Declined"));
    assert_eq!(e.error_message.as_deref(), Some("charging: errors::Declined: card 0 declined"));
    assert_eq!(runner.run(with_anyhow, 3).await.result::<String>().unwrap(), "charged 3");
}

#[tokio::test]
async fn recorded_error_types_are_named_by_the_code_not_by_the_module() {
    let runner = TestRunner::new();
    // Named where it is raised: recorded under that name, and retried by it.
    let run = runner.run(named, 0).await;
    let failures: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::StepFailed).collect();
    assert_eq!(failures.len(), 2, "the filter matched the chosen name: one retry");
    for f in failures {
        let error = f.details.error.as_ref().unwrap().payload.as_ref().unwrap();
        assert_eq!(error.error_type.as_deref(), Some("PaymentDeclined"));
    }
    // Converted: the crate and the type's name; a filter on the name alone matches.
    let run = runner.run(filtered, 0).await;
    let failures: Vec<_> = run.history.iter().filter(|e| e.event_type == EventType::StepFailed).collect();
    assert_eq!(failures.len(), 3, "every attempt retried by the filter");
    let error = failures[0].details.error.as_ref().unwrap().payload.as_ref().unwrap();
    assert_eq!(error.error_type.as_deref(), Some("errors::Declined"), "no module path");
}
