//! Durable code is plain Rust: bodies return `durable::Result<T>`, so `Ok(x)` and `?`
//! need no annotation; map closures need no parameter types; `wait_for_callback` takes
//! the result type only; combinators take operation builders as they are; handlers may
//! take no input and return any error that converts.
#![deny(warnings)]

use std::time::Duration;

use durable::prelude::*;

#[derive(Debug)]
struct OutOfStock;

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of stock")
    }
}

impl std::error::Error for OutOfStock {}

fn reserve(n: u32) -> std::result::Result<u32, OutOfStock> {
    if n > 10 { Err(OutOfStock) } else { Ok(n) }
}

#[durable]
async fn order(ctx: DurableContext, n: u32) -> Result<u32> {
    let reserved = ctx.step("reserve", async |_| Ok(reserve(n)?)).await?;
    let parsed = ctx.step("parse", async |_| Ok("7".parse::<u32>()?)).await?;
    let doubled =
        ctx.map("double", vec![1, 2, 3], async |c, item, _| c.step("x2", async |_| Ok(item * 2)).await).await?;
    let answer = ctx
        .wait_for_callback::<String>("approve", async |id, _| {
            println!("callback {id}");
            Ok(())
        })
        .timeout(Duration::from_secs(3600))
        .await?;
    let (a, b) =
        (ctx.step("a", async |_| Ok(1)), ctx.run_in_child_context("b", async |c| c.step("b1", async |_| Ok(2)).await));
    let both = ctx.all("both", (a, b)).await?;
    let winner = ctx
        .race(
            "first",
            (ctx.step("fast", async |_| Ok(3)), async { ctx.wait("slow", Duration::from_secs(60)).await.map(|()| 0) }),
        )
        .await?;
    Ok(reserved
        + parsed
        + doubled.into_results()?.iter().sum::<u32>()
        + answer.len() as u32
        + both.iter().sum::<u32>()
        + winner)
}

#[durable]
async fn nightly(ctx: DurableContext) -> Result<String> {
    ctx.step("sweep", async |_| Ok("swept".to_owned())).await
}

#[durable]
async fn boxed(ctx: DurableContext, n: u32) -> std::result::Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    let v = ctx.step("v", async |_| Ok(n)).await?;
    if v == 0 {
        return Err("zero".into());
    }
    Ok(v)
}

#[durable]
async fn with_anyhow(ctx: DurableContext, n: u32) -> anyhow::Result<u32> {
    let v = ctx.step("v", async |_| Ok(n)).await?;
    anyhow::ensure!(v > 0, "zero");
    Ok(v)
}

fn main() {
    let _handlers: Vec<Box<dyn Handler>> = vec![
        Box::new(handler(order)),
        Box::new(handler(nightly)),
        Box::new(handler(boxed)),
        Box::new(handler(with_anyhow)),
    ];
}
