//! DynamoDB requests a `LocalRunner` makes: for one execution (steps, a wait, more steps),
//! compared with the writes the execution needs (the baseline: reads should stay within
//! writes plus a constant), and while its worker idles. Runs against whatever
//! `AWS_ENDPOINT_URL_DYNAMODB` points at, on a fresh table.
//!
//! ```text
//! scripts/standins/dynamodb.sh cargo bench -p durable-runtime --features dynamodb --bench runner_requests
//! ```
//!
//! `cargo bench` idles the worker for 61 s (one rescan a minute, plus the first look);
//! `cargo test` (no `--bench` argument) for 3 s, to check that it runs;
//! `DURABLE_BENCH_IDLE_SECONDS` sets it. Request counts do not depend on the build.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::Store;
use durable_core::store::dynamodb::{DynamoOptions, DynamoStore, RequestCounts};
use durable_core::{DurableContext, Error, handler};
use durable_runtime::LocalRunner;

/// `n` at-least-once steps, a wait of a second, `n` at-most-once steps.
async fn workflow(ctx: DurableContext, n: u32) -> Result<u32, Error> {
    let mut total = 0;
    for i in 0..n {
        total += ctx.step("before", async move |_| Ok(i)).await?;
    }
    ctx.wait("pause", Duration::from_secs(1)).await?;
    for i in 0..n {
        total += ctx.step("after", async move |_| Ok(i)).at_most_once().await?;
    }
    Ok(total)
}

const STEPS: u32 = 15;

fn delta(after: RequestCounts, before: RequestCounts) -> (u64, u64, String) {
    let reads = after.reads() - before.reads();
    let writes = after.writes() - before.writes();
    let detail = format!(
        "GetItem {}, Query {}, BatchGetItem {}, TransactWriteItems {}, PutItem {}, UpdateItem {}",
        after.get_item - before.get_item,
        after.query - before.query,
        after.batch_get_item - before.batch_get_item,
        after.transact_write_items - before.transact_write_items,
        after.put_item - before.put_item,
        after.update_item - before.update_item,
    );
    (reads, writes, detail)
}

async fn run() {
    let bench = std::env::args().any(|a| a == "--bench");
    let idle = std::env::var("DURABLE_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(if bench { Duration::from_secs(61) } else { Duration::from_secs(3) }, Duration::from_secs);
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "the AWS environment's DynamoDB".into());
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = format!("durable-runner-bench-{}", std::process::id());
    let store = Arc::new(DynamoStore::new(&config, DynamoOptions::new(table)));
    store.create_table().await.expect("create the benchmark table");
    let runner = LocalRunner::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .register("workflow", handler(workflow))
        .build();
    println!("LocalRunner requests on DynamoDB ({endpoint})");

    let before = store.requests();
    let t = Instant::now();
    let arn = runner.start("workflow", &STEPS, None).await.expect("start");
    let done = runner.run_until_finished(&arn).await.expect("run");
    let took = t.elapsed();
    assert_eq!(done.result.as_deref(), Some(&*(2 * (0..STEPS).sum::<u32>()).to_string()));
    let (reads, writes, detail) = delta(store.requests(), before);
    println!(
        "one execution ({} steps, a 1 s wait): {writes} writes (the baseline), {reads} reads \
         ({:.2} reads per write; {} over the writes), {} requests in all, {took:.2?}",
        2 * STEPS,
        reads as f64 / writes as f64,
        reads as i64 - writes as i64,
        reads + writes,
    );
    println!("  {detail}");

    let before = store.requests();
    let stop = Cell::new(false);
    let timer = async {
        tokio::time::sleep(idle).await;
        stop.set(true);
        runner.wake();
    };
    let (worker, ()) = tokio::join!(runner.run_worker(|| stop.get()), timer);
    worker.expect("worker");
    let (reads, writes, detail) = delta(store.requests(), before);
    println!(
        "an idle worker for {idle:?}: {reads} reads, {writes} writes (its first look for due and interrupted \
         executions, then one look a minute)"
    );
    println!("  {detail}");
    let _ = store.client().delete_table().table_name(store.table()).send().await;
}

fn main() {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run());
}
