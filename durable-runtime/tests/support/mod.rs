//! Shared by the control-plane and store-outage tests: a function that waits on a
//! callback, a worker running beside the test, polling, raw HTTP requests (to check the
//! wire itself, not only what our client makes of it), and a store whose disk is full
//! on demand.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use durable_core::model::{Event, EventType, Timestamp};
use durable_core::store::{
    Commit, DueExecution, ExecutionRecord, ListQuery, MemoryStore, NewExecution, Store, StoreError, StoreResult,
    StoredOperation,
};
use durable_core::{DurableContext, Error, handler};
use durable_runtime::LocalRunner;
use durable_runtime::client::Client;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Checks a request, waits for a human's decision on a callback, and reports it.
pub async fn approve(ctx: DurableContext, request: String) -> Result<String, Error> {
    let checked = ctx.step("check", async |_| Ok(format!("checked {request}"))).await?;
    let callback = ctx.create_callback::<String>("approval").timeout(Duration::from_hours(1)).await?;
    let decision = callback.result().await?;
    ctx.step("record", async |_| Ok(())).await?;
    Ok(format!("{checked}: {decision}"))
}

/// A runner hosting `approve` in memory.
pub fn runner() -> LocalRunner {
    LocalRunner::builder().register("approve", handler(approve)).build()
}

/// Runs `test` while the runner's worker runs, then stops the worker.
pub async fn with_worker<T>(runner: &LocalRunner, test: impl Future<Output = T>) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let worker = runner.run_worker(|| stop.load(Ordering::SeqCst));
    let test = async {
        let out = test.await;
        stop.store(true, Ordering::SeqCst);
        runner.wake();
        out
    };
    let (worker, out) = tokio::join!(worker, test);
    worker.expect("the worker ran without errors");
    out
}

/// Polls `f` until it returns `Some`. The limit only keeps a broken build from hanging
/// forever; nothing asserts on how long it took. (A poll on the wall clock: the tests ask
/// over real loopback HTTP, as a client would, and the control plane notifies no client.)
pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..6000 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// The callback id of the execution's first callback, once it has one.
pub async fn callback_id(client: &Client, arn: &str) -> String {
    eventually("the callback to start", async || {
        let events = client.history(arn).await.expect("history");
        events.iter().find(|e| e.event_type == EventType::CallbackStarted).and_then(|e| e.details.callback_id.clone())
    })
    .await
}

/// The execution's events once it has one of type `t`.
pub async fn history_with(client: &Client, arn: &str, t: EventType) -> Vec<Event> {
    eventually(&format!("a {t} event"), async || {
        let events = client.history(arn).await.expect("history");
        events.iter().any(|e| e.event_type == t).then_some(events)
    })
    .await
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts an AWS REST-JSON error: status, `x-amzn-errortype`, and a message.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-amzn-errortype"), Some(code), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let message = self.json()["message"].as_str().map(str::to_owned);
        assert!(message.is_some_and(|m| !m.is_empty()), "a message: {self:?}");
    }
}

/// Sends one request by hand and reads the whole answer.
pub async fn raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8(answer).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Raw { status, headers, body: body.to_owned() }
}

/// The path of an execution route, with the ARN encoded as the AWS SDKs encode it.
pub fn execution_path(arn: &str, suffix: &str) -> String {
    let encoded: String = arn
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/2025-12-01/durable-executions/{encoded}{suffix}")
}

/// A [`MemoryStore`] whose commits fail as a full disk's would while [`fail_commits`] is
/// on, and which counts the calls made to it. Creating an execution still works: the
/// outage starts after the start.
///
/// [`fail_commits`]: FlakyStore::fail_commits
#[derive(Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
    failing_reads: AtomicBool,
    /// How many of the next commits that record an invocation's end fail.
    failing_ends: AtomicU64,
    calls: AtomicU64,
    commits: AtomicU64,
    failed_commits: AtomicU64,
}

impl FlakyStore {
    pub fn new() -> Arc<Self> {
        Arc::new(FlakyStore::default())
    }

    /// Turns the outage on or off.
    pub fn fail_commits(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Turns failing reads on or off (every call but `commit` and `create_execution`), as a
    /// remote store's would fail when the network goes.
    pub fn fail_reads(&self, on: bool) {
        self.failing_reads.store(on, Ordering::SeqCst);
    }

    /// Fails the next `n` commits that record the end of an invocation, and only those.
    pub fn fail_invocation_ends(&self, n: u64) {
        self.failing_ends.store(n, Ordering::SeqCst);
    }

    /// Reads so far (every call but commits and creations).
    pub fn reads(&self) -> u64 {
        self.calls() - self.commits.load(Ordering::SeqCst)
    }

    /// Commits so far (refused ones included).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Calls of any kind so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Commits refused so far.
    pub fn failed_commits(&self) -> u64 {
        self.failed_commits.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    fn read(&self) -> StoreResult<()> {
        self.count();
        if self.failing_reads.load(Ordering::SeqCst) {
            return Err(StoreError::backend("connection reset by peer", true));
        }
        Ok(())
    }
}

/// What the embedded store answers when its disk is full.
pub const DISK_FULL: &str = "No space left on device (os error 28)";

#[async_trait::async_trait]
impl Store for FlakyStore {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        self.count();
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.create_execution(new).await
    }
    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.read()?;
        self.inner.get_execution(arn).await
    }
    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.read()?;
        self.inner.find_execution(function_name, name).await
    }
    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        self.count();
        self.commits.fetch_add(1, Ordering::SeqCst);
        let ends = commit.events.iter().any(|e| e.event_type == EventType::InvocationCompleted)
            && commit.record.invocation_started.is_none();
        if ends && self.failing_ends.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::backend("the answer to the write was lost: connection reset", true));
        }
        if self.failing.load(Ordering::SeqCst) {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::backend(format!("cannot append to the journal: {DISK_FULL}"), false));
        }
        self.inner.commit(commit).await
    }
    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        self.read()?;
        self.inner.read_operations(arn, after, limit).await
    }
    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.read()?;
        self.inner.read_events(arn, after, limit, reverse).await
    }
    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        self.read()?;
        self.inner.due_executions(now, limit).await
    }
    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.read()?;
        self.inner.list_executions(query).await
    }
}

/// A clock that reads Tokio's time (paused in these tests, so it advances as the runtime
/// auto-advances): waits and back-offs then pass at the same pace for the service and for
/// the worker's timers.
pub struct TokioClock {
    base: Timestamp,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// Tokio's now reads as `base`.
    pub fn new(base: Timestamp) -> Arc<Self> {
        Arc::new(TokioClock { base, origin: tokio::time::Instant::now() })
    }
}

impl durable_core::clock::Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.plus(self.origin.elapsed())
    }
}
