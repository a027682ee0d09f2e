//! An order workflow as an AWS Lambda durable function (managed mode): steps, a retried
//! step, a durable wait and a callback from the carrier.
//!
//! ```text
//! cargo lambda build --release -p durable-examples --features lambda --bin lambda-order
//! sam deploy --guided --template-file examples/lambda/template.yaml   # DurableConfig set
//! ```
//!
//! README.md, "Deploy to AWS Lambda", has the whole path: build, deploy, invoke, inspect
//! the execution and send the carrier's callback with the AWS CLI. Locally,
//! `scripts/standins/lambda.sh` serves it with `cargo lambda watch` behind AWS's own
//! durable-execution emulator.

use std::time::Duration;

use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// What the function is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount_cents: u64,
}

/// What it returns.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    order: String,
    reservation: String,
    payment: String,
    shipment: String,
}

#[durable(name = "lambda-order")]
async fn process_order(ctx: DurableContext, order: Order) -> Result<Receipt> {
    let reservation = ctx.step("reserve-inventory", async |_| Ok(format!("rsv-{}", order.id))).await?;

    let payment = ctx
        .step("charge-card", async |s| {
            if order.amount_cents == 0 {
                return Err(Error::new("InvalidAmount", "nothing to charge"));
            }
            Ok(format!("pay-{}-{}", order.id, s.attempt()))
        })
        .retry(presets::critical())
        .await?;

    // The invocation ends here (PENDING); Lambda invokes the function again in 2 s.
    ctx.wait("cool-off", Duration::from_secs(2)).await?;

    // The carrier confirms the shipment by completing this callback from outside
    // (`aws lambda send-durable-execution-callback-success`); until then nothing runs.
    let confirmation = ctx.create_callback::<String>("shipping-confirmation").timeout(Duration::from_hours(24)).await?;
    durable::info!(ctx, "order {} waits for the carrier: callback id {}", order.id, confirmation.id());
    let shipment = confirmation.result().await?;

    Ok(Receipt { order: order.id, reservation, payment, shipment })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), durable::lambda::lambda_runtime::Error> {
    durable::lambda::run(handler(process_order)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable::model::{ExecutionStatus, OperationStatus};
    use durable::testing::TestRunner;

    #[tokio::test(flavor = "current_thread")]
    async fn the_order_waits_for_the_carrier_then_returns_the_receipt() {
        let runner = TestRunner::new();
        runner.register("lambda-order", handler(process_order));
        let order = Order { id: "o-1".into(), amount_cents: 1999 };
        // Without skipping time past the carrier's timeout (`run` would): settle, let the
        // 2 s cool-off pass, settle again.
        let h = handler(process_order);
        let arn = runner.start("lambda-order", None, Some(serde_json::to_string(&order).unwrap())).await.unwrap();
        let run = runner.settle(&h, &arn).await;
        assert_eq!(run.operation("cool-off").map(|o| o.status), Some(OperationStatus::Started), "waiting");
        runner.advance(std::time::Duration::from_secs(2));
        let run = runner.settle(&h, &arn).await;
        assert_eq!(run.status(), ExecutionStatus::Running, "suspended on the callback");
        let ids = runner.callback_ids(run.arn()).await;
        runner.callback_success(&ids[0], "\"trk-42\"").await.unwrap();
        let run = runner.settle(&h, run.arn()).await;
        let receipt: Receipt = run.result().unwrap();
        assert_eq!(
            receipt,
            Receipt {
                order: "o-1".into(),
                reservation: "rsv-o-1".into(),
                payment: "pay-o-1-1".into(),
                shipment: "trk-42".into()
            }
        );
        run.assert_well_formed();
    }
}
