//! The embedded store at scale and under damage (issue 11), in one run:
//!
//! - (d) a store holding 10,000 finished executions of 100 steps and 100 running ones (built
//!   by replaying, through the `Store` API, the commits a real execution made): its open
//!   time and resident memory, each measured in a fresh child process of this binary, after
//!   a clean close and after an exit that skipped the close;
//! - (e) its bytes on disk;
//! - (f) the corruption trials: one bit flipped at a random offset of a small store's files,
//!   many times; each trial is classified by what a full read through the `Store` API sees.
//!   The small store is written with 256 KiB segments and eager compaction, so its files
//!   are what a large store's are: a snapshot, archive files, several segments.
//!
//! Steps per second against the raw fsync rate, alone and 100 executions at a time, are the
//! throughput benchmark's (`durable-runtime/benches/throughput.rs`). This benchmark also
//! compared the journal with a redb-backed store on the same workloads; the journal won
//! (`docs/design/embedded-store.md` has the table) and the redb store was removed:
//! `git checkout 0ef1288` and `cargo bench -p durable-core --features redb --bench
//! store_compare` run it again.
//!
//! ```text
//! cargo bench -p durable-core --bench embedded_store
//! DURABLE_BENCH_QUICK=1 cargo bench ...          # small sizes (1,000 finished executions, 100 trials)
//! ```
//!
//! Sizes: `DURABLE_BENCH_FINISHED`, `DURABLE_BENCH_FINISHED_STEPS` and `DURABLE_BENCH_RUNNING`
//! (d, 10,000 x 100 and 100), `DURABLE_BENCH_PAYLOAD` (bytes of each step's result, default
//! 100), `DURABLE_BENCH_TRIALS` (f, default 300). `DURABLE_BENCH_DIR` is where the stores go
//! (default `target/bench-stores`); with `DURABLE_BENCH_KEEP` set, the large store of (d)
//! stays there for a closer look. Figures are printed; nothing is asserted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use durable_core::clock::ManualClock;
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{Event, InvocationStatus, Timestamp};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, StartExecution};
use durable_core::store::{
    Commit, DueExecution, EmbeddedOptions, EmbeddedStore, ExecutionRecord, ListQuery, MemoryStore, NewExecution, Store,
    StoreError, StoreResult, StoredOperation,
};
use durable_core::{DurableContext, Error, Handler, durable, handler};
use futures::StreamExt;

/// `n` sequential steps returning `payload` bytes each, then (if `wait_secs > 0`) a durable wait.
#[durable(crate = durable_core)]
async fn steps(ctx: DurableContext, (n, payload, wait_secs): (u64, usize, u64)) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..n {
        let s: String = ctx.step("s", async move |_| Ok(format!("{i:0>payload$}"))).await?;
        sum += s.len() as u64;
    }
    if wait_secs > 0 {
        ctx.wait("w", Duration::from_secs(wait_secs)).await?;
    }
    Ok(sum)
}

// ---------------------------------------------------------------------------------------
// Configuration.

struct Config {
    quick: bool,
    base: PathBuf,
    finished: u64,
    finished_steps: u64,
    running: u64,
    payload: usize,
    trials: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("DURABLE_BENCH_QUICK").is_ok();
        let base = std::env::var("DURABLE_BENCH_DIR")
            .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-stores"), PathBuf::from);
        Config {
            quick,
            base,
            finished: env_u64("DURABLE_BENCH_FINISHED", if quick { 1000 } else { 10_000 }),
            finished_steps: env_u64("DURABLE_BENCH_FINISHED_STEPS", 100),
            running: env_u64("DURABLE_BENCH_RUNNING", 100),
            payload: env_u64("DURABLE_BENCH_PAYLOAD", 100) as usize,
            trials: env_u64("DURABLE_BENCH_TRIALS", if quick { 100 } else { 300 }),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stores by name.

/// Opens the store in `dir` with the default options.
fn open(dir: &Path) -> StoreResult<Arc<EmbeddedStore>> {
    Ok(Arc::new(EmbeddedStore::open(dir)?))
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let p = base.join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

// ---------------------------------------------------------------------------------------
// The engine path, to record a real execution's writes.

struct Bench {
    service: Arc<CheckpointService>,
}

impl Bench {
    fn new(store: Arc<dyn Store>) -> Self {
        let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
        let service = Arc::new(CheckpointService::with_config(store, Arc::new(clock), ServiceConfig::default()));
        Bench { service }
    }

    async fn start(&self, input: &str) -> String {
        let req = StartExecution { function_name: "bench".into(), input: Some(input.into()), ..Default::default() };
        self.service.start_execution(req).await.unwrap().arn
    }

    /// One invocation; returns its status.
    async fn invoke(&self, h: &dyn Handler, arn: &str) -> InvocationStatus {
        let input = self.service.begin_invocation(arn).await.unwrap();
        let token = input.checkpoint_token.clone();
        let InvocationOutcome::Output(out) = run_invocation(h, input, self.service.checkpointer()).await else {
            panic!("the invocation did not end normally")
        };
        let status = out.status;
        self.service.end_invocation(arn, &token, InvocationEnd::Output(out)).await.unwrap();
        status
    }
}

// ---------------------------------------------------------------------------------------
// (d) and (e): a large store, built by replaying a real execution's writes.

/// Records the writes that pass through it.
#[derive(Default)]
struct Recorder {
    inner: MemoryStore,
    creates: Mutex<Vec<NewExecution>>,
    commits: Mutex<Vec<Commit>>,
}

#[async_trait]
impl Store for Recorder {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        self.creates.lock().unwrap().push(new.clone());
        self.inner.create_execution(new).await
    }
    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.inner.get_execution(arn).await
    }
    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.inner.find_execution(function_name, name).await
    }
    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        let c = commit.clone();
        let r = self.inner.commit(commit).await;
        if r.is_ok() {
            self.commits.lock().unwrap().push(c);
        }
        r
    }
    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        self.inner.read_operations(arn, after, limit).await
    }
    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.inner.read_events(arn, after, limit, reverse).await
    }
    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        self.inner.due_executions(now, limit).await
    }
    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.list_executions(query).await
    }
}

/// The writes of one real execution, to be replayed under other ids.
struct Template {
    create: NewExecution,
    commits: Vec<Commit>,
}

/// Runs one execution of `n` steps through the engine (ending with a one-hour wait if
/// `running`) and records its writes.
async fn template(n: u64, payload: usize, running: bool) -> Template {
    let recorder = Arc::new(Recorder::default());
    let b = Bench::new(recorder.clone());
    let arn = b.start(&format!("[{n},{payload},{}]", if running { 3600 } else { 0 })).await;
    let status = b.invoke(&handler(steps), &arn).await;
    assert_eq!(status, if running { InvocationStatus::Pending } else { InvocationStatus::Succeeded });
    let create = recorder.creates.lock().unwrap().pop().unwrap();
    let commits = std::mem::take(&mut *recorder.commits.lock().unwrap());
    Template { create, commits }
}

impl Template {
    /// The template's writes for execution number `i`: the same, under another ARN, id and name.
    fn instance(&self, i: u64) -> (NewExecution, Vec<Commit>) {
        let r = &self.create.record;
        let (old_id, old_arn) = (r.execution_id.clone(), r.arn.clone());
        let new_id: Arc<str> = format!("{:0>32x}", 0x00c0_ffee_0000_0000_u64 + i).into();
        let new_arn: Arc<str> = old_arn.replace(&*old_id, &new_id).into();
        let fix = |s: &mut Arc<str>| {
            if *s == old_id {
                *s = new_id.clone();
            }
        };
        let fix_opt = |s: &mut Option<Arc<str>>| {
            if let Some(s) = s {
                fix(s);
            }
        };
        let record = |r: &ExecutionRecord| {
            let mut r = r.clone();
            r.arn = new_arn.clone();
            fix(&mut r.execution_id);
            fix(&mut r.name);
            r
        };
        let ops = |ops: &[StoredOperation]| -> Vec<StoredOperation> {
            ops.iter()
                .map(|o| {
                    let mut o = o.clone();
                    let op = &o.operation;
                    if [Some(&op.id), op.parent_id.as_ref(), op.name.as_ref()].contains(&Some(&old_id)) {
                        let op = Arc::make_mut(&mut o.operation);
                        fix(&mut op.id);
                        fix_opt(&mut op.parent_id);
                        fix_opt(&mut op.name);
                    }
                    o
                })
                .collect()
        };
        let events = |events: &[Event]| -> Vec<Event> {
            events
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    fix_opt(&mut e.id);
                    fix_opt(&mut e.parent_id);
                    fix_opt(&mut e.name);
                    e
                })
                .collect()
        };
        let create = NewExecution {
            record: record(&self.create.record),
            operations: ops(&self.create.operations),
            events: events(&self.create.events),
        };
        let commits = self
            .commits
            .iter()
            .map(|c| Commit {
                expected_version: c.expected_version,
                record: record(&c.record),
                operations: ops(&c.operations),
                events: events(&c.events),
            })
            .collect();
        (create, commits)
    }

    /// Checks that an instance names nothing of the template's execution.
    fn check(&self) {
        let (create, commits) = self.instance(1);
        let old = &*self.create.record.execution_id;
        let mut text = serde_json::to_string(&create.record).unwrap();
        for c in &commits {
            text += &serde_json::to_string(&c.record).unwrap();
            text += &serde_json::to_string(&c.operations).unwrap();
            text += &serde_json::to_string(&c.events).unwrap();
        }
        text += &serde_json::to_string(&create.operations).unwrap();
        text += &serde_json::to_string(&create.events).unwrap();
        if let Some(at) = text.find(old) {
            let around = &text[at.saturating_sub(300)..(at + 100).min(text.len())];
            panic!("an instance still names the template's execution {old}: ...{around}...");
        }
    }

    fn bytes(&self) -> usize {
        let (create, commits) = self.instance(1);
        let mut n = serde_json::to_vec(&create.record).unwrap().len();
        for c in &commits {
            n += serde_json::to_vec(&c.record).unwrap().len()
                + serde_json::to_vec(&c.operations).unwrap().len()
                + serde_json::to_vec(&c.events).unwrap().len();
        }
        n
    }
}

/// Fills `store` with instances `0..count` of `template`, `parallel` executions at a time.
async fn fill(store: &dyn Store, template: &Template, from: u64, count: u64, parallel: usize) {
    futures::stream::iter(from..from + count)
        .for_each_concurrent(parallel, |i| async move {
            let (create, commits) = template.instance(i);
            store.create_execution(create).await.unwrap();
            for c in commits {
                store.commit(c).await.unwrap();
            }
        })
        .await;
}

/// What a child process measured.
#[derive(Debug, Default, Clone)]
struct Child {
    open_ms: f64,
    rss_before_kib: u64,
    rss_open_kib: u64,
    rss_warm_kib: u64,
    hwm_kib: u64,
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// In the child: open the store, then read every running execution whole (what a restart
/// does before it resumes them), measuring time and memory. With `crash`, commit once on
/// a running execution and exit without closing the store.
fn child_main(dir: &Path, mode: &str) {
    let rss_before = status_kib("VmRSS:");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = Instant::now();
    let store = open(dir).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_open = status_kib("VmRSS:");
    rt.block_on(async {
        let due = store.due_executions(Timestamp::from_millis(i64::MAX), usize::MAX).await.unwrap();
        assert!(!due.is_empty(), "the running executions are due some day");
        for d in &due {
            let r = store.get_execution(&d.arn).await.unwrap().unwrap();
            store.read_operations(&d.arn, None, usize::MAX).await.unwrap();
            store.read_events(&d.arn, 0, usize::MAX, false).await.unwrap();
            if mode == "crash" {
                let mut next = r.clone();
                next.version += 1;
                next.checkpoint_seq += 1;
                let c = Commit { expected_version: r.version, record: next, operations: vec![], events: vec![] };
                store.commit(c).await.unwrap();
                std::process::exit(0);
            }
        }
    });
    println!(
        "CHILD open_ms={open_ms} rss_before={rss_before} rss_open={rss_open} rss_warm={} hwm={}",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
}

fn run_child(dir: &Path, mode: &str) -> Child {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("DURABLE_BENCH_CHILD", format!("{mode}\t{}", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut child = Child::default();
    for kv in text.lines().filter(|l| l.starts_with("CHILD ")).flat_map(|l| l.split_whitespace().skip(1)) {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "open_ms" => child.open_ms = v.parse().unwrap(),
            "rss_before" => child.rss_before_kib = v.parse().unwrap(),
            "rss_open" => child.rss_open_kib = v.parse().unwrap(),
            "rss_warm" => child.rss_warm_kib = v.parse().unwrap(),
            "hwm" => child.hwm_kib = v.parse().unwrap(),
            _ => {}
        }
    }
    child
}

// ---------------------------------------------------------------------------------------
// (f) The corruption suite.

/// How a store answered a full read after one flipped byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Opening failed with `Corrupt`.
    RefusedAtOpen,
    /// A read failed with `Corrupt`.
    RefusedAtRead,
    /// Another error (at open or read).
    OtherError,
    /// Everything reads back as before.
    Harmless,
    /// Reads succeed but return less than before (acknowledged writes lost).
    SilentLoss,
    /// Reads succeed but return something different.
    SilentChange,
    /// The store panicked.
    Panic,
}

type Dump = Vec<(ExecutionRecord, Vec<StoredOperation>, Vec<Event>)>;

async fn dump(store: &dyn Store) -> StoreResult<(Dump, Vec<DueExecution>)> {
    let mut out = Vec::new();
    for r in store.list_executions(&ListQuery::default()).await? {
        let ops = store.read_operations(&r.arn, None, usize::MAX).await?;
        let events = store.read_events(&r.arn, 0, usize::MAX, false).await?;
        let found = store.find_execution(&r.function_name, &r.name).await?;
        if found.as_ref() != Some(&r) {
            return Err(StoreError::Invalid(format!("find_execution disagrees for {}", r.arn)));
        }
        out.push((r, ops, events));
    }
    let due = store.due_executions(Timestamp::from_millis(i64::MAX), usize::MAX).await?;
    Ok((out, due))
}

fn classify(before: &(Dump, Vec<DueExecution>), after: StoreResult<(Dump, Vec<DueExecution>)>) -> Outcome {
    match after {
        Err(StoreError::Corrupt(_)) => Outcome::RefusedAtRead,
        Err(_) => Outcome::OtherError,
        Ok(after) if after == *before => Outcome::Harmless,
        Ok((dump, _)) => {
            // Lost: every execution read back is one that was there, with a prefix of its
            // history at an older version.
            let old: BTreeMap<_, _> = before.0.iter().map(|(r, ops, ev)| (r.arn.clone(), (r, ops, ev))).collect();
            let lost = dump.iter().all(|(r, ops, ev)| {
                old.get(&r.arn).is_some_and(|(or, oops, oev)| {
                    r.version <= or.version && ops.len() <= oops.len() && oev.starts_with(ev)
                })
            });
            if lost { Outcome::SilentLoss } else { Outcome::SilentChange }
        }
    }
}

/// Builds a small store, then flips one byte at a time at random offsets of its files,
/// reopening and reading everything each time.
fn corruption_suite(base: &Path, trials: u64, t: &Template, r: &Template) -> BTreeMap<Outcome, u64> {
    let pristine = fresh_dir(base, "corrupt-pristine");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = rt.block_on(async {
        // Small segments and eager compaction, so that the small store has what a large one
        // has: a snapshot, archive files and several segments.
        let options = EmbeddedOptions::new().segment_bytes(256 << 10).compaction(512 << 10, 0.5);
        let store = EmbeddedStore::open_with(&pristine, options).unwrap();
        fill(&store, t, 0, 20, 8).await;
        fill(&store, r, 1000, 5, 8).await;
        dump(&store).await.unwrap()
    });
    let files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&pristine)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let trial_dir = base.join("corrupt-trial");
    let mut outcomes = BTreeMap::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..trials {
        let _ = std::fs::remove_dir_all(&trial_dir);
        std::fs::create_dir_all(&trial_dir).unwrap();
        let mut at = next() % total;
        let bit = 1u8 << (next() % 8);
        let mut flipped = String::new();
        for (p, bytes) in &files {
            let mut bytes = bytes.clone();
            if at < bytes.len() as u64 {
                bytes[at as usize] ^= bit;
                flipped = format!("{}:{at} (of {} bytes)", p.file_name().unwrap().to_string_lossy(), bytes.len());
                at = u64::MAX;
            } else if at != u64::MAX {
                at -= bytes.len() as u64;
            }
            std::fs::write(trial_dir.join(p.file_name().unwrap()), bytes).unwrap();
        }
        let (outcome, detail) = std::panic::catch_unwind(AssertUnwindSafe(|| match open(&trial_dir) {
            Err(StoreError::Corrupt(_)) => (Outcome::RefusedAtOpen, String::new()),
            Err(e) => (Outcome::OtherError, e.to_string()),
            Ok(store) => {
                let after = rt.block_on(dump(&*store));
                let detail = match &after {
                    Err(e) => e.to_string(),
                    Ok((d, due)) => format!(
                        "{} executions, {} operations, {} events, {} due (before: {}, {}, {}, {})",
                        d.len(),
                        d.iter().map(|x| x.1.len()).sum::<usize>(),
                        d.iter().map(|x| x.2.len()).sum::<usize>(),
                        due.len(),
                        before.0.len(),
                        before.0.iter().map(|x| x.1.len()).sum::<usize>(),
                        before.0.iter().map(|x| x.2.len()).sum::<usize>(),
                        before.1.len()
                    ),
                };
                (classify(&before, after), detail)
            }
        }))
        .unwrap_or_else(|payload| {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            (Outcome::Panic, msg)
        });
        if !matches!(outcome, Outcome::RefusedAtOpen | Outcome::RefusedAtRead | Outcome::Harmless) {
            println!("corruption: {outcome:?} after flipping {bit:#04x} at {flipped}: {detail}");
        }
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    std::panic::set_hook(hook);
    let _ = std::fs::remove_dir_all(&trial_dir);
    outcomes
}

// ---------------------------------------------------------------------------------------

fn main() {
    if let Ok(spec) = std::env::var("DURABLE_BENCH_CHILD") {
        let (mode, dir) = spec.split_once('\t').expect("mode and directory");
        child_main(Path::new(dir), mode);
        return;
    }
    let cfg = Config::from_env();
    std::fs::create_dir_all(&cfg.base).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "embedded store in {}{}: (d) {} finished x {} steps + {} running, {} B step results, (f) {} trials",
        cfg.base.display(),
        if cfg.quick { " (quick)" } else { "" },
        cfg.finished,
        cfg.finished_steps,
        cfg.running,
        cfg.payload,
        cfg.trials
    );
    let (finished_t, running_t) = rt.block_on(async {
        let f = template(cfg.finished_steps, cfg.payload, false).await;
        let r = template(cfg.finished_steps / 2, cfg.payload, true).await;
        (f, r)
    });
    finished_t.check();
    running_t.check();
    println!(
        "template: a finished execution is 1 create + {} commits ({} KiB of JSON records, operations and events)\n",
        finished_t.commits.len(),
        finished_t.bytes() / 1024
    );

    // (d), (e): build once, close, then open in fresh processes.
    let dir = fresh_dir(&cfg.base, "large");
    let t = Instant::now();
    rt.block_on(async {
        let store = open(&dir).unwrap();
        fill(&*store, &finished_t, 0, cfg.finished, 512).await;
        fill(&*store, &running_t, cfg.finished, cfg.running, 100).await;
    });
    let build_s = t.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir);
    println!(
        "built {} + {} executions in {build_s:.1} s: {:.1} MiB on disk",
        cfg.finished,
        cfg.running,
        bytes as f64 / 1_048_576.0
    );
    let clean = run_child(&dir, "clean");
    run_child(&dir, "crash");
    let crash = run_child(&dir, "clean");
    if std::env::var_os("DURABLE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    // (f)
    let corruption = corruption_suite(&cfg.base, cfg.trials, &finished_t, &running_t);

    let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
    let mut table = String::new();
    let _ = writeln!(table, "| | embedded store |\n|---|---|");
    let mut line = |label: &str, value: String| {
        let _ = writeln!(table, "| {label} | {value} |");
    };
    line("(d) build time (through the Store API)", format!("{build_s:.0} s"));
    line("(d) open time, after a clean close (target < 1 s)", format!("{:.0} ms", clean.open_ms));
    line("(d) open time, after an exit without close", format!("{:.0} ms", crash.open_ms));
    line("(d) RSS of the process before opening", mib(clean.rss_before_kib));
    line("(d) RSS after open", mib(clean.rss_open_kib));
    line("(d) RSS after reading the running executions", mib(clean.rss_warm_kib));
    line("(d) peak RSS, open included (target < 150 MB)", mib(clean.hwm_kib));
    line("(e) bytes on disk", format!("{:.0} MiB", bytes as f64 / 1_048_576.0));
    for outcome in [
        Outcome::RefusedAtOpen,
        Outcome::RefusedAtRead,
        Outcome::OtherError,
        Outcome::Harmless,
        Outcome::SilentLoss,
        Outcome::SilentChange,
        Outcome::Panic,
    ] {
        line(&format!("(f) one flipped bit: {outcome:?}"), corruption.get(&outcome).copied().unwrap_or(0).to_string());
    }
    println!(
        "(d): {} finished executions of {} steps and {} running ones; (f): {} trials\n\n{table}",
        cfg.finished, cfg.finished_steps, cfg.running, cfg.trials
    );
}
