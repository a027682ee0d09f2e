//! One durable function in whichever build is asked for (`durable_tests::versions`), on the
//! embedded store: a deploy, as a process sees it.
//!
//! Usage:
//! - `versioned <store-dir> start <build> <name> <effects-file>`: starts an execution of
//!   the build and runs it until nothing is due (it suspends in its hour-long wait); prints
//!   `arn <arn>`.
//! - `versioned <store-dir> resume <build> <arn>`: with the clock two hours on, runs the
//!   execution to its end on the build; prints `status <STATUS>` and, if it failed,
//!   `error <type>: <message>`.

use std::sync::Arc;

use durable::clock::ManualClock;
use durable::model::Timestamp;
use durable::prelude::*;
use durable_tests::versions::{Order, build};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, command, build_name, rest @ ..] = args.as_slice() else {
        return Err("usage: versioned <store-dir> start|resume <build> ...".into());
    };
    let handler = build(build_name).ok_or_else(|| format!("no build named {build_name}"))?;
    let mut runner = LocalRunner::builder().embedded(dir)?.register("payment", handler);
    match (command.as_str(), rest) {
        ("start", [name, effects]) => {
            let runner = runner.build();
            let order = Order { id: name.clone(), effects: effects.clone() };
            let arn = runner.start("payment", &order, Some(name)).await?;
            runner.run_until_idle().await?;
            println!("arn {arn}");
        }
        ("resume", [arn]) => {
            // Later: the hour-long wait is over.
            let later = Timestamp::now().plus_seconds(2 * 3600);
            runner = runner.clock(Arc::new(ManualClock::new(later)));
            let record = runner.build().run_until_finished(arn).await?;
            println!("status {}", record.status);
            if let Some(e) = record.error {
                println!("error {e}");
            }
        }
        _ => return Err(format!("bad arguments: {args:?}").into()),
    }
    Ok(())
}
