//! A helper taking `&DurableContext`, called from a workflow that runs a child context
//! with durable calls nested inside it.
use durable::{DurableContext, durable};
/// Helpers get their own site table: their labels cannot clash with the caller's.
async fn send_email(ctx: &DurableContext, to: &str) -> durable::Result<()> {
    const __DURABLE_FN: &::core::primitive::str = ::core::concat!(
        ::core::module_path!(), "::", "send_email"
    );
    static __DURABLE_SITES: [::durable::__private::Site; 1] = [
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "send"),
    ];
    ::durable::__private::at(&ctx, &__DURABLE_SITES[0])
        .step("send", async |_| mailer::send(to).await)
        .await
}
async fn onboard(ctx: DurableContext, user: User) -> durable::Result<()> {
    const __DURABLE_FN: &::core::primitive::str = ::core::concat!(
        ::core::module_path!(), "::", "onboard"
    );
    static __DURABLE_SITES: [::durable::__private::Site; 6] = [
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "create account"),
        ::durable::__private::Site::labelled(
            __DURABLE_FN,
            "run_in_child_context",
            "welcome",
        ),
        ::durable::__private::Site::labelled(__DURABLE_FN, "wait", "a day later"),
        ::durable::__private::Site::unlabelled(__DURABLE_FN, "random", 0),
        ::durable::__private::Site::labelled(__DURABLE_FN, "step", "send coupon"),
        ::durable::__private::Site::unlabelled(__DURABLE_FN, "step", 1),
    ];
    let account = ::durable::__private::at(&ctx, &__DURABLE_SITES[0])
        .step("create account", async |_| accounts::create(&user).await)
        .await?;
    ::durable::__private::at(&ctx, &__DURABLE_SITES[1])
        .run_in_child_context(
            "welcome",
            async |child| {
                send_email(&child, &user.email).await?;
                ::durable::__private::at(&child, &__DURABLE_SITES[2])
                    .wait("a day later", std::time::Duration::from_secs(86_400))
                    .await?;
                let coupon: u32 = ::durable::__private::at(&child, &__DURABLE_SITES[3])
                    .random()
                    .await?;
                ::durable::__private::at(&child, &__DURABLE_SITES[4])
                    .step(
                        "send coupon",
                        async |_| mailer::coupon(&user.email, coupon).await,
                    )
                    .await
            },
        )
        .await?;
    let names: Vec<String> = account.members.iter().map(|m| m.name.clone()).collect();
    ::durable::__private::at(&ctx, &__DURABLE_SITES[5])
        .step(None::<&str>, async |_| audit::log(&names).await)
        .await
}
/// No durable calls: the function comes out unchanged, with no site table.
async fn noop(_ctx: DurableContext) -> durable::Result<()> {
    Ok(())
}
