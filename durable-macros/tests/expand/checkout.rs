//! A checkout workflow: labelled and unlabelled steps, a wait, and a loop.
use std::time::Duration;

use durable::{DurableContext, durable};

#[durable]
pub async fn checkout(ctx: DurableContext, order: Order) -> durable::Result<Receipt> {
    let reservation = ctx.step("reserve", async |_| inventory::reserve(&order.items).await).await?;
    let total: u64 = ctx.step("price", async |_| Ok(order.total())).await?;
    for item in &order.items {
        ctx.step("notify warehouse", async |_| warehouse::notify(item).await).await?;
    }
    ctx.wait("cooling-off period", Duration::from_secs(15 * 60)).await?;
    let charged_at = ctx.now().await?;
    let receipt_id = ctx.uuid().await?;
    let payment = ctx
        .step("charge", async |step| payments::charge(order.card, total, step.attempt()).await)
        .retry(durable::retry::presets::critical())
        .at_most_once()
        .await?;
    Ok(Receipt { reservation, payment, charged_at, receipt_id })
}
