//! A small client for the control plane's routes (see [`crate::control_plane`]): what the
//! `durable` CLI uses, and what a program uses to complete a callback or start an
//! execution on a worker in another process without the AWS SDK.
//!
//! It speaks HTTP/1.1 over plain TCP (one connection per call): the control plane serves
//! loopback, so there is no TLS and no signing. Against AWS itself, use aws-sdk-lambda.
//!
//! ```no_run
//! # async fn demo() -> Result<(), durable_runtime::client::ClientError> {
//! use durable_runtime::client::Client;
//!
//! let client = Client::new("http://127.0.0.1:9323")?;
//! client.callback_success("eyJhIjoi...", Some(r#""approved""#)).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;

use bytes::Bytes;
use durable_core::model::{
    DurableExecutionSummary, ErrorObject, Event, ExecutionStatus, GetDurableExecutionHistoryResponse,
    GetDurableExecutionResponse, ListDurableExecutionsResponse, Timestamp,
};
use durable_core::service::HistoryQuery;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::control_plane::API_VERSION_PREFIX;

/// Everything but RFC 3986's unreserved characters is encoded, as the AWS SDKs encode
/// path labels: an ARN's `:`, `/` and `$` become `%3A`, `%2F` and `%24`.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What a call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint is not an `http://host:port` URL.
    InvalidEndpoint(String),
    /// Nothing answered at the endpoint (connection refused, unknown host, ...).
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// Why the connection failed.
        source: io::Error,
    },
    /// The control plane refused the request (an AWS error such as
    /// `ResourceNotFoundException`).
    Api {
        /// The HTTP status.
        status: u16,
        /// The AWS error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The answer was not what the protocol says (not JSON, cut short, ...).
    Protocol(String),
}

impl ClientError {
    /// The AWS error code of an [`Api`](ClientError::Api) error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidEndpoint(m) => write!(f, "invalid endpoint: {m}"),
            ClientError::Unreachable { endpoint, source } if source.kind() == io::ErrorKind::ConnectionRefused => {
                write!(f, "no durable worker is running at {endpoint} (connection refused)")
            }
            ClientError::Unreachable { endpoint, source } => write!(f, "cannot reach {endpoint}: {source}"),
            ClientError::Api { status, code, message } => write!(f, "{code} (HTTP {status}): {message}"),
            ClientError::Protocol(m) => write!(f, "unexpected answer from the control plane: {m}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this function's executions (`ListDurableExecutionsByFunction`); `None` lists
    /// every function's.
    pub function: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<ExecutionStatus>,
    /// Only executions with this name.
    pub name: Option<String>,
    /// Oldest first (AWS's `ReverseOrder=true`); newest first by default.
    pub oldest_first: bool,
    /// Page size (1 to 1000; the server's default is 100).
    pub max_items: Option<usize>,
    /// Where the page starts (the previous page's `NextMarker`).
    pub marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Started {
    execution_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stopped {
    stop_timestamp: Timestamp,
}

/// A control-plane client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: String,
    host: String,
    port: u16,
    authority: String,
}

impl Client {
    /// A client for `endpoint`: `http://host:port` (a bare `host:port` works too).
    pub fn new(endpoint: &str) -> Result<Client, ClientError> {
        let trimmed = endpoint.trim().trim_end_matches('/');
        let authority = if let Some(rest) = trimmed.strip_prefix("http://") {
            rest
        } else if trimmed.starts_with("https://") {
            return Err(ClientError::InvalidEndpoint(format!(
                "{endpoint}: the local control plane serves plain http:// on loopback, not https"
            )));
        } else if trimmed.contains("://") {
            return Err(ClientError::InvalidEndpoint(format!("{endpoint}: only http:// endpoints are supported")));
        } else {
            trimmed
        };
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(ClientError::InvalidEndpoint(format!("{endpoint}: expected http://host:port")));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, rest) = v6
                .split_once(']')
                .ok_or_else(|| ClientError::InvalidEndpoint(format!("{endpoint}: unclosed [ in the host")))?;
            (host, rest.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse()
                .map_err(|_| ClientError::InvalidEndpoint(format!("{endpoint}: {p:?} is not a port number")))?,
        };
        if host.is_empty() {
            return Err(ClientError::InvalidEndpoint(format!("{endpoint}: no host")));
        }
        Ok(Client {
            endpoint: format!("http://{authority}"),
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
        })
    }

    /// The endpoint, normalised (`http://host:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the control plane answers and its worker's store works (`GET /health`): a
    /// `ServiceUnavailableException` error while the store fails.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.call(Method::GET, "/health".to_owned(), None).await.map(drop)
    }

    /// Starts an execution of `function` (`POST /start-durable-execution`) with `input`
    /// (JSON text) and returns its ARN. With a `name` the start is idempotent.
    pub async fn start(&self, function: &str, name: Option<&str>, input: Option<&str>) -> Result<String, ClientError> {
        let mut body = serde_json::json!({ "FunctionName": function });
        if let Some(name) = name {
            body["ExecutionName"] = name.into();
        }
        if let Some(input) = input {
            body["Input"] = input.into();
        }
        let started: Started = self.call_json(Method::POST, "/start-durable-execution".to_owned(), Some(body)).await?;
        Ok(started.execution_arn)
    }

    /// The execution (`GetDurableExecution`), with its input, result and error.
    pub async fn get(&self, arn: &str) -> Result<GetDurableExecutionResponse, ClientError> {
        self.call_json(Method::GET, format!("{API_VERSION_PREFIX}/durable-executions/{}", label(arn)), None).await
    }

    /// One page of the history (`GetDurableExecutionHistory`).
    pub async fn history_page(
        &self,
        arn: &str,
        query: &HistoryQuery,
    ) -> Result<GetDurableExecutionHistoryResponse, ClientError> {
        let mut params = vec![("IncludeExecutionData", query.include_data.to_string())];
        if let Some(n) = query.max_items {
            params.push(("MaxItems", n.to_string()));
        }
        if let Some(m) = &query.marker {
            params.push(("Marker", m.clone()));
        }
        if query.reverse {
            params.push(("ReverseOrder", "true".to_owned()));
        }
        let path = format!("{API_VERSION_PREFIX}/durable-executions/{}/history{}", label(arn), query_string(&params));
        self.call_json(Method::GET, path, None).await
    }

    /// The whole history, every page, with payloads.
    pub async fn history(&self, arn: &str) -> Result<Vec<Event>, ClientError> {
        let mut query = HistoryQuery { include_data: true, max_items: Some(1000), ..HistoryQuery::default() };
        let mut events = Vec::new();
        loop {
            let page = self.history_page(arn, &query).await?;
            events.extend(page.events);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(m) => query.marker = Some(m),
                None => return Ok(events),
            }
        }
    }

    /// One page of executions (`ListDurableExecutionsByFunction`, or every function's).
    pub async fn list(&self, filter: &ListFilter) -> Result<ListDurableExecutionsResponse, ClientError> {
        let mut params: Vec<(&str, String)> =
            filter.statuses.iter().map(|s| ("Statuses", s.as_str().to_owned())).collect();
        if let Some(name) = &filter.name {
            params.push(("DurableExecutionName", name.clone()));
        }
        if filter.oldest_first {
            params.push(("ReverseOrder", "true".to_owned()));
        }
        if let Some(n) = filter.max_items {
            params.push(("MaxItems", n.to_string()));
        }
        if let Some(m) = &filter.marker {
            params.push(("Marker", m.clone()));
        }
        let base = match &filter.function {
            Some(f) => format!("{API_VERSION_PREFIX}/functions/{}/durable-executions", label(f)),
            None => format!("{API_VERSION_PREFIX}/durable-executions"),
        };
        self.call_json(Method::GET, format!("{base}{}", query_string(&params)), None).await
    }

    /// Every execution matching `filter`, all pages.
    pub async fn list_all(&self, filter: &ListFilter) -> Result<Vec<DurableExecutionSummary>, ClientError> {
        let mut filter = filter.clone();
        filter.max_items = filter.max_items.or(Some(1000));
        let mut all = Vec::new();
        loop {
            let page = self.list(&filter).await?;
            all.extend(page.durable_executions);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(m) => filter.marker = Some(m),
                None => return Ok(all),
            }
        }
    }

    /// Stops a running execution (`StopDurableExecution`); returns when it stopped.
    pub async fn stop(&self, arn: &str, error: Option<&ErrorObject>) -> Result<Timestamp, ClientError> {
        let body = match error {
            Some(e) => serde_json::to_value(e).expect("plain data"),
            None => serde_json::json!({}),
        };
        let path = format!("{API_VERSION_PREFIX}/durable-executions/{}/stop", label(arn));
        let stopped: Stopped = self.call_json(Method::POST, path, Some(body)).await?;
        Ok(stopped.stop_timestamp)
    }

    /// Completes a callback with a result (`SendDurableExecutionCallbackSuccess`): JSON
    /// text for callbacks with the default codec, e.g. `"\"approved\""`.
    pub async fn callback_success(&self, callback_id: &str, result: Option<&str>) -> Result<(), ClientError> {
        let body = result.map(|r| ("application/octet-stream", Bytes::copy_from_slice(r.as_bytes())));
        self.call(Method::POST, callback_path(callback_id, "succeed"), body).await.map(drop)
    }

    /// Fails a callback (`SendDurableExecutionCallbackFailure`).
    pub async fn callback_failure(&self, callback_id: &str, error: &ErrorObject) -> Result<(), ClientError> {
        let body = Bytes::from(serde_json::to_vec(error).expect("plain data"));
        self.call(Method::POST, callback_path(callback_id, "fail"), Some(("application/json", body))).await.map(drop)
    }

    /// Sends a callback heartbeat (`SendDurableExecutionCallbackHeartbeat`).
    pub async fn callback_heartbeat(&self, callback_id: &str) -> Result<(), ClientError> {
        self.call(Method::POST, callback_path(callback_id, "heartbeat"), None).await.map(drop)
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| ("application/json", Bytes::from(b.to_string())));
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("the answer is not the JSON expected: {e}")))
    }

    /// One request on its own connection; an error status becomes [`ClientError::Api`].
    async fn call(
        &self,
        method: Method,
        path: String,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Bytes, ClientError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ClientError::Unreachable { endpoint: self.endpoint.clone(), source })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(CONNECTION, "close")
            .header("accept", "application/json");
        if let Some((content_type, _)) = &body {
            request = request.header(CONTENT_TYPE, *content_type);
        }
        let request = request
            .body(Full::new(body.map(|(_, b)| b).unwrap_or_default()))
            .map_err(|e| ClientError::Protocol(format!("cannot build the request: {e}")))?;
        // The exchange drops the sender when done, which lets the connection finish.
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, bytes))
        };
        let (exchange, _) = tokio::join!(exchange, connection);
        let (parts, bytes) = exchange.map_err(|e| ClientError::Protocol(e.to_string()))?;
        if parts.status.is_success() { Ok(bytes) } else { Err(api_error(parts.status, &parts.headers, &bytes)) }
    }
}

fn label(s: &str) -> String {
    utf8_percent_encode(s, LABEL).to_string()
}

fn callback_path(id: &str, action: &str) -> String {
    format!("{API_VERSION_PREFIX}/durable-execution-callbacks/{}/{action}", label(id))
}

fn query_string(params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", label(v))).collect();
    format!("?{}", pairs.join("&"))
}

/// Reads an AWS REST-JSON error as the generated clients do: the code from the
/// `x-amzn-errortype` header (else the body's `__type` or `code`), cut at `:` and after
/// `#`; the message from `message`, `Message` or `errorMessage`.
fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ClientError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |k: &str| json.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field("code"))
        .or_else(|| field("__type"))
        .map_or_else(
            || format!("Http{}", status.as_u16()),
            |c| {
                let c = c.split(':').next().unwrap_or_default();
                c.rsplit('#').next().unwrap_or_default().to_owned()
            },
        );
    let message = field("message")
        .or_else(|| field("Message"))
        .or_else(|| field("errorMessage"))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    ClientError::Api { status: status.as_u16(), code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let c = Client::new("http://127.0.0.1:9323/").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.endpoint()), ("127.0.0.1", 9323, "http://127.0.0.1:9323"));
        let c = Client::new("localhost:80").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 80));
        let c = Client::new("http://[::1]:7000").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.authority.as_str()), ("::1", 7000, "[::1]:7000"));
        assert_eq!(Client::new("http://example").unwrap().port, 80);
        for bad in ["https://127.0.0.1:1", "ftp://x:1", "http://x:port", "http://x:1/path", "", "http://:1"] {
            assert!(matches!(Client::new(bad), Err(ClientError::InvalidEndpoint(_))), "{bad}");
        }
    }

    #[test]
    fn labels_encode_like_the_aws_sdks() {
        assert_eq!(
            label("arn:aws:lambda:local:0:function:f:$LATEST/durable-execution/n/id"),
            "arn%3Aaws%3Alambda%3Alocal%3A0%3Afunction%3Af%3A%24LATEST%2Fdurable-execution%2Fn%2Fid"
        );
        assert_eq!(label("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(
            query_string(&[("Statuses", "RUNNING".into()), ("Marker", "a b".into())]),
            "?Statuses=RUNNING&Marker=a%20b"
        );
    }

    #[test]
    fn aws_errors_are_read_like_the_sdk_reads_them() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-errortype", "ResourceNotFoundException:http://internal".parse().unwrap());
        let e = api_error(StatusCode::NOT_FOUND, &headers, br#"{"Type":"User","Message":"gone"}"#);
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert_eq!(e.to_string(), "ResourceNotFoundException (HTTP 404): gone");
        let e = api_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), br#"{"__type":"aws#Bad","message":"no"}"#);
        assert_eq!(e.code(), Some("Bad"));
        let e = api_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"upstream down");
        assert_eq!(e.to_string(), "Http502 (HTTP 502): upstream down");
        let refused = ClientError::Unreachable {
            endpoint: "http://127.0.0.1:1".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.to_string(), "no durable worker is running at http://127.0.0.1:1 (connection refused)");
    }
}
