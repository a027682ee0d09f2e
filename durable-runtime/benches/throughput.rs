//! Throughput benchmark: sequential steps on the in-memory and the embedded store, replay
//! of long histories, 100 concurrent executions on the embedded store, and the raw fsync
//! rate of the same disk, all measured in one run.
//!
//! ```text
//! cargo bench -p durable-runtime --bench throughput            # N = 1,000 / 10,000 / 100,000
//! DURABLE_BENCH_QUICK=1 cargo bench -p durable-runtime --bench throughput   # smaller N
//! DURABLE_BENCH_DIR=/path cargo bench ...                       # where the journals go (default: target/bench-journal)
//! ```
//!
//! Figures are printed, with the targets they are compared against; nothing is asserted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::clock::ManualClock;
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{InvocationStatus, Timestamp};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, StartExecution};
use durable_core::store::{EmbeddedStore, MemoryStore, Store};
use durable_core::{DurableContext, Error, Handler, durable, handler};

/// N sequential steps, then (if `wait`) a one-second durable wait.
#[durable(crate = durable_core)]
async fn steps(ctx: DurableContext, (n, wait): (u64, bool)) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx.step("s", async |_| Ok(i)).await?;
    }
    if wait {
        ctx.wait("w", Duration::from_secs(1)).await?;
    }
    Ok(sum)
}

struct Bench {
    service: Arc<CheckpointService>,
    clock: ManualClock,
}

impl Bench {
    fn new(store: Arc<dyn Store>) -> Self {
        let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
        let service =
            Arc::new(CheckpointService::with_config(store, Arc::new(clock.clone()), ServiceConfig::default()));
        Bench { service, clock }
    }

    async fn start(&self, input: &str) -> String {
        self.service
            .start_execution(StartExecution {
                function_name: "bench".into(),
                input: Some(input.into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .arn
    }

    /// One invocation; returns its wall time and its status.
    async fn invoke(&self, h: &dyn Handler, arn: &str) -> (Duration, InvocationStatus) {
        let t = Instant::now();
        let input = self.service.begin_invocation(arn).await.unwrap();
        let token = input.checkpoint_token.clone();
        let InvocationOutcome::Output(out) = run_invocation(h, input, self.service.checkpointer()).await else {
            panic!("the invocation did not end normally")
        };
        let status = out.status;
        self.service.end_invocation(arn, &token, InvocationEnd::Output(out)).await.unwrap();
        (t.elapsed(), status)
    }
}

fn line(label: &str, n: u64, d: Duration) -> f64 {
    let per_sec = n as f64 / d.as_secs_f64();
    println!("{label:<52} {n:>7} steps {:>10.0} steps/s {:>9.2} µs/step", per_sec, d.as_secs_f64() * 1e6 / n as f64);
    per_sec
}

/// CPU-bound runs are repeated and the best run is kept: on a shared machine the spread
/// between identical runs is ±25%, and the best run is the one least disturbed.
const REPEATS: usize = 5;

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let p = base.join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// The raw rate of small appends, each followed by fdatasync, on the journal's disk.
fn raw_fsync_rate(dir: &Path, n: u32) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("raw-fsync.probe");
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path).unwrap();
    let buf = vec![b'x'; 1024];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    println!(
        "{:<52} {n:>7} syncs {rate:>10.0} syncs/s {:>9.2} µs/sync",
        "raw fsync (1 KiB append + fdatasync)",
        1e6 / rate
    );
    rate
}

async fn sequential_once(store: Arc<dyn Store>, n: u64) -> Duration {
    let b = Bench::new(store);
    let h = handler(steps);
    let arn = b.start(&format!("[{n},false]")).await;
    let (d, status) = b.invoke(&h, &arn).await;
    assert_eq!(status, InvocationStatus::Succeeded);
    d
}

async fn sequential(store: Arc<dyn Store>, n: u64, label: &str) -> f64 {
    line(label, n, sequential_once(store, n).await)
}

/// In-memory sequential steps: the best of [`REPEATS`] runs, each on a fresh store.
async fn sequential_memory(n: u64, label: &str) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..REPEATS {
        best = best.min(sequential_once(Arc::new(MemoryStore::new()), n).await);
    }
    line(label, n, best)
}

async fn replay_once(store: Arc<dyn Store>, n: u64) -> Duration {
    let b = Bench::new(store);
    let h = handler(steps);
    let arn = b.start(&format!("[{n},true]")).await;
    let (_, first) = b.invoke(&h, &arn).await;
    assert_eq!(first, InvocationStatus::Pending);
    b.clock.advance(Duration::from_secs(1));
    let (d, second) = b.invoke(&h, &arn).await;
    assert_eq!(second, InvocationStatus::Succeeded);
    d
}

async fn replay(store: Arc<dyn Store>, n: u64, label: &str) -> f64 {
    line(label, n, replay_once(store, n).await)
}

/// In-memory replay: the best of [`REPEATS`] runs.
async fn replay_memory(n: u64, label: &str) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..REPEATS {
        best = best.min(replay_once(Arc::new(MemoryStore::new()), n).await);
    }
    line(label, n, best)
}

async fn concurrent(store: Arc<dyn Store>, executions: u64, n: u64, label: &str) -> f64 {
    let b = Bench::new(store);
    let h = handler(steps);
    let mut arns = Vec::new();
    for _ in 0..executions {
        arns.push(b.start(&format!("[{n},false]")).await);
    }
    let t = Instant::now();
    let local = tokio::task::LocalSet::new();
    local.run_until(futures::future::join_all(arns.iter().map(|a| b.invoke(&h, a)))).await;
    line(label, executions * n, t.elapsed())
}

fn main() {
    if let Ok(n) = std::env::var("DURABLE_BENCH_PROFILE_MEMORY") {
        // Only sequential in-memory steps, for a profiler.
        let n: u64 = n.parse().unwrap_or(100_000);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if std::env::var("DURABLE_BENCH_PROFILE_REPLAY_ONLY").is_err() {
            rt.block_on(sequential(Arc::new(MemoryStore::new()), n, "profile: sequential, in-memory"));
        }
        if std::env::var("DURABLE_BENCH_PROFILE_REPLAY").is_ok() {
            rt.block_on(replay(Arc::new(MemoryStore::new()), n, "profile: replay, in-memory"));
        }
        return;
    }
    if let Ok(n) = std::env::var("DURABLE_BENCH_PROFILE_REPLAY_EMBEDDED") {
        // Only the replay of a long execution on the embedded store, in its three phases.
        let n: u64 = n.parse().unwrap_or(100_000);
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-journal");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = fresh_dir(&base, "profile-replay");
        let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
        rt.block_on(async {
            let b = Bench::new(store.clone());
            let h = handler(steps);
            let arn = b.start(&format!("[{n},true]")).await;
            b.invoke(&h, &arn).await;
            b.clock.advance(Duration::from_secs(1));
            let t = Instant::now();
            let input = b.service.begin_invocation(&arn).await.unwrap();
            let t1 = t.elapsed();
            let token = input.checkpoint_token.clone();
            let InvocationOutcome::Output(out) = run_invocation(&h, input, b.service.checkpointer()).await else {
                panic!()
            };
            let t2 = t.elapsed();
            b.service.end_invocation(&arn, &token, InvocationEnd::Output(out)).await.unwrap();
            println!(
                "profile: replay of {n} steps, embedded: begin_invocation {t1:?}, the replay {:?}, end_invocation {:?}",
                t2.saturating_sub(t1),
                t.elapsed().saturating_sub(t2)
            );
        });
        return;
    }
    if std::env::var("DURABLE_BENCH_PROFILE_EMBEDDED").is_ok() {
        // Where an embedded step's time goes: raw syncs, bare store commits, full steps.
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-journal");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for _ in 0..2 {
                raw_fsync_rate(&base, 500);
                let dir = fresh_dir(&base, "profile-store");
                let store = EmbeddedStore::open(&dir).unwrap();
                let mut rec = durable_core::store::conformance::create(
                    &store,
                    durable_core::store::conformance::record("p", "f", "e"),
                )
                .await;
                let t = Instant::now();
                for i in 0..500u64 {
                    let op = durable_core::model::Operation::new(
                        format!("op{i}"),
                        durable_core::model::OperationType::Step,
                        durable_core::model::OperationStatus::Succeeded,
                        Timestamp::EPOCH,
                    );
                    let c = durable_core::store::conformance::commit_on(&rec, vec![op], 2);
                    rec = c.record.clone();
                    store.commit(c).await.unwrap();
                }
                line("bare store commits (1 op, 2 events)", 500, t.elapsed());
                let dir = fresh_dir(&base, "profile-steps");
                sequential(Arc::new(EmbeddedStore::open(&dir).unwrap()), 500, "steps on the embedded store").await;
            }
        });
        return;
    }
    let quick = std::env::var("DURABLE_BENCH_QUICK").is_ok();
    let base = std::env::var("DURABLE_BENCH_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-journal"), PathBuf::from);
    let sizes: &[u64] = if quick { &[1_000, 10_000] } else { &[1_000, 10_000, 100_000] };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("durable throughput benchmark (journals in {})\n", base.display());
        let raw = raw_fsync_rate(&base, if quick { 500 } else { 3000 });
        println!();
        let mut memory = Vec::new();
        for &n in sizes {
            memory.push((n, sequential_memory(n, &format!("sequential, in-memory, N={n} (best of {REPEATS})")).await));
        }
        let mut embedded = Vec::new();
        for &n in sizes {
            let dir = fresh_dir(&base, &format!("seq-{n}"));
            let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
            embedded.push((n, sequential(store.clone(), n, &format!("sequential, embedded, N={n}")).await));
            let st = store.stats();
            println!(
                "{:<52} {} commits, {} fsyncs, {} groups, {} bytes",
                "  journal", st.commits, st.fsyncs, st.groups, st.bytes_written
            );
        }
        // The disk's speed drifts over a run on shared machines: compare the embedded store
        // with raw syncs measured right before it, three times, and keep the median ratio.
        println!();
        let mut ratios = Vec::new();
        let mut single_rates = Vec::new();
        for i in 0..3 {
            let raw_here = raw_fsync_rate(&base, 500);
            let dir = fresh_dir(&base, &format!("paired-{i}"));
            let rate =
                sequential(Arc::new(EmbeddedStore::open(&dir).unwrap()), 1000, "sequential, embedded, N=1000 (paired)")
                    .await;
            ratios.push(rate / raw_here);
            single_rates.push(rate);
        }
        ratios.sort_by(f64::total_cmp);
        single_rates.sort_by(f64::total_cmp);
        let paired_ratio = ratios[1];
        let _ = raw;
        println!();
        let mut replays = Vec::new();
        for &n in sizes {
            replays
                .push((n, replay_memory(n, &format!("replay of N steps, in-memory, N={n} (best of {REPEATS})")).await));
        }
        let n = *sizes.last().unwrap();
        let dir = fresh_dir(&base, "replay");
        replay(
            Arc::new(EmbeddedStore::open(&dir).unwrap()),
            n,
            &format!("replay of N completed steps, embedded, N={n}"),
        )
        .await;
        println!();
        let per_exec = if quick { 100 } else { 300 };
        let dir = fresh_dir(&base, "single");
        let single =
            concurrent(Arc::new(EmbeddedStore::open(&dir).unwrap()), 1, per_exec * 10, "1 execution, embedded").await;
        let dir = fresh_dir(&base, "concurrent");
        let many = concurrent(
            Arc::new(EmbeddedStore::open(&dir).unwrap()),
            100,
            per_exec,
            "100 concurrent executions, embedded",
        )
        .await;

        let ratio = |v: &[(u64, f64)]| {
            let first = v.first().unwrap().1;
            let last = v.last().unwrap().1;
            first / last
        };
        let mem_10k = memory.iter().find(|(n, _)| *n == 10_000).map_or(0.0, |x| x.1);
        println!("\ntargets:");
        let report = |ok: bool, text: String| println!("  [{}] {text}", if ok { "met " } else { "MISS" });
        report(
            ratio(&memory) <= 1.5,
            format!(
                "in-memory per-step cost at N={} is {:.2}x that at N=1,000 (target <= 1.5x)",
                sizes.last().unwrap(),
                ratio(&memory)
            ),
        );
        report(
            ratio(&replays) <= 1.5,
            format!(
                "replay per-step cost at N={} is {:.2}x that at N=1,000 (target <= 1.5x)",
                sizes.last().unwrap(),
                ratio(&replays)
            ),
        );
        report(
            ratio(&embedded) <= 1.5,
            format!(
                "embedded per-step cost at N={} is {:.2}x that at N=1,000 (target <= 1.5x)",
                sizes.last().unwrap(),
                ratio(&embedded)
            ),
        );
        report(mem_10k >= 150_000.0, format!("in-memory at N=10,000: {mem_10k:.0} steps/s (target >= 150,000)"));
        report(
            paired_ratio >= 0.7,
            format!(
                "embedded, one execution: {:.0} steps/s = {:.0}% of the raw fsync rate measured just before it \
                 (median of 3 pairs; target >= 70%)",
                single_rates[1],
                paired_ratio * 100.0
            ),
        );
        report(
            many / single >= 5.0,
            format!(
                "100 concurrent executions: {many:.0} steps/s = {:.1}x one execution's {single:.0} (target >= 5x)",
                many / single
            ),
        );
    });
}
