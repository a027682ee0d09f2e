//! The workflow the every-operation crash test kills: one of each durable operation (step,
//! child context, wait, wait_for_condition, wait_for_callback, invoke, map, parallel, race,
//! patched, a saga that compensates), each body appending its side effect (fsynced) to a
//! file. A task in the same process plays the outside system that completes callbacks.
//!
//! Usage: `crash-all-ops <store-dir> <effects-file>`. Prints `arn <arn>` at start and
//! `result <json>` when the execution finished.

use std::future::IntoFuture;
use std::io::Write;
use std::time::Duration;

use durable::model::{OperationStatus, OperationType};
use durable::poll_until;
use durable::prelude::*;
use futures::future::LocalBoxFuture;
use serde_json::{Value, json};

fn effect(path: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// The invoke target: doubles its input in a step.
#[durable]
async fn double(ctx: DurableContext, n: u32) -> Result<u32> {
    ctx.step("double", async |_| Ok(n * 2)).await
}

#[durable]
async fn all_ops(ctx: DurableContext, fx: String) -> Result<Value> {
    let fx = fx.as_str();
    let one = ctx
        .step("step", async |_| {
            effect(fx, "step")?;
            Ok(1u32)
        })
        .await?;

    let child = ctx
        .run_in_child_context("child", async |c| {
            let x = c
                .step("child step", async |_| {
                    effect(fx, "child-step")?;
                    Ok(10u32)
                })
                .await?;
            c.wait("child wait", Duration::from_secs(1)).await?;
            Ok(x + 1)
        })
        .await?;

    let polls = ctx
        .wait_for_condition(
            "poll",
            0u32,
            async |n, _| {
                effect(fx, "poll")?;
                Ok(n + 1)
            },
            poll_until(|n: &u32| *n < 3)
                .initial_delay(Duration::from_secs(1))
                .max_delay(Duration::from_secs(1))
                .jitter(Jitter::None),
        )
        .await?;

    let approval: String = ctx
        .wait_for_callback("approval", async |_id: String, _| {
            effect(fx, "submit")?;
            Ok(())
        })
        .timeout(Duration::from_hours(1))
        .await?;

    let doubled: u32 = ctx.invoke("double it", "double", 21u32).await?;

    let squares = ctx
        .map("squares", vec![1u32, 2, 3, 4], async |c: DurableContext, x: u32, _i: usize| {
            c.step("square", async |_| {
                effect(fx, &format!("square-{x}"))?;
                Ok(x * x)
            })
            .await
        })
        .max_concurrency(2)
        .await?
        .into_results()?;

    let sides = ctx
        .parallel("sides")
        .branch(async |c: DurableContext| {
            c.step("left", async |_| {
                effect(fx, "left")?;
                Ok("l".to_owned())
            })
            .await
        })
        .branch(async |c: DurableContext| {
            c.step("right", async |_| {
                effect(fx, "right")?;
                Ok("r".to_owned())
            })
            .await
        })
        .await?
        .into_results()?;

    let fast = ctx
        .step("fast", async |_| {
            effect(fx, "fast")?;
            Ok("fast".to_owned())
        })
        .into_future();
    let slow = ctx.wait("slow", Duration::from_hours(1));
    let slow: LocalBoxFuture<'_, Result<String>> = Box::pin(async move { slow.await.map(|()| "slow".to_owned()) });
    let winner = ctx.race("race", [fast, slow]).await?;

    let patched = ctx.patched("v2").await?;

    let saga = ctx.saga();
    let undone = saga
        .run(async {
            saga.step("reserve", async |_| {
                effect(fx, "reserve")?;
                Ok(7u32)
            })
            .compensate(async |_, n: u32| {
                effect(fx, &format!("release-{n}"))?;
                Ok(())
            })
            .await?;
            ctx.wait("before charge", Duration::from_secs(1)).await?;
            saga.step("charge", async |_| {
                effect(fx, "charge")?;
                Err::<(), _>(Error::new("Declined", "card declined"))
            })
            .no_retry()
            .await
        })
        .await;
    let saga_error = undone.err().and_then(|e| e.error_type().map(str::to_owned));

    Ok(json!({
        "one": one, "child": child, "polls": polls, "approval": approval, "doubled": doubled,
        "squares": squares, "sides": sides, "winner": winner, "patched": patched, "saga": saga_error,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (dir, effects) = (args.next().ok_or("store dir")?, args.next().ok_or("effects file")?);
    let runner = LocalRunner::builder()
        .embedded(&dir)?
        .register("all-ops", handler(all_ops))
        .register("double", handler(double))
        .build();
    let arn = runner.start("all-ops", &effects, Some("crash-all-ops")).await?;
    println!("arn {arn}");
    std::io::stdout().flush()?;
    // The outside system: approves every callback the execution waits on.
    let approver = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Ok(ops) = runner.service().operations(&arn).await else { continue };
            for op in ops {
                if op.op_type == OperationType::Callback && op.status == OperationStatus::Started {
                    let id = op.callback_details.and_then(|d| d.callback_id).unwrap_or_default();
                    // Ignored when already completed (by a run before a kill).
                    let _ = runner.service().callback_success(&id, Some("\"approved\"".to_owned())).await;
                }
            }
        }
    };
    let record = tokio::select! {
        r = runner.run_until_finished(&arn) => r?,
        () = approver => unreachable!("the approver never stops"),
    };
    println!("result {}", record.result.unwrap_or_default());
    Ok(())
}
