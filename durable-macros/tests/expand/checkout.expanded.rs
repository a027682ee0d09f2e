//! A checkout workflow: labelled and unlabelled steps, a wait, and a loop.
use std::time::Duration;
use durable::{DurableContext, durable};
pub async fn checkout(ctx: DurableContext, order: Order) -> durable::Result<Receipt> {
    const __DURABLE_FN: &::core::primitive::str = ::core::concat!(
        ::core::module_path!(), "::", "checkout"
    );
    static __DURABLE_SITES: [::durable::__private::Site; 7] = [
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "reserve"),
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "price"),
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "notify warehouse"),
        ::durable::__private::Site::labelled(__DURABLE_FN, "wait", "cooling-off period"),
        ::durable::__private::Site::unlabelled(__DURABLE_FN, "now", 0),
        ::durable::__private::Site::unlabelled(__DURABLE_FN, "uuid", 1),
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "charge"),
    ];
    let reservation = ::durable::__private::at(&ctx, &__DURABLE_SITES[0])
        .step("reserve", async |_| inventory::reserve(&order.items).await)
        .await?;
    let total: u64 = ::durable::__private::at(&ctx, &__DURABLE_SITES[1])
        .step("price", async |_| Ok(order.total()))
        .await?;
    for item in &order.items {
        ::durable::__private::at(&ctx, &__DURABLE_SITES[2])
            .step("notify warehouse", async |_| warehouse::notify(item).await)
            .await?;
    }
    ::durable::__private::at(&ctx, &__DURABLE_SITES[3])
        .wait("cooling-off period", Duration::from_secs(15 * 60))
        .await?;
    let charged_at = ::durable::__private::at(&ctx, &__DURABLE_SITES[4]).now().await?;
    let receipt_id = ::durable::__private::at(&ctx, &__DURABLE_SITES[5]).uuid().await?;
    let payment = ::durable::__private::at(&ctx, &__DURABLE_SITES[6])
        .step(
            "charge",
            async |step| payments::charge(order.card, total, step.attempt()).await,
        )
        .retry(durable::retry::presets::critical())
        .at_most_once()
        .await?;
    Ok(Receipt {
        reservation,
        payment,
        charged_at,
        receipt_id,
    })
}
