//! DynamoDB requests per durable operation, counted by kind: an at-least-once step, an
//! at-most-once step, a wait, a resume (warm and cold), and a few neighbours. Runs against
//! whatever `AWS_ENDPOINT_URL_DYNAMODB` points at (the moto stand-in, or leave it unset for
//! the real DynamoDB of your AWS environment), on a fresh table.
//!
//! ```text
//! scripts/standins/dynamodb.sh cargo bench -p durable-core --features dynamodb --bench dynamodb_requests
//! scripts/standins/dynamodb.sh cargo test  -p durable-core --features dynamodb --bench dynamodb_requests  # debug build, faster to compile
//! ```
//!
//! Targets: one write request per at-least-once step, zero reads within a warm invocation.
//! Request counts do not depend on the machine; the times printed beside them are those of
//! the server used (a single-threaded moto is no guide to DynamoDB's latency).

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::clock::ManualClock;
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{InvocationStatus, Timestamp};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, StartExecution};
use durable_core::store::Store;
use durable_core::store::dynamodb::{DynamoOptions, DynamoStore, RequestCounts};
use durable_core::{DurableContext, Error, durable, handler};

/// `n` steps of one kind (each returning `size` bytes), then a wait if asked.
#[durable(crate = durable_core)]
async fn scenario(ctx: DurableContext, (kind, n, size, wait): (String, u64, usize, bool)) -> Result<u64, Error> {
    let mut total = 0;
    for _ in 0..n {
        let out = if kind == "at-most-once" {
            ctx.step("amo", async |_| Ok("x".repeat(size))).at_most_once().await?
        } else {
            ctx.step("alo", async |_| Ok("x".repeat(size))).await?
        };
        total += out.len() as u64;
    }
    if wait {
        ctx.wait("w", Duration::from_secs(1)).await?;
    }
    Ok(total)
}

/// Steps per measured invocation.
const N: u64 = 20;
/// Steps of the execution resumed cold.
const COLD_STEPS: u64 = 300;

struct Bench {
    store: Arc<DynamoStore>,
    clock: ManualClock,
    service: Arc<CheckpointService>,
}

/// A checkpoint service over `store`: a new one is a cold process.
fn service_for(store: &Arc<DynamoStore>, clock: &ManualClock) -> Arc<CheckpointService> {
    let store: Arc<dyn Store> = Arc::clone(store) as Arc<dyn Store>;
    Arc::new(CheckpointService::with_config(store, Arc::new(clock.clone()), ServiceConfig::default()))
}

/// What one phase of an invocation cost.
struct Phase {
    requests: RequestCounts,
    elapsed: Duration,
}

impl Bench {
    /// A scenario on its own table (moto copies a table for every transaction, so small
    /// tables keep the stand-in fast; DynamoDB does not care).
    async fn new(config: &aws_config::SdkConfig, scenario: &str) -> Bench {
        let table = format!("durable-bench-{}-{scenario}", std::process::id());
        let store = Arc::new(DynamoStore::new(config, DynamoOptions::new(table)));
        store.create_table().await.expect("create the benchmark table");
        let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
        let service = service_for(&store, &clock);
        Bench { store, clock, service }
    }

    async fn drop_table(&self) {
        let _ = self.store.client().delete_table().table_name(self.store.table()).send().await;
    }

    async fn start(&self, kind: &str, n: u64, size: usize, wait: bool) -> (String, Phase) {
        let input = serde_json::to_string(&(kind, n, size, wait)).unwrap();
        let req = StartExecution { function_name: "bench".into(), input: Some(input), ..Default::default() };
        let before = self.store.requests();
        let t = Instant::now();
        let arn = self.service.start_execution(req).await.unwrap().arn;
        (arn, Phase { requests: self.store.requests().since(&before), elapsed: t.elapsed() })
    }

    /// begin_invocation, the invocation, end_invocation.
    async fn invoke(&self, service: &Arc<CheckpointService>, arn: &str) -> (InvocationStatus, [Phase; 3]) {
        let mut marks = vec![(self.store.requests(), Instant::now())];
        let input = service.begin_invocation(arn).await.unwrap();
        marks.push((self.store.requests(), Instant::now()));
        let token = input.checkpoint_token.clone();
        let InvocationOutcome::Output(out) = run_invocation(&handler(scenario), input, service.checkpointer()).await
        else {
            panic!("the invocation did not end normally")
        };
        marks.push((self.store.requests(), Instant::now()));
        let status = out.status;
        service.end_invocation(arn, &token, InvocationEnd::Output(out)).await.unwrap();
        marks.push((self.store.requests(), Instant::now()));
        let phase =
            |i: usize| Phase { requests: marks[i + 1].0.since(&marks[i].0), elapsed: marks[i + 1].1 - marks[i].1 };
        (status, [phase(0), phase(1), phase(2)])
    }
}

fn row(label: &str, per: u64, p: &Phase) {
    let per_f = per as f64;
    println!(
        "{label:<52} {:>6.2} {:>6.2} {:>8.2}   {}",
        p.requests.writes() as f64 / per_f,
        p.requests.reads() as f64 / per_f,
        p.elapsed.as_secs_f64() * 1e3 / per_f,
        if per == 1 { p.requests.to_string() } else { format!("{} over {per}", p.requests) }
    );
}

async fn run() {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "the AWS environment's DynamoDB".into());
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    println!("DynamoDB requests per operation ({endpoint}; ms are that server's, moto is no guide to DynamoDB)");
    println!("{:<52} {:>6} {:>6} {:>8}   requests", "", "writes", "reads", "ms");

    let b = Bench::new(&config, "alo").await;
    let (arn, start) = b.start("at-least-once", N, 16, false).await;
    row("start an execution", 1, &start);
    let (_, [begin, run, end]) = b.invoke(&b.service, &arn).await;
    row("first invocation: begin (loads the new execution)", 1, &begin);
    row(&format!("at-least-once step ({N} in one invocation), per step"), N, &run);
    row("end of invocation (the execution succeeds)", 1, &end);
    b.drop_table().await;

    let b = Bench::new(&config, "amo").await;
    let (arn, _) = b.start("at-most-once", N, 16, false).await;
    let (_, [_, run, _]) = b.invoke(&b.service, &arn).await;
    row(&format!("at-most-once step ({N} in one invocation), per step"), N, &run);
    b.drop_table().await;

    let b = Bench::new(&config, "large").await;
    let (arn, _) = b.start("at-least-once", 4, 1 << 20, false).await;
    let (_, [_, run, _]) = b.invoke(&b.service, &arn).await;
    row("at-least-once step with a 1 MiB result, per step (*)", 4, &run);
    b.drop_table().await;

    let b = Bench::new(&config, "wait").await;
    let (arn, _) = b.start("at-least-once", 0, 0, true).await;
    let (_, [_, run, end]) = b.invoke(&b.service, &arn).await;
    row("wait: its checkpoint", 1, &run);
    row("wait: suspending the invocation", 1, &end);
    b.clock.advance(Duration::from_secs(1));
    let (status, [begin, run, _]) = b.invoke(&b.service, &arn).await;
    assert_eq!(status, InvocationStatus::Succeeded);
    row("resume after the wait, warm service: begin", 1, &begin);
    row("resume after the wait, warm service: replay", 1, &run);
    b.drop_table().await;

    let b = Bench::new(&config, "cold").await;
    let (arn, _) = b.start("at-least-once", COLD_STEPS, 16, true).await;
    let _ = b.invoke(&b.service, &arn).await;
    b.clock.advance(Duration::from_secs(1));
    let fresh = service_for(&b.store, &b.clock);
    let (status, [begin, run, _]) = b.invoke(&fresh, &arn).await;
    assert_eq!(status, InvocationStatus::Succeeded);
    row(&format!("resume of {COLD_STEPS} steps, cold service: begin (**)"), 1, &begin);
    row(&format!("resume of {COLD_STEPS} steps, cold service: replay"), 1, &run);
    b.drop_table().await;

    println!("targets: 1 write per at-least-once step; 0 reads within a warm invocation");
    println!("(*)  the 1 MiB result is stored once in chunk items (one BatchWriteItem; the same result again is");
    println!("     not rewritten); START and SUCCEED go separately because the batch outgrows 750 KiB");
    println!("(**) the record, then a Query page per 1,000 operations (the service's page) or per MB, and the");
    println!("     empty page that ends the service's read loop");
}

fn main() {
    // Run by `cargo bench` (release) or `cargo test --bench` (debug): counts are the same.
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run());
}
