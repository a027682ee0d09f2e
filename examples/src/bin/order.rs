//! An order workflow on the embedded store: reserve inventory, charge the card (the
//! payment gateway times out twice, so the charge is retried), wait for the warehouse
//! cut-off, ship.
//!
//! ```text
//! cargo run --bin order
//! ```
//!
//! Each step prints a line when it really runs. Lines marked `replayed` come from code
//! re-executing recorded history: the wait suspends the execution, and the next
//! invocation replays the finished steps from the journal instead of running them again.
//! Kill the program during the wait (Ctrl-C, or `kill -9`) and run it again: it picks the
//! unfinished order up where it stopped. The journal lives in `.durable/order-example`
//! (set `DURABLE_DIR` to move it).
//!
//! On DynamoDB instead (built with the `dynamodb` feature), with the table named by
//! `DURABLE_DYNAMODB_TABLE` and the usual AWS environment (region, credentials, and
//! `AWS_ENDPOINT_URL_DYNAMODB` for a local stand-in); create the table first with the
//! `dynamodb-setup` example:
//!
//! ```text
//! scripts/standins/dynamodb.sh bash -c '
//!   cargo run -p durable-examples --features dynamodb --bin dynamodb-setup -- orders &&
//!   DURABLE_DYNAMODB_TABLE=orders cargo run -p durable-examples --features dynamodb --bin order'
//! ```

use std::time::Duration;

use durable::LocalRunnerBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    items: Vec<String>,
    amount_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Receipt {
    order: String,
    reservation: String,
    payment: String,
    tracking: String,
}

/// Prints a progress line, marking lines produced while replaying history.
fn note(ctx: &DurableContext, message: &str) {
    if ctx.is_replaying() {
        println!("  replayed  {message}");
    } else {
        println!("  done      {message}");
    }
}

#[durable]
async fn process_order(ctx: DurableContext, order: Order) -> Result<Receipt> {
    let reservation = ctx
        .step("reserve-inventory", async |_| {
            println!("  running   reserve-inventory: {} item(s)", order.items.len());
            Ok(format!("rsv-{}", order.id))
        })
        .await?;
    note(&ctx, &format!("inventory reserved ({reservation})"));

    let payment = ctx
        .step("charge-card", async |s| {
            println!("  running   charge-card: ${:.2}, attempt {}", order.amount_cents as f64 / 100.0, s.attempt());
            if s.attempt() < 3 {
                return Err(Error::new("GatewayTimeout", "the payment gateway did not answer in time"));
            }
            Ok(format!("pay-{}", order.id))
        })
        .retry(Backoff::exponential().max_attempts(5).initial_delay(Duration::from_secs(1)).jitter(Jitter::None))
        .at_most_once()
        .await?;
    note(&ctx, &format!("card charged ({payment})"));

    if !ctx.is_replaying() {
        println!("  waiting   5 s for the warehouse cut-off (kill me now, then run me again)");
    }
    ctx.wait("warehouse-cut-off", Duration::from_secs(5)).await?;
    note(&ctx, "warehouse cut-off passed");

    let tracking = ctx
        .step("ship", async |_| {
            println!("  running   ship");
            Ok(format!("trk-{}", order.id))
        })
        .await?;
    note(&ctx, &format!("shipped ({tracking})"));
    Ok(Receipt { order: order.id, reservation, payment, tracking })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `order replay-check process-order <history.json>`: would today's code replay that
    // recorded execution? (A history is saved beside the journal after every run.)
    if args.first().map(String::as_str) == Some("replay-check") {
        let process_order = handler(process_order);
        return durable::replay::cli_with_args(args.into_iter().skip(1), &[("process-order", &process_order)]);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (builder, dir) = if let Ok(table) = std::env::var("DURABLE_DYNAMODB_TABLE") {
        (on_dynamodb(LocalRunner::builder(), &table).await?, format!("DynamoDB table {table}"))
    } else {
        let dir = std::env::var("DURABLE_DIR").unwrap_or_else(|_| ".durable/order-example".to_owned());
        (LocalRunner::builder().embedded(&dir)?, dir)
    };
    let runner = builder.register("process-order", handler(process_order)).build();

    // Resume the unfinished order if a previous run was killed; otherwise start a new one.
    let running = runner
        .service()
        .list_executions(&durable::store::ListQuery {
            function_name: Some("process-order".into()),
            statuses: vec![durable::model::ExecutionStatus::Running],
            ..Default::default()
        })
        .await?;
    let arn = if let Some(unfinished) = running.durable_executions.first() {
        println!("resuming order execution {}", unfinished.durable_execution_name);
        unfinished.durable_execution_arn.clone()
    } else {
        let n = runner.service().list_executions(&durable::store::ListQuery::default()).await?.durable_executions.len();
        let order =
            Order { id: format!("{}", 1001 + n), items: vec!["keyboard".into(), "mouse".into()], amount_cents: 12_999 };
        let name = format!("order-{}", order.id);
        println!("starting order execution {name} (journal in {dir})");
        runner.start("process-order", &order, Some(&name)).await?
    };

    let record = runner.run_until_finished(&arn).await?;
    println!("\nexecution {} {} after {} invocation(s)", record.name, record.status, record.invocation);
    match (&record.result, &record.error) {
        (Some(result), _) => println!("result: {result}"),
        (_, Some(error)) => println!("error: {error}"),
        _ => {}
    }
    println!("\nhistory:");
    let history = runner.service().full_history(&arn).await?;
    for e in &history {
        let what = e.name.clone().unwrap_or_default();
        let extra = match e.event_type {
            durable::model::EventType::WaitStarted => format!("{} s", e.details.duration.unwrap_or_default()),
            durable::model::EventType::StepFailed => {
                e.details.error.as_ref().and_then(|x| x.payload.as_ref()).map(ToString::to_string).unwrap_or_default()
            }
            durable::model::EventType::InvocationCompleted => e
                .details
                .error
                .as_ref()
                .and_then(|x| x.payload.as_ref())
                .map(|x| format!("crashed: {x}"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        println!("  {:>3}  {}  {:<22} {:<18} {}", e.event_id, e.event_timestamp, e.event_type, what, extra);
    }
    // Saved as GetDurableExecutionHistory returns it, for the replay check above.
    if std::path::Path::new(&dir).is_dir() {
        let path = std::path::Path::new(&dir).join(format!("{}.history.json", record.name));
        std::fs::write(&path, serde_json::to_string_pretty(&serde_json::json!({ "Events": history }))?)?;
        println!("\nhistory saved; check that changed code still replays it with:");
        println!("  cargo run --bin order -- replay-check process-order {}", path.display());
    }
    Ok(())
}

/// Journals to DynamoDB, configured from the environment like every AWS SDK.
#[cfg(feature = "dynamodb")]
async fn on_dynamodb(
    builder: LocalRunnerBuilder,
    table: &str,
) -> std::result::Result<LocalRunnerBuilder, Box<dyn std::error::Error>> {
    use durable::store::dynamodb::{DynamoOptions, DynamoStore};
    let store = DynamoStore::from_env(DynamoOptions::new(table)).await;
    Ok(builder.store(std::sync::Arc::new(store)))
}

#[cfg(not(feature = "dynamodb"))]
#[allow(clippy::unused_async)] // the signature of the DynamoDB version
async fn on_dynamodb(
    _builder: LocalRunnerBuilder,
    table: &str,
) -> std::result::Result<LocalRunnerBuilder, Box<dyn std::error::Error>> {
    Err(format!(
        "DURABLE_DYNAMODB_TABLE={table} is set, but this example was built without DynamoDB support: \
         run it with `cargo run -p durable-examples --features dynamodb --bin order`"
    )
    .into())
}
