//! The workflow the crash test kills: at-least-once and at-most-once steps whose side
//! effects are appended (and fsynced) to a file, with durable waits between them.
//!
//! Usage: `crash-workflow <store-dir> <effects-file>`. Prints `arn <arn>` at start,
//! `acked <step>` whenever a step's outcome has been acknowledged by the store, and
//! `result <json>` when the execution finished.

use std::io::Write;
use std::time::Duration;

use durable::prelude::*;

/// Iterations of the workflow loop.
const ROUNDS: u32 = 6;

fn effect(path: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

fn acked(step: &str) {
    println!("acked {step}");
    std::io::stdout().flush().expect("stdout");
}

#[durable]
async fn crash_workflow(ctx: DurableContext, effects: String) -> Result<i64> {
    let mut total = 0i64;
    for i in 0..ROUNDS {
        let alo = format!("alo-{i}");
        let v = ctx
            .step(alo.clone(), async |s| {
                effect(&effects, &format!("{alo} attempt={}", s.attempt()))?;
                Ok(i64::from(i))
            })
            .await?;
        acked(&alo);
        total += v;

        let amo = format!("amo-{i}");
        let r = ctx
            .step(amo.clone(), async |s| {
                effect(&effects, &format!("{amo} attempt={}", s.attempt()))?;
                Ok(i64::from(i) * 10)
            })
            .at_most_once()
            .no_retry()
            .await;
        match r {
            Ok(v) => {
                acked(&amo);
                total += v;
            }
            // Interrupted mid-attempt by a kill: at-most-once forbids running it again.
            Err(e) if e.kind() == durable::ErrorKind::StepInterrupted => acked(&amo),
            Err(e) => return Err(e),
        }
        if i % 2 == 1 {
            ctx.wait(format!("pause-{i}"), Duration::from_secs(1)).await?;
        }
    }
    Ok(total)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (dir, effects) = (args.next().ok_or("store dir")?, args.next().ok_or("effects file")?);
    let runner = LocalRunner::builder().embedded(&dir)?.register("crash", handler(crash_workflow)).build();
    let arn = runner.start("crash", &effects, Some("crash-test")).await?;
    println!("arn {arn}");
    let record = runner.run_until_finished(&arn).await?;
    println!("result {}", record.result.unwrap_or_default());
    Ok(())
}
