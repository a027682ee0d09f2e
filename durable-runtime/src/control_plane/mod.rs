//! The local control plane: AWS Lambda's durable-execution control-plane routes, served over
//! HTTP on loopback for a [`CheckpointService`], so that the `durable` CLI, aws-sdk clients,
//! the AWS CLI or boto3 pointed at it work as they do against Lambda.
//!
//! | route | AWS operation |
//! |---|---|
//! | `GET /2025-12-01/durable-executions/{arn}?IncludeExecutionData` | `GetDurableExecution` |
//! | `GET /2025-12-01/durable-executions/{arn}/history?IncludeExecutionData&MaxItems&Marker&ReverseOrder` | `GetDurableExecutionHistory` |
//! | `POST /2025-12-01/durable-executions/{arn}/stop` (body: an optional `ErrorObject`) | `StopDurableExecution` |
//! | `GET /2025-12-01/functions/{name}/durable-executions?Statuses&DurableExecutionName&StartedAfter&StartedBefore&ReverseOrder&Marker&MaxItems` | `ListDurableExecutionsByFunction` |
//! | `POST /2025-12-01/durable-execution-callbacks/{id}/succeed` (raw body: the result) | `SendDurableExecutionCallbackSuccess` |
//! | `POST /2025-12-01/durable-execution-callbacks/{id}/fail` (body: an `ErrorObject`) | `SendDurableExecutionCallbackFailure` |
//! | `POST /2025-12-01/durable-execution-callbacks/{id}/heartbeat` | `SendDurableExecutionCallbackHeartbeat` |
//!
//! and, as AWS's local emulator does, `POST /start-durable-execution`
//! (`{"FunctionName","ExecutionName","Input","ExecutionTimeoutSeconds"}` → 201
//! `{"ExecutionArn"}`), `GET /2025-12-01/durable-executions` (every function's executions,
//! same shape as the list above) and `GET /health`: 200 `{"Status":"ok"}`, or, while the
//! runner's store fails ([`ControlPlane::health`]), 503 `ServiceUnavailableException` whose
//! body names the last error (`LastError`), since when (`Since`, epoch seconds) and how
//! often (`Errors`), and the current back-off (`Attempt`, `BackoffSeconds`).
//!
//! ARNs travel percent-encoded in one path segment (`%3A`, `%2F`, `%24` for `$LATEST`), as
//! the SDKs send them; an ARN with raw slashes is accepted too. Errors are AWS REST-JSON
//! errors: an HTTP status, an `x-amzn-errortype` header and a `{"Type","message"}` body
//! (404 `ResourceNotFoundException`, 400 `InvalidParameterValueException`, 409
//! `DurableExecutionAlreadyStartedException`, ...).
//!
//! The control plane has no authentication: anyone who can connect can complete callbacks
//! and stop executions. [`ControlPlane::bind`] therefore refuses addresses that are not
//! loopback unless told otherwise.
//!
//! A connection that does not send a complete request head within
//! [`ControlPlane::header_read_timeout`] (5 s) of the server waiting for one (after it was
//! accepted, or after the previous answer on a kept-alive connection) is closed, and so is
//! one whose request body does not arrive within [`ControlPlane::body_read_timeout`]
//! (10 s; answered 408 `RequestTimeoutException` first): idle and half-open connections do
//! not pile up.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use durable_core::{DurableContext, Error, handler};
//! use durable_runtime::LocalRunner;
//!
//! async fn approve(ctx: DurableContext) -> Result<String, Error> {
//!     let cb = ctx.create_callback::<String>("approval").await?;
//!     cb.result().await
//! }
//!
//! let runner = LocalRunner::builder().register("approve", handler(approve)).build();
//! let server = runner.control_plane("127.0.0.1:0").await?;
//! println!("control plane at {}", server.endpoint()); // durable --endpoint <this> list
//! runner.run_worker(|| false).await?;
//! # Ok(()) }
//! ```

mod error;
mod routes;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use durable_core::service::CheckpointService;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::LocalRunner;
use crate::health::Health;

/// The address the examples serve the control plane on when it is free.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9323";

/// The endpoint the `durable` CLI calls when neither `--endpoint` nor `DURABLE_ENDPOINT`
/// names one: [`DEFAULT_ADDR`] over http.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9323";

/// The API version prefix of every AWS route.
pub const API_VERSION_PREFIX: &str = "/2025-12-01";

/// The default of [`ControlPlane::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of [`ControlPlane::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

type HealthSource = Arc<dyn Fn() -> Health + Send + Sync>;

/// A control plane, ready to be bound. See the [module documentation](self).
#[must_use = "a control plane does nothing until bound"]
pub struct ControlPlane {
    service: Arc<CheckpointService>,
    functions: Option<Arc<BTreeSet<String>>>,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    health: Option<HealthSource>,
    allow_remote: bool,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("functions", &self.functions)
            .field("allow_remote", &self.allow_remote)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane over `service`, accepting starts of any function name.
    pub fn new(service: Arc<CheckpointService>) -> Self {
        ControlPlane {
            service,
            functions: None,
            on_change: None,
            health: None,
            allow_remote: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }

    /// A control plane for `runner` (what [`LocalRunner::control_plane`] binds): over its
    /// service, knowing its functions, waking its worker on starts and callbacks, and
    /// answering `GET /health` from [`LocalRunner::health`]. Change what you need, then
    /// [`bind`](Self::bind) it.
    pub fn for_runner(runner: &LocalRunner) -> Self {
        let waker = runner.clone();
        let health = runner.clone();
        ControlPlane::new(runner.service().clone())
            .functions(runner.functions())
            .on_change(move || waker.wake())
            .health(move || health.health())
    }

    /// Only these functions exist: starting or listing another one is a
    /// `ResourceNotFoundException`, as Lambda answers for a function it does not have.
    pub fn functions<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.functions = Some(Arc::new(names.into_iter().map(Into::into).collect()));
        self
    }

    /// Calls `f` after every request that may have made an execution due (a start, a
    /// callback completion, a stop): a worker uses it to look for work at once instead of
    /// at its next timer.
    pub fn on_change(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(f));
        self
    }

    /// Answers `GET /health` from `f`: 200 while it is [`Health::Healthy`], 503
    /// `ServiceUnavailableException` naming the outage otherwise. Without it, `/health` only
    /// says the control plane answers.
    pub fn health(mut self, f: impl Fn() -> Health + Send + Sync + 'static) -> Self {
        self.health = Some(Arc::new(f));
        self
    }

    /// Lets [`ControlPlane::bind`] listen on addresses that are not loopback. The control
    /// plane has no authentication: only do this on a network you trust completely.
    pub fn allow_remote(mut self) -> Self {
        self.allow_remote = true;
        self
    }

    /// How long a client has to send a complete request head, from when the server starts
    /// waiting for one (default [`DEFAULT_HEADER_READ_TIMEOUT`]): after accepting the
    /// connection, and on a kept-alive connection after answering the previous request. A
    /// connection that sends nothing, half a head, or sits idle that long is closed. The
    /// timer is hyper's, which runs whenever the server waits for a head, so it is the idle
    /// timeout of kept-alive connections too.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }

    /// How long a request's body may take to arrive once its head has (default
    /// [`DEFAULT_BODY_READ_TIMEOUT`]). Past it the answer is 408
    /// `RequestTimeoutException` and the connection is closed.
    pub fn body_read_timeout(mut self, d: Duration) -> Self {
        self.body_read_timeout = d;
        self
    }

    /// Binds `addr` (port 0 picks a free port) and serves on the current Tokio runtime
    /// until the returned [`ControlPlaneServer`] is shut down or dropped.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> io::Result<ControlPlaneServer> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"));
        }
        if !self.allow_remote
            && let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to serve the control plane on {remote}: it has no authentication, so it listens on \
                     loopback only (127.0.0.1 or ::1); see ControlPlane::allow_remote"
                ),
            ));
        }
        let listener = TcpListener::bind(&addrs[..]).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(routes::State {
            service: self.service,
            functions: self.functions,
            on_change: self.on_change,
            health: self.health,
            body_read_timeout: self.body_read_timeout,
            request_ids: std::sync::atomic::AtomicU64::new(1),
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.header_read_timeout);
        let task = tokio::spawn(accept_loop(listener, http, state, stopped));
        tracing::debug!(%local_addr, "control plane listening");
        Ok(ControlPlaneServer { local_addr, stop, task: Some(task) })
    }
}

/// A running control plane. It stops when shut down or dropped; requests in flight finish.
#[must_use = "the control plane stops when this handle is dropped"]
pub struct ControlPlaneServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for ControlPlaneServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneServer").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl ControlPlaneServer {
    /// The address it listens on (with the port chosen when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint URL clients use, e.g. `http://127.0.0.1:9323`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the
    /// accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ControlPlaneServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Resolves once the server is told to stop (or its handle is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not `Send`.
    let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
}

async fn accept_loop(
    listener: TcpListener,
    http: http1::Builder,
    state: Arc<routes::State>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop_requested(&mut stopped) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "control plane: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        let mut stopped = stopped.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.handle(req).await) }
            });
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "control plane: connection ended with an error");
                    }
                }
                () = stop_requested(&mut stopped) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
