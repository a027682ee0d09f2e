//! The expansion names nothing from the user's scope: every path it emits is absolute,
//! and its function-local site table does not clash with the user's items.
#![deny(warnings)]
#![allow(non_camel_case_types, dead_code)]

// Shadow what generated code might lean on.
type Result = ();
type Option = ();
type Box = ();
struct Some;
struct Ok;
struct str;
mod core {}
mod std {}
mod durable {}
struct Site;
fn at() {}
fn concat() {}
fn module_path() {}
static __DURABLE_SITES: u8 = 0;
const __DURABLE_FN: u8 = 0;

#[::durable::durable]
async fn shadowed(ctx: ::durable::DurableContext) -> ::durable::Result<u32> {
    let a = ctx.step("a", async |_| ::core::result::Result::<u32, ::durable::Error>::Ok(1)).await?;
    let b: u32 = ctx.random().await?;
    ctx.wait("w", ::core::time::Duration::from_secs(1)).await?;
    ::core::result::Result::Ok(a + b)
}

#[::durable::durable(name = "pinned")]
async fn pinned(ctx: ::durable::DurableContext) -> ::durable::Result<()> {
    ctx.step("a", async |_| ::core::result::Result::<(), ::durable::Error>::Ok(())).await
}

fn main() {
    let _ = (shadowed, pinned, __DURABLE_SITES, __DURABLE_FN);
}
