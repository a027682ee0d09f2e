//! The fault-injecting proxy: listens on 127.0.0.1, forwards each HTTP/1.1 request to the
//! upstream on a new connection, and injects what its [`FaultSchedule`] says for the
//! request's sequence number.
//!
//! Admin routes (never faulted, not counted, not numbered):
//!
//! | route | does |
//! |---|---|
//! | `GET /__faults/stats` | [`FaultStats`] and the [`FaultConfig`] as JSON |
//! | `GET /__faults/log` | every [`FaultRecord`] as a JSON array |
//! | `POST /__faults/config` | sets the [`FaultConfig`] (a full JSON object); the schedule starts again at request 0 |
//! | `POST /__faults/reset` | zeroes the counts and the log; the schedule starts again at request 0 |
//!
//! [`FaultSchedule`]: super::FaultSchedule

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::http::{Conn, Message, authority, encode_request, encode_response};
use super::schedule::{FaultConfig, FaultMode, Injection};

/// How long the proxy waits for the upstream's answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_mins(1);
/// At most this many records are kept in the log.
const MAX_LOG: usize = 1_000_000;

/// What the proxy did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultStats {
    /// Requests received (admin routes aside).
    pub requests: u64,
    /// Requests that reached the upstream (forwarded, delayed, or forwarded with the
    /// answer dropped).
    pub forwarded: u64,
    /// Faults injected, by mode (`5xx`, `throttle`, `reset`, `drop`, `delay`).
    pub faults: BTreeMap<String, u64>,
    /// Faults injected, by what exactly (`400 ThrottlingException`, ...).
    pub details: BTreeMap<String, u64>,
    /// Requests by DynamoDB operation (`x-amz-target`: `TransactWriteItems`, ...).
    pub targets: BTreeMap<String, u64>,
    /// Requests the upstream did not answer (answered 502).
    pub upstream_errors: u64,
}

impl FaultStats {
    /// Faults of `mode` injected.
    pub fn faults_of(&self, mode: FaultMode) -> u64 {
        self.faults.get(mode.label()).copied().unwrap_or(0)
    }

    /// Faults of every mode.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// What happened since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &FaultStats) -> FaultStats {
        let minus = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0).min(*v)))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        FaultStats {
            requests: self.requests.saturating_sub(earlier.requests),
            forwarded: self.forwarded.saturating_sub(earlier.forwarded),
            faults: minus(&self.faults, &earlier.faults),
            details: minus(&self.details, &earlier.details),
            targets: minus(&self.targets, &earlier.targets),
            upstream_errors: self.upstream_errors.saturating_sub(earlier.upstream_errors),
        }
    }

    /// One line: `requests 812, forwarded 760; faults: 5xx 12, throttle 9, ...`.
    pub fn summary(&self) -> String {
        let faults: Vec<String> = FaultMode::ALL.iter().map(|m| format!("{m} {}", self.faults_of(*m))).collect();
        format!("requests {}, forwarded {}; faults: {}", self.requests, self.forwarded, faults.join(", "))
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The request's sequence number (what the schedule was asked about).
    pub seq: u64,
    /// The fault's mode.
    pub mode: FaultMode,
    /// What exactly (`400 ThrottlingException`, `forwarded, answer dropped`, ...).
    pub detail: String,
    /// The DynamoDB operation (`TransactWriteItems`, ...).
    pub target: String,
    /// The execution the request was about, when its body names one (`X#<arn>` keys).
    pub arn: Option<String>,
}

/// The proxy's state, shared by its connections.
#[derive(Debug)]
pub struct Shared {
    upstream: String,
    config: Mutex<FaultConfig>,
    next: AtomicU64,
    stats: Mutex<FaultStats>,
    log: Mutex<Vec<FaultRecord>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The state of a proxy in front of `upstream` (`http://host:port`).
    pub fn new(upstream: &str, config: FaultConfig) -> Arc<Shared> {
        Arc::new(Shared {
            upstream: authority(upstream).to_owned(),
            config: Mutex::new(config),
            next: AtomicU64::new(0),
            stats: Mutex::new(FaultStats::default()),
            log: Mutex::new(Vec::new()),
        })
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> FaultStats {
        lock(&self.stats).clone()
    }

    /// The faults injected so far.
    pub fn log(&self) -> Vec<FaultRecord> {
        lock(&self.log).clone()
    }

    /// The configuration.
    pub fn config(&self) -> FaultConfig {
        *lock(&self.config)
    }

    /// Sets the configuration; the schedule starts again at request 0.
    pub fn set_config(&self, config: FaultConfig) {
        *lock(&self.config) = config;
        self.next.store(0, Ordering::SeqCst);
    }

    /// Zeroes the counts and the log; the schedule starts again at request 0.
    pub fn reset(&self) {
        *lock(&self.stats) = FaultStats::default();
        lock(&self.log).clear();
        self.next.store(0, Ordering::SeqCst);
    }

    /// Numbers a request and decides its fault.
    fn decide(&self, request: &Message) -> (u64, Injection, FaultConfig) {
        let config = self.config();
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let injection = config.schedule().injection(seq);
        let target = target_of(request);
        {
            let mut stats = lock(&self.stats);
            stats.requests += 1;
            *stats.targets.entry(target.clone()).or_default() += 1;
            if let Some(mode) = injection.mode() {
                *stats.faults.entry(mode.label().to_owned()).or_default() += 1;
                *stats.details.entry(injection.detail().to_owned()).or_default() += 1;
            }
        }
        if let Some(mode) = injection.mode() {
            let arn = arn_of(&request.body);
            tracing::debug!(seq, %mode, detail = injection.detail(), target, arn, "fault-proxy: injecting");
            let mut log = lock(&self.log);
            if log.len() < MAX_LOG {
                log.push(FaultRecord { seq, mode, detail: injection.detail().to_owned(), target, arn });
            }
        }
        (seq, injection, config)
    }

    /// Sends `request` to the upstream on a new connection; its answer.
    async fn forward(&self, request: &Message) -> io::Result<Message> {
        let (method, _) = request.head.method_and_path();
        let exchange = async {
            let stream = TcpStream::connect(&self.upstream).await?;
            stream.set_nodelay(true)?;
            let mut upstream = Conn::new(stream);
            upstream.stream.write_all(&encode_request(&request.head, &request.body)).await?;
            upstream.read_response(method).await
        };
        let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "the upstream did not answer")));
        match &answer {
            Ok(_) => lock(&self.stats).forwarded += 1,
            Err(e) => {
                tracing::warn!("fault-proxy: the upstream {} failed: {e}", self.upstream);
                lock(&self.stats).upstream_errors += 1;
            }
        }
        answer
    }

    /// An admin route's answer (status, JSON body).
    fn admin(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        match (method, path.split('?').next().unwrap_or_default()) {
            ("GET", "/__faults/stats") => {
                let mut out = serde_json::to_value(self.stats()).unwrap_or_default();
                out["config"] = serde_json::to_value(self.config()).unwrap_or_default();
                (200, out.to_string())
            }
            ("GET", "/__faults/log") => (200, serde_json::to_string(&self.log()).unwrap_or_default()),
            ("GET", "/__faults/config") => (200, serde_json::to_string(&self.config()).unwrap_or_default()),
            ("POST", "/__faults/config") => match serde_json::from_slice::<FaultConfig>(body) {
                Ok(config) if config.rates.total() <= 1.0 + 1e-9 => {
                    self.set_config(config);
                    (200, serde_json::to_string(&config).unwrap_or_default())
                }
                Ok(_) => (400, json!({"error": "the rates add up to more than 1"}).to_string()),
                Err(e) => (400, json!({"error": e.to_string()}).to_string()),
            },
            ("POST", "/__faults/reset") => {
                self.reset();
                (200, "{}".to_owned())
            }
            _ => (404, json!({"error": format!("no admin route {method} {path}")}).to_string()),
        }
    }
}

/// The DynamoDB operation a request calls (`x-amz-target: DynamoDB_20120810.PutItem` gives
/// `PutItem`), else its path.
fn target_of(request: &Message) -> String {
    match request.head.header("x-amz-target") {
        Some(t) => t.rsplit('.').next().unwrap_or(t).to_owned(),
        None => request.head.method_and_path().1.to_owned(),
    }
}

/// The execution a request's body names (the store's partition keys are `X#<arn>`).
fn arn_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"X#")? + 3;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_owned())
}

fn json_headers(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut headers = vec![("content-type".to_owned(), "application/x-amz-json-1.0".to_owned())];
    headers.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
    headers
}

/// The answer DynamoDB gives for an injected error: status, reason, headers, body.
fn error_answer(injection: Injection, seq: u64) -> (u16, &'static str, Vec<(String, String)>, String) {
    let (status, reason, code, namespace, message) = match injection {
        Injection::ServerError(0) => (
            500,
            "Internal Server Error",
            "InternalServerError",
            "com.amazonaws.dynamodb.v20120810",
            "Internal server error",
        ),
        Injection::ServerError(1) => {
            (500, "Internal Server Error", "InternalFailure", "com.amazon.coral.service", "Internal failure")
        }
        Injection::ServerError(_) => (
            503,
            "Service Unavailable",
            "ServiceUnavailable",
            "com.amazonaws.dynamodb.v20120810",
            "The service is currently unavailable or busy",
        ),
        Injection::Throttle(0) => (
            400,
            "Bad Request",
            "ThrottlingException",
            "com.amazon.coral.availability",
            "Rate of requests exceeds the allowed throughput.",
        ),
        _ => (
            400,
            "Bad Request",
            "ProvisionedThroughputExceededException",
            "com.amazonaws.dynamodb.v20120810",
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your \
             provisioning level with the UpdateTable API.",
        ),
    };
    let body = json!({"__type": format!("{namespace}#{code}"), "message": format!("{message} (fault-proxy)")});
    let headers =
        json_headers(&[("x-amzn-errortype", format!("{code}:")), ("x-amzn-requestid", format!("fault-{seq}"))]);
    (status, reason, headers, body.to_string())
}

/// Resets the connection (RST, not FIN): the client sees `connection reset by peer`.
fn reset(conn: Conn<TcpStream>) {
    let _ = conn.stream.set_zero_linger();
    drop(conn);
}

/// Serves one client connection.
async fn connection(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.read_request().await? {
        let close = request.head.wants_close();
        let (method, path) = request.head.method_and_path();
        if path.starts_with("/__faults/") {
            let (status, body) = shared.admin(method, path, &request.body);
            let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
            conn.stream.write_all(&encode_response(status, "", &headers, body.as_bytes(), close)).await?;
        } else {
            let (seq, injection, config) = shared.decide(&request);
            match injection {
                Injection::Forward | Injection::Delay => {
                    if injection == Injection::Delay {
                        tokio::time::sleep(config.delay()).await;
                    }
                    let bytes = match shared.forward(&request).await {
                        Ok(answer) => {
                            let (status, reason) = answer.head.status();
                            encode_response(status, reason, &answer.head.headers, &answer.body, close)
                        }
                        Err(e) => {
                            let body = json!({"error": format!("fault-proxy: the upstream failed: {e}")}).to_string();
                            encode_response(502, "Bad Gateway", &json_headers(&[]), body.as_bytes(), close)
                        }
                    };
                    conn.stream.write_all(&bytes).await?;
                }
                Injection::ServerError(_) | Injection::Throttle(_) => {
                    let (status, reason, headers, body) = error_answer(injection, seq);
                    conn.stream.write_all(&encode_response(status, reason, &headers, body.as_bytes(), close)).await?;
                }
                Injection::Reset => {
                    reset(conn);
                    return Ok(());
                }
                Injection::DropAnswer => {
                    let _ = shared.forward(&request).await;
                    reset(conn);
                    return Ok(());
                }
            }
        }
        if close {
            return Ok(());
        }
    }
    Ok(())
}

/// Accepts connections on `listener` and serves them, forever.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, shared).await {
                tracing::debug!("fault-proxy: a client connection failed: {e}");
            }
        });
    }
}

/// A proxy serving on its own thread (and Tokio runtime), stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`
    /// (`http://host:port`).
    pub fn start(upstream: &str, config: FaultConfig) -> io::Result<FaultProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Shared::new(upstream, config);
        let stop = Arc::new(Notify::new());
        let (state, stopped) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("fault-proxy".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a Tokio listener");
                tokio::select! {
                    r = serve(listener, state) => if let Err(e) = r { tracing::error!("fault-proxy stopped: {e}") },
                    () = stopped.notified() => {}
                }
            });
        })?;
        Ok(FaultProxy { url, shared, stop, thread: Some(thread) })
    }

    /// Where it listens: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it did so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.stats()
    }

    /// The faults injected so far.
    pub fn log(&self) -> Vec<FaultRecord> {
        self.shared.log()
    }

    /// The faults injected into requests about execution `arn`.
    pub fn faults_of(&self, arn: &str) -> Vec<FaultRecord> {
        self.shared.log().into_iter().filter(|r| r.arn.as_deref() == Some(arn)).collect()
    }

    /// The configuration.
    pub fn config(&self) -> FaultConfig {
        self.shared.config()
    }

    /// Sets the configuration; the schedule starts again at request 0.
    pub fn set_config(&self, config: FaultConfig) {
        self.shared.set_config(config);
    }

    /// Zeroes the counts and the log; the schedule starts again at request 0.
    pub fn reset(&self) {
        self.shared.reset();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::http::request;
    use crate::faults::schedule::FaultRates;

    /// An upstream that answers every request with its body, counting requests.
    fn echo_upstream() -> (String, Arc<AtomicU64>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let mut conn = Conn::new(stream);
                    if let Ok(Some(req)) = conn.read_request().await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        // HTTP/1.0, framed by closing the connection, as moto's server does.
                        let mut out = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec();
                        out.extend_from_slice(&req.body);
                        let _ = conn.stream.write_all(&out).await;
                    }
                }
            });
        });
        (url, hits)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_mode_does_what_it_says_and_is_counted() {
        let (upstream, hits) = echo_upstream();
        let proxy = FaultProxy::start(&upstream, FaultConfig::default()).unwrap();
        let t = Duration::from_secs(10);
        let send = async |body: &str| request(proxy.url(), "POST", "/", body.as_bytes(), t).await;

        let (status, body) = send("hello").await.unwrap();
        assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let config = |mode| FaultConfig { seed: 1, rates: FaultRates::only(mode, 1.0), delay_ms: 300 };
        proxy.set_config(config(FaultMode::ServerError));
        let (status, body) = send(r#"{"Key":{"pk":{"S":"X#arn:one"}}}"#).await.unwrap();
        assert!(status >= 500, "{status}");
        assert!(String::from_utf8_lossy(&body).contains("#Internal") || status == 503);
        proxy.set_config(config(FaultMode::Throttle));
        let (status, body) = send("x").await.unwrap();
        assert_eq!(status, 400);
        assert!(
            String::from_utf8_lossy(&body).contains("Throughput")
                || String::from_utf8_lossy(&body).contains("Throttling")
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "errors are answered without forwarding");

        proxy.set_config(config(FaultMode::Reset));
        let err = send("x").await.expect_err("reset");
        assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a reset is not forwarded");

        proxy.set_config(config(FaultMode::DropAnswer));
        send("x").await.expect_err("dropped");
        assert_eq!(hits.load(Ordering::SeqCst), 2, "a dropped answer was forwarded");

        proxy.set_config(config(FaultMode::Delay));
        let started = std::time::Instant::now();
        assert_eq!(send("slow").await.unwrap().0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        let stats = proxy.stats();
        assert_eq!(stats.requests, 6);
        assert_eq!(stats.forwarded, 3);
        for mode in FaultMode::ALL {
            assert_eq!(stats.faults_of(mode), 1, "{mode}: {stats:?}");
        }
        assert_eq!(proxy.faults_of("arn:one").len(), 1);
        let (status, admin) = request(proxy.url(), "GET", "/__faults/stats", b"", t).await.unwrap();
        assert_eq!(status, 200);
        let admin: FaultStats = serde_json::from_slice(&admin).unwrap();
        assert_eq!(admin.requests, 6, "admin routes are not counted");
    }
}
