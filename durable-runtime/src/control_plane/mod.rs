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
//! same shape as the list above) and `GET /health`.
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

use durable_core::service::CheckpointService;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The address the examples serve the control plane on when it is free.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9323";

/// The endpoint the `durable` CLI calls when neither `--endpoint` nor `DURABLE_ENDPOINT`
/// names one: [`DEFAULT_ADDR`] over http.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9323";

/// The API version prefix of every AWS route.
pub const API_VERSION_PREFIX: &str = "/2025-12-01";

/// A control plane, ready to be bound. See the [module documentation](self).
#[must_use = "a control plane does nothing until bound"]
pub struct ControlPlane {
    service: Arc<CheckpointService>,
    functions: Option<Arc<BTreeSet<String>>>,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    allow_remote: bool,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("functions", &self.functions)
            .field("allow_remote", &self.allow_remote)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane over `service`, accepting starts of any function name.
    pub fn new(service: Arc<CheckpointService>) -> Self {
        ControlPlane { service, functions: None, on_change: None, allow_remote: false }
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

    /// Lets [`ControlPlane::bind`] listen on addresses that are not loopback. The control
    /// plane has no authentication: only do this on a network you trust completely.
    pub fn allow_remote(mut self) -> Self {
        self.allow_remote = true;
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
            request_ids: std::sync::atomic::AtomicU64::new(1),
        });
        let task = tokio::spawn(accept_loop(listener, state, stopped));
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

async fn accept_loop(listener: TcpListener, state: Arc<routes::State>, mut stopped: watch::Receiver<bool>) {
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
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.handle(req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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
