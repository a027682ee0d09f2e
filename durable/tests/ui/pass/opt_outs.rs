//! The two opt-outs: `#[nondeterministic]` inside the body, and
//! `#[durable(allow_nondeterminism)]` on the function. Step bodies need neither.
#![deny(warnings)]

use std::time::{Duration, Instant, SystemTime};

use durable::{DurableContext, durable};

#[durable]
async fn marked(ctx: DurableContext) -> durable::Result<u128> {
    #[nondeterministic]
    let started = Instant::now();
    #[nondeterministic]
    {
        let _home = std::env::var("HOME");
        let _later = SystemTime::now();
    }
    let bytes: u8 = #[nondeterministic]
    rand::random();
    #[nondeterministic]
    println!("{:?} {bytes}", SystemTime::now());
    let slept = match bytes {
        #[nondeterministic]
        0 => {
            std::thread::sleep(Duration::from_millis(1));
            true
        }
        _ => false,
    };
    ctx.step("work", async |_| Ok(slept)).await?;
    Ok(started.elapsed().as_millis())
}

#[durable(allow_nondeterminism)]
async fn allowed(ctx: DurableContext) -> durable::Result<u64> {
    let t = SystemTime::now();
    let r: u64 = rand::random();
    ctx.step("work", async |_| Ok(r)).await?;
    Ok(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

#[durable]
async fn in_steps(ctx: DurableContext) -> durable::Result<String> {
    let t = ctx.step("stamp", async |_| Ok(format!("{:?}", SystemTime::now()))).await?;
    let id = ctx.step("id", |_| async { Ok(uuid::Uuid::new_v4()) }).await?;
    let home = ctx.step("config", async |_| Ok(std::env::var("HOME").is_ok())).await?;
    Ok(format!("{t} {id} {home}"))
}

fn main() {
    let _ = (marked, allowed, in_steps);
}
