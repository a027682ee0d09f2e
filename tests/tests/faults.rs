//! Durable executions under faults between durable and DynamoDB: the fault-injecting proxy
//! (`durable_tests::faults`) sits between the DynamoDB store and moto's DynamoDB and
//! answers some requests with a 5xx, throttles some, resets connections before forwarding,
//! forwards and then drops the answer, or delays. The workflow
//! (`durable_tests::faults::workflow`: at-least-once and at-most-once steps, a wait, a
//! child context, a map and a callback completed by the test) runs
//!
//! - on the local runner (`LocalRunner::run_until_finished`, and `run_worker` stopped by
//!   the test) over a `DynamoStore` pointed at an in-process proxy
//!   (`local_runner_on_dynamodb_under_faults`), and
//! - in self-hosted Lambda mode: the `fault-workflow` binary under `cargo lambda watch`,
//!   its DynamoDB endpoint a `fault-proxy` process (`scripts/standins/faults.sh`), driven
//!   as AWS would: invokes, the SQS event source mapping, the sweep schedule
//!   (`selfhosted_lambda_under_faults`).
//!
//! Every execution must end as a fault-free execution does: SUCCEEDED, the same result, the
//! same history (event types and operation names in order; `InvocationCompleted` events
//! aside), no attempt of an at-most-once step run twice, and within a generous timeout. A
//! failure names the execution, what went wrong and the faults its requests met; a failing
//! run can be replayed with its seed. The store's SDK client tries each request twice
//! (one SDK retry) so that faults reach durable's own retries instead of all being absorbed
//! by the SDK.
//!
//! ```text
//! scripts/standins/dynamodb.sh scripts/standins/faults.sh \
//!     cargo test -p durable-tests --features faults --test faults -- --nocapture
//! ```
//!
//! Knobs (environment): `DURABLE_FAULTS_EXECUTIONS` (per phase; default 4 locally, 2
//! self-hosted), `DURABLE_FAULTS_PHASES` (`mixed`, mode names, or `modes` for each mode
//! alone; default `mixed`), `DURABLE_FAULTS_MODE_RATE` (a single mode's rate, default
//! 0.1, 0.02 for delays), `DURABLE_FAULTS_MIXED_RATES`, `DURABLE_FAULTS_SEED`, `DURABLE_FAULTS_DELAY_MS`,
//! `DURABLE_FAULTS_SDK_ATTEMPTS` (the local store's; `scripts/standins/faults.sh` passes it
//! to the functions as `AWS_MAX_ATTEMPTS`), `DURABLE_FAULTS_TIMEOUT_SECONDS`,
//! `DURABLE_FAULTS_TARGETS` (`local,selfhosted`), `DURABLE_FAULTS_CONCURRENCY` (executions
//! run at once, default 1: one after the other, the local ones alternately through
//! `run_until_finished` and `run_worker`; more: batches run by one `run_worker`, or driven
//! together in self-hosted mode; the schedule then depends on how the batch's requests
//! interleave; `DURABLE_FAULTS_SELFHOSTED_CONCURRENCY` for self-hosted mode alone; a hang
//! is then no progress for the timeout). `scripts/fault-run` runs the long version.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable::lambda::aws_config::{self, BehaviorVersion, retry::RetryConfig};
use durable::lambda::aws_sdk_sqs;
use durable::model::{OperationStatus, OperationType};
use durable::prelude::*;
use durable::store::Store;
use durable::store::dynamodb::{DynamoOptions, DynamoStore};
use durable_tests::faults::workflow::{self, BodyRun, CALLBACK, CALLBACK_RESULT, FUNCTION, Reference, Verdict};
use durable_tests::faults::{FaultConfig, FaultMode, FaultProxy, FaultRates, FaultRecord, FaultStats, http};
use serde_json::{Value, json};

/// The variable `name`, which the stand-in scripts export. Built (feature
/// `durable-tests/standins`), this suite runs against the stand-ins or fails: it never skips.
fn standin(name: &str, test: &str, how: &str) -> String {
    std::env::var(name).unwrap_or_else(|e| {
        panic!("{test}: {name} is not set ({e}): this suite runs against the stand-ins; run it with {how}")
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
        Err(_) => default,
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------
// Settings and figures

/// One phase: a number of executions under one set of rates.
#[derive(Debug, Clone)]
struct Phase {
    name: String,
    rates: FaultRates,
}

#[derive(Debug, Clone)]
struct Settings {
    executions: usize,
    phases: Vec<Phase>,
    seed: u64,
    delay_ms: u64,
    sdk_attempts: u32,
    timeout: Duration,
    /// Executions run at once (1: one after the other, and the local ones alternately
    /// through `run_until_finished` and `run_worker`).
    concurrency: usize,
}

/// The mixed rates of the local runner's short run (its runs make about 400 requests, many
/// of them `run_until_finished` polling the record).
const LOCAL_MIXED: &str = "5xx=0.03,throttle=0.03,reset=0.03,drop=0.03,delay=0.005";
/// The mixed rates of self-hosted mode's short run (about 100 requests per execution).
const SELFHOSTED_MIXED: &str = "5xx=0.04,throttle=0.04,reset=0.04,drop=0.04,delay=0.02";

fn settings(default_executions: usize, default_mixed: &str) -> Settings {
    // A single mode's rate: 0.1 (0.02 for delays, which cost 2 s each), or the one given.
    let given: Option<f64> = std::env::var("DURABLE_FAULTS_MODE_RATE").ok().map(|r| r.parse().expect("a rate"));
    let only = |m: FaultMode| {
        let rate = given.unwrap_or(if m == FaultMode::Delay { 0.02 } else { 0.1 });
        Phase { name: m.label().into(), rates: FaultRates::only(m, rate) }
    };
    let mixed = FaultRates::parse(&env_or("DURABLE_FAULTS_MIXED_RATES", default_mixed.to_owned())).unwrap();
    let phases: String = env_or("DURABLE_FAULTS_PHASES", "mixed".to_owned());
    let mut out = Vec::new();
    for p in phases.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "mixed" => out.push(Phase { name: "mixed".into(), rates: mixed }),
            "none" => out.push(Phase { name: "none".into(), rates: FaultRates::none() }),
            "modes" => out.extend(FaultMode::ALL.map(only)),
            other => {
                let mode =
                    FaultMode::parse(other).unwrap_or_else(|| panic!("DURABLE_FAULTS_PHASES: unknown {other:?}"));
                out.push(only(mode));
            }
        }
    }
    Settings {
        executions: env_or("DURABLE_FAULTS_EXECUTIONS", default_executions),
        phases: out,
        seed: env_or("DURABLE_FAULTS_SEED", 1),
        delay_ms: env_or("DURABLE_FAULTS_DELAY_MS", 2000),
        sdk_attempts: env_or("DURABLE_FAULTS_SDK_ATTEMPTS", 2),
        timeout: Duration::from_secs(env_or("DURABLE_FAULTS_TIMEOUT_SECONDS", 60)),
        concurrency: env_or("DURABLE_FAULTS_CONCURRENCY", 1usize).max(1),
    }
}

impl Settings {
    /// Self-hosted mode's batches: `DURABLE_FAULTS_SELFHOSTED_CONCURRENCY`, else the same
    /// (at most as many as watch runs functions at once, `scripts/standins/faults.sh`).
    fn for_selfhosted(mut self) -> Settings {
        self.concurrency = env_or("DURABLE_FAULTS_SELFHOSTED_CONCURRENCY", self.concurrency).max(1);
        self
    }
}

fn targets_include(target: &str) -> bool {
    env_or("DURABLE_FAULTS_TARGETS", "local,selfhosted".to_owned()).split(',').any(|t| t.trim() == target)
}

/// How one execution ended.
#[derive(Debug)]
struct Ended {
    label: String,
    arn: Option<String>,
    /// Why it did not finish in time (a hang), if it did not.
    hang: Option<String>,
    verdict: Verdict,
    elapsed: Duration,
    stats: FaultStats,
}

/// The figures of one phase.
#[derive(Debug, Default)]
struct Figures {
    executions: usize,
    hangs: usize,
    anomalous: usize,
    kinds: BTreeMap<&'static str, usize>,
    at_least_once_reruns: usize,
    at_most_once_new_attempts: usize,
    stats: FaultStats,
    wall: Duration,
    slowest: Duration,
}

impl Figures {
    fn add(&mut self, e: &Ended) {
        self.executions += 1;
        self.hangs += usize::from(e.hang.is_some());
        self.anomalous += usize::from(!e.verdict.ok());
        for k in &e.verdict.kinds {
            *self.kinds.entry(k).or_default() += 1;
        }
        self.at_least_once_reruns += e.verdict.at_least_once_reruns;
        self.at_most_once_new_attempts += e.verdict.at_most_once_new_attempts;
        self.slowest = self.slowest.max(e.elapsed);
    }

    fn print(&self, target: &str, phase: &Phase, settings: &Settings) {
        let kind = |k: &str| self.kinds.get(k).copied().unwrap_or(0);
        let per = if self.executions == 0 { 0.0 } else { self.stats.requests as f64 / self.executions as f64 };
        eprintln!(
            "FAULTS {target} phase={} rates={} seed={} sdk_attempts={} at_once={}: executions {}, hangs {}, anomalous {} \
             (not succeeded {}, wrong result {}, history mismatch {}, at-most-once re-runs {}); {}; requests per \
             execution {per:.0}; wall {:.1} s (slowest execution {:.1} s); at-least-once body re-runs {}, \
             at-most-once steps needing another attempt {}",
            phase.name,
            phase.rates,
            settings.seed,
            settings.sdk_attempts,
            settings.concurrency,
            self.executions,
            self.hangs,
            self.anomalous,
            kind("status"),
            kind("result"),
            kind("history"),
            kind("at-most-once"),
            self.stats.summary(),
            self.wall.as_secs_f64(),
            self.slowest.as_secs_f64(),
            self.at_least_once_reruns,
            self.at_most_once_new_attempts,
        );
    }
}

/// Reports a failed execution with the faults its requests met.
fn describe(e: &Ended, faults: &[FaultRecord]) -> String {
    let mut out = format!("{} {}", e.label, e.arn.as_deref().unwrap_or("(no arn)"));
    if let Some(h) = &e.hang {
        let _ = write!(out, "\n    HANG: {h}");
    }
    for a in &e.verdict.anomalies {
        let _ = write!(out, "\n    {a}");
    }
    for n in &e.verdict.notes {
        let _ = write!(out, "\n    note: {n}");
    }
    // The writes' faults one by one (the schedule's request numbers), the reads' counted.
    let mut reads: BTreeMap<(&str, FaultMode), usize> = BTreeMap::new();
    let _ = write!(out, "\n    {} faults on its requests; on its writes:", faults.len());
    for f in faults {
        if ["TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"].contains(&f.target.as_str())
        {
            let _ = write!(out, "\n      #{} {} {}", f.seq, f.target, f.detail);
        } else {
            *reads.entry((&f.target, f.mode)).or_default() += 1;
        }
    }
    let reads: Vec<String> = reads.iter().map(|((t, m), n)| format!("{t} {m} x{n}")).collect();
    let _ = write!(out, "\n    on its reads: {}", reads.join(", "));
    out
}

fn never_started() -> Verdict {
    Verdict { anomalies: vec!["never started".into()], kinds: vec!["status"], ..Verdict::default() }
}

/// Prints how an execution ended (`stats` are those of its batch), counts it, and notes
/// it as a failure if it hung or ended otherwise than a fault-free one.
fn conclude(ended: &Ended, faults: &[FaultRecord], figures: &mut Figures, failures: &mut Vec<String>) {
    eprintln!("FAULTS execution {}: {:.1} s, {}", ended.label, ended.elapsed.as_secs_f64(), ended.stats.summary());
    figures.add(ended);
    if ended.hang.is_some() || !ended.verdict.ok() {
        let text = describe(ended, faults);
        eprintln!("FAULTS FAILURE {text}");
        failures.push(text);
    }
}

// ---------------------------------------------------------------------------------------
// Reading an execution directly from moto (no faults)

async fn direct_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The callback's id and status, once it exists.
async fn callback_op(store: &DynamoStore, arn: &str) -> Option<(String, OperationStatus)> {
    let ops = store.read_operations(arn, None, 1000).await.ok()?;
    ops.iter().find_map(|o| {
        let op = &o.operation;
        (op.op_type == OperationType::Callback && op.name.as_deref() == Some(CALLBACK))
            .then(|| op.callback_details.as_ref().and_then(|d| d.callback_id.clone()).map(|id| (id, op.status)))
            .flatten()
    })
}

async fn events_json(store: &DynamoStore, arn: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_events(arn, after, 500, false).await.expect("read the history from moto");
        let Some(last) = page.last() else { break };
        after = last.event_id;
        out.extend(page.iter().map(|e| serde_json::to_value(e).unwrap()));
        if page.len() < 500 {
            break;
        }
    }
    out
}

/// The execution's status, result and history, read from moto directly.
async fn outcome(store: &DynamoStore, arn: &str) -> (String, Option<Value>, Vec<Value>) {
    let record = store.get_execution(arn).await.expect("read the record from moto");
    let Some(record) = record else { return ("MISSING".into(), None, Vec::new()) };
    let result = record.result.as_deref().and_then(|r| serde_json::from_str(r).ok());
    (record.status.as_str().to_owned(), result, events_json(store, arn).await)
}

/// What a hung execution's record says.
async fn hang_state(store: &DynamoStore, arn: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ago = |t: Option<durable::model::Timestamp>| {
        t.map_or_else(|| "none".to_owned(), |t| format!("{:+.1} s from now", (t.as_millis() - now) as f64 / 1000.0))
    };
    let events = events_json(store, arn).await;
    let last: Vec<String> = events[events.len().saturating_sub(4)..]
        .iter()
        .map(|e| format!("{} {}", e["EventType"].as_str().unwrap_or("?"), e["Name"].as_str().unwrap_or("-")))
        .collect();
    match store.get_execution(arn).await {
        Ok(Some(r)) => format!(
            "status {}, invocation {} {}, wake_at {}, version {}, callback {:?}, last events [{}]",
            r.status.as_str(),
            r.invocation,
            r.invocation_started.map_or_else(|| "not running".to_owned(), |t| format!("began {}", ago(Some(t)))),
            ago(r.wake_at),
            r.version,
            callback_op(store, arn).await.map(|(_, s)| s),
            last.join(" | ")
        ),
        other => format!("record: {other:?}"),
    }
}

async fn check_against(reference: &Reference, store: &DynamoStore, arn: &str, runs: &[BodyRun]) -> Verdict {
    let (status, result, history) = outcome(store, arn).await;
    workflow::check(reference, &status, result.as_ref(), &history, runs)
}

// ---------------------------------------------------------------------------------------
// The local runner on DynamoDB

#[derive(Debug, Clone, Copy)]
enum Driver {
    /// `LocalRunner::run_until_finished`.
    UntilFinished,
    /// `LocalRunner::run_worker`, stopped by the test once the execution finished.
    Worker,
}

fn local_runner(store: Arc<dyn Store>) -> LocalRunner {
    // A failed checkpoint's invocation is retried after 200 ms (default 1 s) to keep the runs short.
    LocalRunner::builder()
        .store(store)
        .retry_delay(Duration::from_millis(200))
        .register(FUNCTION, handler(workflow::fault_workflow))
        .build()
}

/// Starts (again, after a failure: the start is idempotent by name).
async fn start_local(runner: &LocalRunner, name: &str, deadline: Instant) -> Result<String, String> {
    loop {
        match runner.start(FUNCTION, &workflow::input(), Some(name)).await {
            Ok(arn) => return Ok(arn),
            Err(e) if Instant::now() < deadline => {
                tracing::info!("starting {name} failed, again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("the start never succeeded: {e}")),
        }
    }
}

/// Completes the callback through the runner's service (through the faults), as a client
/// would: again after a failure, until the store shows it completed.
async fn complete_callback_local(runner: &LocalRunner, direct: &DynamoStore, arn: &str) {
    while !try_complete_callback_local(runner, direct, arn).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One look at the execution (read from moto directly): completes its callback if it waits
/// for it; true once the callback is completed (or the execution ended).
async fn try_complete_callback_local(runner: &LocalRunner, direct: &DynamoStore, arn: &str) -> bool {
    match direct.get_execution(arn).await {
        Ok(Some(r)) if r.status.is_terminal() => return true,
        // Only a suspended execution can wait for its callback (this spares moto a query).
        Ok(Some(r)) if r.invocation_started.is_none() => {}
        _ => return false,
    }
    match callback_op(direct, arn).await {
        Some((_, status)) if status != OperationStatus::Started => true,
        Some((id, _)) => match runner.service().callback_success(&id, Some(CALLBACK_RESULT.to_owned())).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!("completing the callback of {arn} failed: {e}");
                false
            }
        },
        None => false,
    }
}

async fn drive_local(runner: &LocalRunner, direct: &DynamoStore, arn: &str, driver: Driver) -> Result<(), String> {
    match driver {
        Driver::UntilFinished => runner.run_until_finished(arn).await.map(|_| ()).map_err(|e| e.to_string()),
        Driver::Worker => {
            let done = Cell::new(false);
            let watch = async {
                loop {
                    if let Ok(Some(r)) = direct.get_execution(arn).await
                        && r.status.is_terminal()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                done.set(true);
                runner.wake();
            };
            let (worked, ()) = tokio::join!(runner.run_worker(|| done.get()), watch);
            worked.map_err(|e| e.to_string())
        }
    }
}

/// One execution on `runner`, to its end or the timeout.
async fn local_execution(
    runner: &LocalRunner,
    direct: &DynamoStore,
    name: &str,
    driver: Driver,
    timeout: Duration,
) -> (Option<String>, Option<String>) {
    let started = Instant::now();
    let arn = match start_local(runner, name, started + timeout).await {
        Ok(arn) => arn,
        Err(e) => return (None, Some(e)),
    };
    let run = async {
        let (driven, ()) =
            tokio::join!(drive_local(runner, direct, &arn, driver), complete_callback_local(runner, direct, &arn));
        driven
    };
    let left = timeout.saturating_sub(started.elapsed());
    let hang = match tokio::time::timeout(left, run).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            Some(format!("the runner ({driver:?}) returned an error: {e}; {}", hang_state(direct, &arn).await))
        }
        Err(_) => Some(format!(
            "not finished after {:.0} s ({driver:?}): {}",
            timeout.as_secs_f64(),
            hang_state(direct, &arn).await
        )),
    };
    (Some(arn), hang)
}

/// Executions started together and run by one `run_worker`, stopped by the test once
/// each finished or hangs: per execution its ARN and, if it did not finish, why. Each has
/// `k` times `timeout` (the batch's size), but hangs once its record has not changed for
/// `timeout`.
async fn local_batch(
    runner: &LocalRunner,
    direct: &DynamoStore,
    names: &[String],
    timeout: Duration,
) -> Vec<(Option<String>, Option<String>)> {
    let started = Instant::now();
    let budget = timeout * u32::try_from(names.len()).unwrap_or(1);
    let stall = timeout;
    let mut out = Vec::new();
    for name in names {
        out.push(match start_local(runner, name, started + budget).await {
            Ok(arn) => (Some(arn), None),
            Err(e) => (None, Some(e)),
        });
    }
    let arns: Vec<String> = out.iter().filter_map(|(arn, _)| arn.clone()).collect();
    let done = Cell::new(false);
    let hangs: std::cell::RefCell<BTreeMap<String, String>> = std::cell::RefCell::default();
    let watch = async {
        // (version, last change, finished, callback completed) per execution, looked at
        // four times a second (ten executions' looks are a fair share of moto's one thread).
        let mut seen: BTreeMap<&str, (u64, Instant, bool, bool)> =
            arns.iter().map(|a| (a.as_str(), (0, Instant::now(), false, false))).collect();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            for (arn, (version, changed, finished, completed)) in &mut seen {
                if *finished {
                    continue;
                }
                if let Ok(Some(r)) = direct.get_execution(arn).await {
                    *finished = r.status.is_terminal();
                    if r.version != *version {
                        (*version, *changed) = (r.version, Instant::now());
                    }
                }
                if !*completed && !*finished {
                    *completed = try_complete_callback_local(runner, direct, arn).await;
                }
                let why = if *finished {
                    continue;
                } else if changed.elapsed() > stall {
                    format!("no progress for {:.0} s", stall.as_secs_f64())
                } else if started.elapsed() > budget {
                    format!("not finished after {:.0} s", budget.as_secs_f64())
                } else {
                    continue;
                };
                *finished = true;
                let state = hang_state(direct, arn).await;
                hangs
                    .borrow_mut()
                    .insert((*arn).to_owned(), format!("{why} (run_worker, {} at once): {state}", arns.len()));
            }
            if seen.values().all(|(_, _, f, _)| *f) {
                break;
            }
        }
        done.set(true);
        runner.wake();
    };
    let (worked, ()) = tokio::join!(runner.run_worker(|| done.get()), watch);
    let hangs = hangs.into_inner();
    for (arn, hang) in &mut out {
        let Some(arn) = arn.as_deref() else { continue };
        if let Some(h) = hangs.get(arn) {
            *hang = Some(h.clone());
        } else if let Err(e) = &worked {
            *hang = Some(format!("the worker returned an error: {e}"));
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn local_runner_on_dynamodb_under_faults() {
    let how = "scripts/standins/dynamodb.sh cargo test -p durable-tests --features faults --test faults";
    let moto = standin("AWS_ENDPOINT_URL_DYNAMODB", "local_runner_on_dynamodb_under_faults", how);
    if !targets_include("local") {
        return;
    }
    init_logs();
    let settings = settings(4, LOCAL_MIXED);
    let direct_sdk = direct_config().await;

    // The proxy, and a store whose SDK client tries each request twice.
    let proxy = FaultProxy::start(&moto, FaultConfig::default()).expect("start the proxy");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.sdk_attempts)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(200)),
        )
        .load()
        .await;
    // Each batch of executions gets a table of its own, created directly (moto answers an
    // index query by scanning the whole table: a table that grows slows every worker down),
    // and a runner over it through the proxy.
    let fresh = async |batch: &str| {
        let table = format!("durable-faults-{}-{batch}", std::process::id());
        let direct = DynamoStore::new(&direct_sdk, DynamoOptions::new(&table));
        direct.create_table().await.expect("create a table");
        (direct, local_runner(Arc::new(DynamoStore::new(&sdk, DynamoOptions::new(&table)))))
    };

    // The fault-free reference: through the proxy, without faults.
    let (direct, runner) = fresh("reference").await;
    let started = Instant::now();
    let (arn, hang) = local_execution(&runner, &direct, "reference", Driver::UntilFinished, settings.timeout).await;
    assert_eq!(hang, None, "the fault-free run");
    let arn = arn.unwrap();
    let (status, result, history) = outcome(&direct, &arn).await;
    assert_eq!(status, "SUCCEEDED", "the fault-free run: {history:#?}");
    let reference = Reference { result: result.unwrap(), history: workflow::history_shape(&history) };
    let runs: Vec<BodyRun> = workflow::body_runs().into_iter().filter(|r| r.arn == arn).collect();
    let clean = workflow::check(&reference, &status, Some(&reference.result), &history, &runs);
    assert!(clean.ok() && clean.at_least_once_reruns == 0, "the fault-free run: {clean:?}");
    assert_eq!(runs.len(), workflow::STEPS, "each step body ran once: {runs:#?}");
    eprintln!(
        "FAULTS local-runner/dynamodb fault-free reference: {:.1} s, {} requests, {} events",
        started.elapsed().as_secs_f64(),
        proxy.stats().requests,
        history.len()
    );

    let mut failures = Vec::new();
    for phase in &settings.phases {
        proxy.set_config(FaultConfig { seed: settings.seed, rates: phase.rates, delay_ms: settings.delay_ms });
        let mut figures = Figures::default();
        let phase_start = Instant::now();
        let phase_before = proxy.stats();
        let mut i = 0;
        while i < settings.executions {
            let k = settings.concurrency.min(settings.executions - i);
            let names: Vec<String> = (i..i + k).map(|j| format!("{}-{j}", phase.name)).collect();
            i += k;
            let (direct, runner) = fresh(&names[0]).await;
            let before = proxy.stats();
            let started = Instant::now();
            let ran: Vec<(Option<String>, Option<String>, String)> = if settings.concurrency == 1 {
                let driver = if i % 2 == 1 { Driver::UntilFinished } else { Driver::Worker };
                let (arn, hang) = local_execution(&runner, &direct, &names[0], driver, settings.timeout).await;
                vec![(arn, hang, format!("local/{}/{} ({driver:?})", phase.name, names[0]))]
            } else {
                let batch = local_batch(&runner, &direct, &names, settings.timeout).await;
                let label = |n: &str| format!("local/{}/{n} (run_worker, {k} at once)", phase.name);
                batch.into_iter().zip(&names).map(|((arn, hang), n)| (arn, hang, label(n))).collect()
            };
            let elapsed = started.elapsed();
            let stats = proxy.stats().since(&before);
            for (arn, hang, label) in ran {
                let verdict = match &arn {
                    Some(arn) => {
                        let runs: Vec<BodyRun> = workflow::body_runs().into_iter().filter(|r| r.arn == *arn).collect();
                        check_against(&reference, &direct, arn, &runs).await
                    }
                    None => never_started(),
                };
                let faults = arn.as_deref().map(|a| proxy.faults_of(a)).unwrap_or_default();
                let ended = Ended { label, arn, hang, verdict, elapsed, stats: stats.clone() };
                conclude(&ended, &faults, &mut figures, &mut failures);
            }
        }
        figures.stats = proxy.stats().since(&phase_before);
        figures.wall = phase_start.elapsed();
        figures.print("local-runner/dynamodb", phase, &settings);
        for mode in FaultMode::ALL {
            if phase.rates.get(mode) > 0.0 && figures.stats.faults_of(mode) == 0 && settings.executions >= 2 {
                failures.push(format!("phase {}: no {mode} fault fired (rates too low?)", phase.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures under faults (seed {}):\n{}",
        failures.len(),
        settings.seed,
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Self-hosted Lambda mode

/// The self-hosted stand-ins of `scripts/standins/faults.sh`.
struct SelfHostedFaults {
    watch: String,
    proxy: String,
    direct: DynamoStore,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    body_log: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("scripts/standins/faults.sh exports {name}"))
}

impl SelfHostedFaults {
    async fn admin(&self, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let (status, body) = http::request(&self.proxy, method, path, body, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("the fault proxy's {path}: {e}"));
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    }

    async fn stats(&self) -> FaultStats {
        serde_json::from_slice(&self.admin("GET", "/__faults/stats", b"").await).unwrap()
    }

    async fn faults_of(&self, arn: &str) -> Vec<FaultRecord> {
        let log: Vec<FaultRecord> = serde_json::from_slice(&self.admin("GET", "/__faults/log", b"").await).unwrap();
        log.into_iter().filter(|r| r.arn.as_deref() == Some(arn)).collect()
    }

    async fn configure(&self, config: FaultConfig) {
        self.admin("POST", "/__faults/config", serde_json::to_string(&config).unwrap().as_bytes()).await;
    }

    /// Invokes the function with `event` through the Lambda Invoke API of watch: its answer,
    /// or the error (watch answers a function error with HTTP 500).
    async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let path = format!("/2015-03-31/functions/{FUNCTION}/invocations");
        let (status, body) =
            http::request(&self.watch, "POST", &path, event.to_string().as_bytes(), Duration::from_mins(2))
                .await
                .map_err(|e| format!("invoke: {e}"))?;
        if status != 200 {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("invoke: {e}: {}", String::from_utf8_lossy(&body)))
    }

    /// The SQS event source mapping, once: receives up to `batch_size` messages (waiting up
    /// to a second), invokes the function with them, deletes what it handled.
    async fn deliver_queue(&self, batch_size: i32) {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue)
            .max_number_of_messages(batch_size)
            .wait_time_seconds(1)
            .visibility_timeout(2)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => panic!("receive from {}: {e:?}", self.queue),
        };
        if messages.is_empty() {
            return;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:durable-faults",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let failed: Vec<String> = match self.invoke(&json!({ "Records": records })).await {
            Ok(answer) => answer["batchItemFailures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect(),
            Err(e) => {
                // The whole batch comes back after its visibility timeout.
                tracing::info!("an SQS batch failed: {e}");
                return;
            }
        };
        for m in messages.iter().filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id())) {
            self.sqs
                .delete_message()
                .queue_url(&self.queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete a message");
        }
    }

    /// Starts an execution (again after a failure: the start is idempotent by name).
    async fn start(&self, name: &str, deadline: Instant) -> Result<String, String> {
        let start = json!({"durable": "start", "input": workflow::input(), "executionName": name});
        loop {
            match self.invoke(&start).await {
                Ok(out) if out["executionArn"].is_string() => {
                    return Ok(out["executionArn"].as_str().unwrap().to_owned());
                }
                Ok(out) => return Err(format!("the start answered {out}")),
                Err(e) if Instant::now() < deadline => {
                    tracing::info!("starting {name} failed, again: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(format!("the start never succeeded: {e}")),
            }
        }
    }

    /// Executions started together and driven as AWS would drive them, each by its own
    /// driver (which plays the queue's event source mapping for every execution and
    /// completes its execution's callback from outside) and one sweep schedule, each to its end or
    /// until it hangs: per execution its ARN and, if it did not finish, why. One alone has
    /// `timeout`; in a batch of `k` each has `k` times that, but hangs once its record has
    /// not changed for `timeout`.
    async fn batch(&self, names: &[String], timeout: Duration) -> Vec<(Option<String>, Option<String>)> {
        let k = names.len();
        let stall = (k > 1).then_some(timeout);
        let budget = timeout * u32::try_from(k).unwrap_or(1);
        let drivers = futures::future::join_all(names.iter().map(|name| self.drive(name, budget, stall)));
        // The EventBridge schedule of the sweeper, every 3 s here.
        let sweeper = async {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if let Err(e) = self.invoke(&json!({"durable": "sweep"})).await {
                    tracing::info!("a sweep failed: {e}");
                }
            }
        };
        tokio::select! {
            out = drivers => out,
            () = sweeper => unreachable!("the sweeper sweeps until the drivers are done"),
        }
    }

    /// One execution of a batch, to its end, until `budget` has passed, or until its record
    /// has not changed for `stall`.
    async fn drive(&self, name: &str, budget: Duration, stall: Option<Duration>) -> (Option<String>, Option<String>) {
        let started = Instant::now();
        let arn = match self.start(name, started + budget).await {
            Ok(arn) => arn,
            Err(e) => return (None, Some(e)),
        };
        let mut completed = false;
        let (mut version, mut changed) = (0, Instant::now());
        loop {
            let mut suspended = false;
            if let Ok(Some(r)) = self.direct.get_execution(&arn).await {
                if r.status.is_terminal() {
                    return (Some(arn), None);
                }
                if r.version != version {
                    (version, changed) = (r.version, Instant::now());
                }
                // Only a suspended execution can wait for its callback.
                suspended = r.invocation_started.is_none();
            }
            let stalled = stall.filter(|s| changed.elapsed() > *s);
            if started.elapsed() > budget || stalled.is_some() {
                let why = match stalled {
                    Some(s) => format!("no progress for {:.0} s", s.as_secs_f64()),
                    None => format!("not finished after {:.0} s", budget.as_secs_f64()),
                };
                let state = hang_state(&self.direct, &arn).await;
                return (Some(arn), Some(format!("{why} (self-hosted): {state}")));
            }
            if !completed
                && suspended
                && let Some((id, status)) = callback_op(&self.direct, &arn).await
            {
                if status == OperationStatus::Started {
                    let event =
                        json!({"durable": "callback", "action": "succeed", "callbackId": id, "result": "approved"});
                    match self.invoke(&event).await {
                        Ok(_) => completed = true,
                        Err(e) => tracing::info!("completing the callback of {arn} failed: {e}"),
                    }
                } else {
                    completed = true;
                }
            }
            // In a batch, one message per invoke: ten resumes in one invoke would hold the
            // other drivers' executions back.
            self.deliver_queue(if stall.is_some() { 1 } else { 10 }).await;
        }
    }

    /// One execution.
    async fn execution(&self, name: &str, timeout: Duration) -> (Option<String>, Option<String>) {
        self.batch(&[name.to_owned()], timeout).await.remove(0)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn selfhosted_lambda_under_faults() {
    let how = "scripts/standins/faults.sh cargo test -p durable-tests --features faults --test faults";
    let watch = standin("DURABLE_FAULTS_WATCH_ENDPOINT", "selfhosted_lambda_under_faults", how);
    if !targets_include("selfhosted") {
        return;
    }
    init_logs();
    let settings = settings(2, SELFHOSTED_MIXED).for_selfhosted();
    let sdk = direct_config().await;
    let table = var("DURABLE_FAULTS_TABLE");
    let direct = DynamoStore::new(&sdk, DynamoOptions::new(&table));
    direct.create_table().await.expect("create the table");
    let env = SelfHostedFaults {
        watch,
        proxy: var("DURABLE_FAULTS_PROXY"),
        direct,
        sqs: aws_sdk_sqs::Client::new(&sdk),
        queue: var("DURABLE_FAULTS_QUEUE_URL"),
        body_log: var("DURABLE_FAULTS_BODY_LOG"),
    };
    let runs_of = |arn: &str| -> Vec<BodyRun> {
        workflow::read_body_log(&env.body_log).into_iter().filter(|r| r.arn == arn).collect()
    };

    // The fault-free reference, through the same function and proxy with no faults.
    env.configure(FaultConfig::default()).await;
    let started = Instant::now();
    let (arn, hang) = env.execution(&format!("reference-{}", std::process::id()), settings.timeout).await;
    assert_eq!(hang, None, "the fault-free run");
    let arn = arn.unwrap();
    let (status, result, history) = outcome(&env.direct, &arn).await;
    assert_eq!(status, "SUCCEEDED", "the fault-free run: {history:#?}");
    let reference = Reference { result: result.unwrap(), history: workflow::history_shape(&history) };
    let clean = workflow::check(&reference, &status, Some(&reference.result), &history, &runs_of(&arn));
    assert!(clean.ok() && clean.at_least_once_reruns == 0, "the fault-free run: {clean:?}");
    assert_eq!(runs_of(&arn).len(), workflow::STEPS, "each step body ran once");
    eprintln!(
        "FAULTS selfhosted-lambda fault-free reference: {:.1} s, {} requests, {} events",
        started.elapsed().as_secs_f64(),
        env.stats().await.requests,
        history.len()
    );

    let mut failures = Vec::new();
    for phase in &settings.phases {
        env.configure(FaultConfig { seed: settings.seed, rates: phase.rates, delay_ms: settings.delay_ms }).await;
        let mut figures = Figures::default();
        let phase_start = Instant::now();
        let phase_before = env.stats().await;
        let mut i = 0;
        while i < settings.executions {
            let k = settings.concurrency.min(settings.executions - i);
            let names: Vec<String> = (i..i + k).map(|j| format!("{}-{j}-{}", phase.name, std::process::id())).collect();
            i += k;
            let before = env.stats().await;
            let started = Instant::now();
            let ran = env.batch(&names, settings.timeout).await;
            let elapsed = started.elapsed();
            let stats = env.stats().await.since(&before);
            for ((arn, hang), name) in ran.into_iter().zip(&names) {
                let verdict = match &arn {
                    Some(arn) => check_against(&reference, &env.direct, arn, &runs_of(arn)).await,
                    None => never_started(),
                };
                let faults = match arn.as_deref() {
                    Some(a) if hang.is_some() || !verdict.ok() => env.faults_of(a).await,
                    _ => Vec::new(),
                };
                let label = format!("selfhosted/{}/{name} ({k} at once)", phase.name);
                let ended = Ended { label, arn, hang, verdict, elapsed, stats: stats.clone() };
                conclude(&ended, &faults, &mut figures, &mut failures);
            }
        }
        figures.stats = env.stats().await.since(&phase_before);
        figures.wall = phase_start.elapsed();
        figures.print("selfhosted-lambda", phase, &settings);
        for mode in FaultMode::ALL {
            if phase.rates.get(mode) > 0.0 && figures.stats.faults_of(mode) == 0 && settings.executions >= 2 {
                failures.push(format!("phase {}: no {mode} fault fired (rates too low?)", phase.name));
            }
        }
    }
    env.configure(FaultConfig::default()).await;
    assert!(
        failures.is_empty(),
        "{} failures under faults (seed {}):\n{}",
        failures.len(),
        settings.seed,
        failures.join("\n")
    );
}
