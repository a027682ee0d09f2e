//! The embedded journal against the redb store (issue 11), on the same workloads in one run:
//!
//! - (a) the raw fsync rate of the disk (1 KiB append + fdatasync), measured right before
//!   each store's single-execution run;
//! - (b) one execution's sequential steps per second through the real engine path
//!   (`CheckpointService` + `run_invocation`), and its ratio to that raw rate (median of
//!   three pairs); for redb also the floor of any redb layout: bare durable commits of one
//!   row into one table, with no store around them;
//! - (c) 100 concurrent executions' total steps per second, and the writes per group commit;
//! - (d) a store holding 10,000 finished executions of 100 steps and 100 running ones (built
//!   by replaying, through the `Store` API, the commits a real execution made): its open
//!   time and resident memory, each measured in a fresh child process of this binary, after
//!   a clean close and after an exit that skipped the close;
//! - (e) its bytes on disk;
//! - (f) the corruption suite: one byte flipped at a random offset of a small store's files,
//!   many times; each trial is classified by what a full read through the `Store` API sees.
//!   The journal's small store is written with 256 KiB segments and eager compaction, so
//!   its files are what a large store's are: a snapshot, archive files, several segments.
//!
//! ```text
//! cargo bench -p durable-core --features redb --bench store_compare
//! DURABLE_BENCH_QUICK=1 cargo bench ...          # small sizes (1,000 finished executions, ...)
//! DURABLE_BENCH_STORES=redb cargo bench ...      # some of: embedded, redb, redb-quick
//! ```
//!
//! Sizes: `DURABLE_BENCH_STEPS` (b, default 1000), `DURABLE_BENCH_CONCURRENT` and
//! `DURABLE_BENCH_CONCURRENT_STEPS` (c, 100 x 100), `DURABLE_BENCH_FINISHED`,
//! `DURABLE_BENCH_FINISHED_STEPS` and `DURABLE_BENCH_RUNNING` (d, 10,000 x 100 and 100),
//! `DURABLE_BENCH_PAYLOAD` (bytes of each step's result, default 100),
//! `DURABLE_BENCH_TRIALS` (f, default 300). `DURABLE_BENCH_DIR` is where the stores go
//! (default `target/bench-stores`); with `DURABLE_BENCH_KEEP` set, the large store of (d)
//! stays there for a closer look. Figures are printed; nothing is asserted.
//!
//! `redb-quick` is the redb store with `quick_repair` (two syncs per commit, instant
//! recovery after a crash).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
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
    Commit, DueExecution, EmbeddedOptions, EmbeddedStore, ExecutionRecord, ListQuery, MemoryStore, NewExecution,
    RedbOptions, RedbStore, Store, StoreError, StoreResult, StoredOperation,
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
    stores: Vec<String>,
    steps: u64,
    concurrent: u64,
    concurrent_steps: u64,
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
        let stores = std::env::var("DURABLE_BENCH_STORES")
            .unwrap_or_else(|_| "embedded,redb".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Config {
            quick,
            base,
            stores,
            steps: env_u64("DURABLE_BENCH_STEPS", if quick { 300 } else { 1000 }),
            concurrent: env_u64("DURABLE_BENCH_CONCURRENT", 100),
            concurrent_steps: env_u64("DURABLE_BENCH_CONCURRENT_STEPS", if quick { 30 } else { 100 }),
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

enum Opened {
    Embedded(Arc<EmbeddedStore>),
    Redb(Arc<RedbStore>),
}

impl Opened {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Embedded(s) => s.clone(),
            Opened::Redb(s) => s.clone(),
        }
    }

    /// Group commits (each one sync, or two for `redb-quick`) since the store was opened.
    fn groups(&self) -> u64 {
        match self {
            Opened::Embedded(s) => s.stats().groups,
            Opened::Redb(s) => s.stats().groups,
        }
    }
}

/// Opens the store named `kind` in `dir`. `verify` asks redb to verify its whole file.
fn open(kind: &str, dir: &Path, verify: bool) -> StoreResult<Opened> {
    match kind {
        "embedded" => Ok(Opened::Embedded(Arc::new(EmbeddedStore::open(dir)?))),
        "redb" | "redb-quick" => {
            let options = RedbOptions::new().quick_repair(kind == "redb-quick").verify_on_open(verify);
            Ok(Opened::Redb(Arc::new(RedbStore::open_with(dir, options)?)))
        }
        other => panic!("unknown store {other:?} (known: embedded, redb, redb-quick)"),
    }
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
// (a) to (c): the engine path.

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

/// The raw rate of 1 KiB appends, each followed by fdatasync, in `dir`.
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
    rate
}

/// One execution of `n` steps on a fresh store; steps per second and bytes written to
/// storage per step.
async fn sequential(kind: &str, dir: &Path, n: u64, payload: usize) -> (f64, f64) {
    let opened = open(kind, dir, false).unwrap();
    let b = Bench::new(opened.store());
    let h = handler(steps);
    let arn = b.start(&format!("[{n},{payload},0]")).await;
    let written = write_bytes();
    let t = Instant::now();
    assert_eq!(b.invoke(&h, &arn).await, InvocationStatus::Succeeded);
    let elapsed = t.elapsed();
    (n as f64 / elapsed.as_secs_f64(), (write_bytes() - written) as f64 / n as f64)
}

/// `executions` concurrent executions of `n` steps; total steps per second, writes per group
/// and bytes written to storage per step.
async fn concurrent(kind: &str, dir: &Path, executions: u64, n: u64, payload: usize) -> (f64, f64, f64) {
    let opened = open(kind, dir, false).unwrap();
    let b = Bench::new(opened.store());
    let h = handler(steps);
    let mut arns = Vec::new();
    for _ in 0..executions {
        arns.push(b.start(&format!("[{n},{payload},0]")).await);
    }
    let groups = opened.groups();
    let written = write_bytes();
    let t = Instant::now();
    let local = tokio::task::LocalSet::new();
    let statuses = local.run_until(futures::future::join_all(arns.iter().map(|a| b.invoke(&h, a)))).await;
    let elapsed = t.elapsed();
    let written = (write_bytes() - written) as f64 / (executions * n) as f64;
    assert!(statuses.iter().all(|s| *s == InvocationStatus::Succeeded));
    // Each step is one commit; begin and end of each invocation are one more each.
    let writes = (executions * (n + 2)) as f64;
    let per_group = writes / (opened.groups() - groups).max(1) as f64;
    ((executions * n) as f64 / elapsed.as_secs_f64(), per_group, written)
}

/// The floor of any store on redb: durable commits of one 300-byte row each into one table
/// of 200,000 rows, with no store around them; commits per second and bytes written per
/// commit. Whatever its table layout, a redb store's one execution cannot beat this.
fn redb_floor(dir: &Path, n: u64) -> (f64, f64) {
    use redb::TableDefinition;
    const ROWS: TableDefinition<'static, (u64, u64), &[u8]> = TableDefinition::new("rows");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("floor.redb");
    let _ = std::fs::remove_file(&path);
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut rows = txn.open_table(ROWS).unwrap();
        for e in 0..2000u64 {
            for s in 0..100u64 {
                rows.insert((e, s), &[7u8; 300][..]).unwrap();
            }
        }
    }
    txn.commit().unwrap();
    let written = write_bytes();
    let t = Instant::now();
    for s in 0..n {
        let txn = db.begin_write().unwrap();
        txn.open_table(ROWS).unwrap().insert((5000, s), &[9u8; 300][..]).unwrap();
        txn.commit().unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let per_commit = (write_bytes() - written) as f64 / n as f64;
    drop(db);
    let _ = std::fs::remove_file(&path);
    (rate, per_commit)
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

/// Bytes this process has caused to be written to storage (`/proc/self/io`).
fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let line = io.lines().find(|l| l.starts_with("write_bytes:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// In the child: open the store, then read every running execution whole (what a restart
/// does before it resumes them), measuring time and memory. With `crash`, commit once on
/// a running execution and exit without closing the store.
fn child_main(kind: &str, dir: &Path, mode: &str) {
    let rss_before = status_kib("VmRSS:");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = Instant::now();
    let opened = open(kind, dir, mode == "verify").unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_open = status_kib("VmRSS:");
    let store = opened.store();
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

fn run_child(kind: &str, dir: &Path, mode: &str) -> Child {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("DURABLE_BENCH_CHILD", format!("{kind}\t{mode}\t{}", dir.display()))
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
fn corruption_suite(
    kind: &str,
    verify: bool,
    base: &Path,
    trials: u64,
    t: &Template,
    r: &Template,
) -> BTreeMap<Outcome, u64> {
    let pristine = fresh_dir(base, &format!("{kind}-corrupt-pristine"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = rt.block_on(async {
        // The journal with small segments and eager compaction, so that its small store has
        // what a large one has: a snapshot, archive files and several segments.
        let opened = if kind == "embedded" {
            let options = EmbeddedOptions::new().segment_bytes(256 << 10).compaction(512 << 10, 0.5);
            Opened::Embedded(Arc::new(EmbeddedStore::open_with(&pristine, options).unwrap()))
        } else {
            open(kind, &pristine, false).unwrap()
        };
        let store = opened.store();
        fill(&*store, t, 0, 20, 8).await;
        fill(&*store, r, 1000, 5, 8).await;
        dump(&*store).await.unwrap()
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
    let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ kind.len() as u64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let trial_dir = base.join(format!("{kind}-corrupt-trial"));
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
        let (outcome, detail) = std::panic::catch_unwind(AssertUnwindSafe(|| match open(kind, &trial_dir, verify) {
            Err(StoreError::Corrupt(_)) => (Outcome::RefusedAtOpen, String::new()),
            Err(e) => (Outcome::OtherError, e.to_string()),
            Ok(opened) => {
                let store = opened.store();
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
            let verified = if verify { " (verified at open)" } else { "" };
            println!("{kind:<10} corruption{verified}: {outcome:?} after flipping {bit:#04x} at {flipped}: {detail}");
        }
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    std::panic::set_hook(hook);
    let _ = std::fs::remove_dir_all(&trial_dir);
    outcomes
}

// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Row {
    raw: f64,
    single: f64,
    ratio: f64,
    single_written: f64,
    floor: Option<(f64, f64)>,
    many: f64,
    per_group: f64,
    written_per_step: f64,
    build_s: f64,
    bytes: u64,
    clean: Child,
    crash: Child,
    verify: Option<Child>,
    corruption: BTreeMap<Outcome, u64>,
    corruption_verified: Option<BTreeMap<Outcome, u64>>,
}

fn main() {
    if let Ok(spec) = std::env::var("DURABLE_BENCH_CHILD") {
        let mut parts = spec.splitn(3, '\t');
        let (kind, mode, dir) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        child_main(kind, Path::new(dir), mode);
        return;
    }
    let cfg = Config::from_env();
    std::fs::create_dir_all(&cfg.base).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "store comparison in {}{}: (b) {} steps, (c) {} x {} steps, (d) {} finished x {} steps + {} running, \
         {} B step results, (f) {} trials",
        cfg.base.display(),
        if cfg.quick { " (quick)" } else { "" },
        cfg.steps,
        cfg.concurrent,
        cfg.concurrent_steps,
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

    let mut rows: Vec<(String, Row)> = Vec::new();
    for kind in &cfg.stores {
        let mut row = Row::default();
        // (a), (b): three pairs of (raw fsync rate, one execution right after); medians.
        let mut pairs = Vec::new();
        for i in 0..3 {
            let raw = raw_fsync_rate(&cfg.base, 500);
            let dir = fresh_dir(&cfg.base, &format!("{kind}-seq-{i}"));
            let (rate, written) = rt.block_on(sequential(kind, &dir, cfg.steps, cfg.payload));
            println!(
                "{kind:<10} raw fsync {raw:>8.0}/s   one execution {rate:>8.0} steps/s   {:>5.1}%   {written:>6.0} \
                 bytes written per step",
                rate / raw * 100.0
            );
            pairs.push((raw, rate, rate / raw, written));
            let _ = std::fs::remove_dir_all(&dir);
        }
        pairs.sort_by(|a, b| a.2.total_cmp(&b.2));
        (row.raw, row.single, row.ratio, row.single_written) = pairs[1];
        if kind.starts_with("redb") {
            let mut floors = Vec::new();
            for _ in 0..3 {
                let raw = raw_fsync_rate(&cfg.base, 500);
                let (rate, written) = redb_floor(&cfg.base.join("floor"), 500);
                println!(
                    "{kind:<10} raw fsync {raw:>8.0}/s   bare redb commits {rate:>8.0}/s   {:>5.1}%   {written:>6.0} \
                     bytes written per commit",
                    rate / raw * 100.0
                );
                floors.push((rate / raw, written));
            }
            floors.sort_by(|a, b| a.0.total_cmp(&b.0));
            row.floor = Some(floors[1]);
        }

        // (c)
        let dir = fresh_dir(&cfg.base, &format!("{kind}-concurrent"));
        (row.many, row.per_group, row.written_per_step) =
            rt.block_on(concurrent(kind, &dir, cfg.concurrent, cfg.concurrent_steps, cfg.payload));
        println!(
            "{kind:<10} {} concurrent executions: {:.0} steps/s, {:.1} writes per group commit, {:.0} bytes written per step",
            cfg.concurrent, row.many, row.per_group, row.written_per_step
        );
        let _ = std::fs::remove_dir_all(&dir);

        // (d), (e): build once, close, then open in fresh processes.
        let dir = fresh_dir(&cfg.base, &format!("{kind}-large"));
        let t = Instant::now();
        rt.block_on(async {
            let opened = open(kind, &dir, false).unwrap();
            let store = opened.store();
            fill(&*store, &finished_t, 0, cfg.finished, 512).await;
            fill(&*store, &running_t, cfg.finished, cfg.running, 100).await;
        });
        row.build_s = t.elapsed().as_secs_f64();
        row.bytes = dir_bytes(&dir);
        println!(
            "{kind:<10} built {} + {} executions in {:.1} s: {:.1} MiB on disk",
            cfg.finished,
            cfg.running,
            row.build_s,
            row.bytes as f64 / 1_048_576.0
        );
        row.clean = run_child(kind, &dir, "clean");
        if kind.starts_with("redb") {
            row.verify = Some(run_child(kind, &dir, "verify"));
        }
        run_child(kind, &dir, "crash");
        row.crash = run_child(kind, &dir, "clean");
        println!(
            "{kind:<10} open {:.0} ms (after an unclean exit {:.0} ms), RSS {} MiB open, {} MiB warm, peak {} MiB",
            row.clean.open_ms,
            row.crash.open_ms,
            row.clean.rss_open_kib / 1024,
            row.clean.rss_warm_kib / 1024,
            row.clean.hwm_kib / 1024
        );
        if std::env::var_os("DURABLE_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }

        // (f)
        row.corruption = corruption_suite(kind, false, &cfg.base, cfg.trials, &finished_t, &running_t);
        println!("{kind:<10} corruption: {:?}", row.corruption);
        if kind.starts_with("redb") {
            let verified = corruption_suite(kind, true, &cfg.base, cfg.trials, &finished_t, &running_t);
            println!("{kind:<10} corruption, verified at open: {verified:?}");
            row.corruption_verified = Some(verified);
        }
        println!();
        rows.push((kind.clone(), row));
    }

    // The table.
    let mut table = String::new();
    let header: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let _ = writeln!(table, "| | {} |", header.join(" | "));
    let _ = writeln!(table, "|---|{}", "---|".repeat(rows.len()));
    let mut line = |label: &str, f: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = rows.iter().map(|(_, r)| f(r)).collect();
        let _ = writeln!(table, "| {label} | {} |", cells.join(" | "));
    };
    let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
    line("(a) raw fsync rate (1 KiB append + fdatasync)", &|r| format!("{:.0}/s", r.raw));
    line("(b) one execution, sequential steps", &|r| format!("{:.0} steps/s", r.single));
    line("(b) ... as a share of the raw fsync rate (median of 3)", &|r| format!("{:.0}%", r.ratio * 100.0));
    line("(b) ... bytes written to the disk per step", &|r| format!("{:.1} KiB", r.single_written / 1024.0));
    line("(b) floor: bare redb commits of one row, share of raw fsync", &|r| {
        r.floor
            .map_or("-".into(), |(ratio, written)| format!("{:.0}% ({:.1} KiB each)", ratio * 100.0, written / 1024.0))
    });
    line(&format!("(c) {} concurrent executions", cfg.concurrent), &|r| format!("{:.0} steps/s", r.many));
    line("(c) ... writes per group commit", &|r| format!("{:.1}", r.per_group));
    line("(c) ... bytes written to the disk per step", &|r| format!("{:.1} KiB", r.written_per_step / 1024.0));
    line("(d) build time (through the Store API)", &|r| format!("{:.0} s", r.build_s));
    line("(d) open time, after a clean close", &|r| format!("{:.0} ms", r.clean.open_ms));
    line("(d) open time, after an exit without close", &|r| format!("{:.0} ms", r.crash.open_ms));
    line("(d) open time, verifying the whole file", &|r| {
        // The journal checks its live segments at every open and archive frames as they are
        // read; `durable store verify` reads everything.
        r.verify.as_ref().map_or("(live segments always; archives as read)".into(), |v| format!("{:.0} ms", v.open_ms))
    });
    line("(d) RSS of the process before opening", &|r| mib(r.clean.rss_before_kib));
    line("(d) RSS after open", &|r| mib(r.clean.rss_open_kib));
    line("(d) RSS after reading the running executions", &|r| mib(r.clean.rss_warm_kib));
    line("(d) peak RSS (open included)", &|r| mib(r.clean.hwm_kib));
    line("(e) bytes on disk", &|r| format!("{:.0} MiB", r.bytes as f64 / 1_048_576.0));
    for outcome in [
        Outcome::RefusedAtOpen,
        Outcome::RefusedAtRead,
        Outcome::OtherError,
        Outcome::Harmless,
        Outcome::SilentLoss,
        Outcome::SilentChange,
        Outcome::Panic,
    ] {
        line(&format!("(f) one flipped byte: {outcome:?}"), &|r| {
            let verified = r
                .corruption_verified
                .as_ref()
                .map_or(String::new(), |v| format!(" ({} verified at open)", v.get(&outcome).copied().unwrap_or(0)));
            format!("{}{verified}", r.corruption.get(&outcome).copied().unwrap_or(0))
        });
    }
    println!(
        "(d): {} finished executions of {} steps and {} running ones; (f): {} trials each\n\n{table}",
        cfg.finished, cfg.finished_steps, cfg.running, cfg.trials
    );
}
