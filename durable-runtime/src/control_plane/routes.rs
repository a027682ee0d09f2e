//! Routing and the handlers of the control plane's routes.
//!
//! Routing works on the raw (still percent-encoded) path: an ARN arrives as one segment
//! with `%2F` for its slashes, and is decoded only after the route's fixed suffix
//! (`/history`, `/stop`, ...) has been split off, so that an encoded slash never splits it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use durable_core::model::{
    DurableExecutionSummary, ErrorObject, ExecutionStatus, ListDurableExecutionsResponse, Timestamp,
};
use durable_core::service::{CheckpointService, HistoryQuery, StartExecution};
use durable_core::store::ListQuery;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::{
    ApiError, INVALID_PARAMETER, REQUEST_TIMEOUT, TOO_LARGE, UNAVAILABLE, UNKNOWN_OPERATION, status_of,
};
use super::{API_VERSION_PREFIX, HealthSource};
use crate::health::Health;

/// The largest request body accepted: a 6 MiB input or a 1 MiB callback result fits, with
/// room for JSON escaping.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// AWS's default page size for history and list calls.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// What every request handler shares.
pub(crate) struct State {
    pub(crate) service: Arc<CheckpointService>,
    pub(crate) functions: Option<Arc<BTreeSet<String>>>,
    pub(crate) on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    pub(crate) health: Option<HealthSource>,
    pub(crate) body_read_timeout: Duration,
    pub(crate) request_ids: AtomicU64,
}

/// What a callback request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackAction {
    Succeed,
    Fail,
    Heartbeat,
}

/// A matched route; labels are still percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Health,
    Start,
    ListAll,
    ListByFunction(&'a str),
    Get(&'a str),
    History(&'a str),
    Stop(&'a str),
    Callback(&'a str, CallbackAction),
}

impl Route<'_> {
    fn method(&self) -> Method {
        match self {
            Route::Health | Route::ListAll | Route::ListByFunction(_) | Route::Get(_) | Route::History(_) => {
                Method::GET
            }
            Route::Start | Route::Stop(_) | Route::Callback(..) => Method::POST,
        }
    }
}

/// Matches a raw path to a route.
pub(crate) fn route(path: &str) -> Option<Route<'_>> {
    let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
    match path {
        "/health" => return Some(Route::Health),
        "/start-durable-execution" => return Some(Route::Start),
        _ => {}
    }
    let rest = path.strip_prefix(API_VERSION_PREFIX)?;
    if rest == "/durable-executions" {
        return Some(Route::ListAll);
    }
    if let Some(rest) = rest.strip_prefix("/durable-executions/") {
        let label = |suffix: &str| rest.strip_suffix(suffix).filter(|arn| !arn.is_empty());
        if label("/state").is_some() || label("/checkpoint").is_some() {
            // GetDurableExecutionState / CheckpointDurableExecution: functions hosted by the
            // local runner checkpoint in process, not over HTTP.
            return None;
        }
        return Some(if let Some(arn) = label("/history") {
            Route::History(arn)
        } else if let Some(arn) = label("/stop") {
            Route::Stop(arn)
        } else {
            Route::Get(rest)
        });
    }
    if let Some(rest) = rest.strip_prefix("/functions/") {
        return rest.strip_suffix("/durable-executions").filter(|f| !f.is_empty()).map(Route::ListByFunction);
    }
    if let Some(rest) = rest.strip_prefix("/durable-execution-callbacks/") {
        let (id, action) = rest.rsplit_once('/')?;
        let action = match action {
            "succeed" => CallbackAction::Succeed,
            "fail" => CallbackAction::Fail,
            "heartbeat" => CallbackAction::Heartbeat,
            _ => return None,
        };
        return (!id.is_empty()).then_some(Route::Callback(id, action));
    }
    None
}

/// Decodes a percent-encoded path label.
fn decode_label(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ApiError::invalid(format!("the {what} in the path is not UTF-8 once percent-decoded")))
}

/// The function name in a function name, a partial ARN (`name:qualifier`) or a full ARN
/// (`arn:aws:lambda:region:account:function:name[:qualifier]`).
pub(crate) fn function_name_of(s: &str) -> &str {
    let s = match s.find(":function:") {
        Some(i) => &s[i + ":function:".len()..],
        None => s,
    };
    s.split(':').next().unwrap_or(s)
}

/// The query string's parameters, in order, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Query(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::invalid(format!("{key} must be true or false, not {v:?}"))),
        }
    }

    /// A page size: absent or 0 means AWS's default, more than 1000 is refused.
    fn page_size(&self, key: &str) -> Result<usize, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(DEFAULT_PAGE),
            Some(v) => match v.parse::<usize>() {
                Ok(0) => Ok(DEFAULT_PAGE),
                Ok(n) if n <= MAX_PAGE => Ok(n),
                _ => Err(ApiError::invalid(format!("{key} must be an integer from 0 to {MAX_PAGE}, not {v:?}"))),
            },
        }
    }

    fn timestamp(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(v) = self.get(key).filter(|v| !v.is_empty()) else { return Ok(None) };
        if let Some(t) = Timestamp::parse_rfc3339(v) {
            return Ok(Some(t));
        }
        match v.parse::<f64>() {
            Ok(secs) if secs.is_finite() => Ok(Some(Timestamp::from_millis((secs * 1000.0).round() as i64))),
            _ => Err(ApiError::invalid(format!("{key} must be an ISO-8601 timestamp or epoch seconds, not {v:?}"))),
        }
    }
}

/// The body of `POST /start-durable-execution` (the fields of AWS's local emulator; the
/// others it accepts, such as `AccountId`, are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartRequest {
    function_name: String,
    #[serde(default)]
    execution_name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
    #[serde(default)]
    execution_timeout_seconds: Option<u64>,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let text = serde_json::to_vec(body).expect("plain data serialises");
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(e.body())));
    *response.status_mut() = e.status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(code) = HeaderValue::from_str(&e.code) {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response
}

/// Parses a JSON body; an empty body is `None`.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| ApiError::invalid(format!("the {what} is not valid JSON: {e}")))
}

/// An `ErrorObject` body. The SDKs send the object itself (it is the operation's HTTP
/// payload); a body wrapping it as `{"Error": {...}}` is accepted too. `{}` or nothing is
/// `None`.
fn parse_error_body(body: &[u8]) -> Result<Option<ErrorObject>, ApiError> {
    let Some(value) = parse_json::<serde_json::Value>(body, "error body")? else { return Ok(None) };
    let value = match value {
        serde_json::Value::Object(mut map) if map.get("Error").is_some_and(serde_json::Value::is_object) => {
            map.remove("Error").expect("checked")
        }
        serde_json::Value::Object(map) if map.is_empty() => return Ok(None),
        other => other,
    };
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("the body is not an ErrorObject: {e}")))
}

impl State {
    /// Answers one request.
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let request_id = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let mut response = match self.dispatch(req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(%method, path, code = e.code, message = e.message, "control plane: request refused");
                error_response(&e)
            }
        };
        if let Ok(id) = HeaderValue::from_str(&format!("local-{request_id}")) {
            response.headers_mut().insert("x-amzn-requestid", id);
        }
        if response.status() == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come, or never: do not wait to read past it.
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
        let path = req.uri().path().to_owned();
        let query = Query::parse(req.uri().query());
        let Some(route) = route(&path) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                UNKNOWN_OPERATION,
                format!("no operation is served at {} {path}", req.method()),
            ));
        };
        if *req.method() != route.method() {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                UNKNOWN_OPERATION,
                format!("{path} takes {}, not {}", route.method(), req.method()),
            ));
        }
        let body = if route.method() == Method::POST {
            read_body(req.into_body(), self.body_read_timeout).await?
        } else {
            Bytes::new()
        };
        match route {
            Route::Health => self.health(),
            Route::Start => self.start(&body).await,
            Route::ListAll => self.list(None, &query).await,
            Route::ListByFunction(f) => self.list(Some(decode_label(f, "function name")?), &query).await,
            Route::Get(arn) => self.get(&decode_label(arn, "execution ARN")?, &query).await,
            Route::History(arn) => self.history(&decode_label(arn, "execution ARN")?, &query).await,
            Route::Stop(arn) => self.stop(&decode_label(arn, "execution ARN")?, &body).await,
            Route::Callback(id, action) => self.callback(&decode_label(id, "callback id")?, action, &body).await,
        }
    }

    /// `GET /health`: whether the control plane answers and its runner's store works.
    fn health(&self) -> Result<Response<Full<Bytes>>, ApiError> {
        match self.health.as_ref().map_or(Health::Healthy, |f| f()) {
            Health::Healthy => Ok(json_response(StatusCode::OK, &serde_json::json!({ "Status": "ok" }))),
            Health::Unhealthy(outage) => Err(ApiError::new(status_of(UNAVAILABLE), UNAVAILABLE, outage.to_string())
                .with("LastError", outage.last_error.clone())
                .with("Since", serde_json::to_value(outage.since).expect("a timestamp serialises"))
                .with("Errors", outage.errors)
                .with("Attempt", outage.attempt)
                .with("BackoffSeconds", outage.backoff.as_secs_f64())),
        }
    }

    fn changed(&self) {
        if let Some(f) = &self.on_change {
            f();
        }
    }

    fn is_known(&self, function: &str) -> bool {
        self.functions.as_ref().is_none_or(|f| f.contains(function))
    }

    async fn start(&self, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
        let req: StartRequest =
            parse_json(body, "request body")?.ok_or_else(|| ApiError::invalid("the request body is required"))?;
        let function = function_name_of(&req.function_name).to_owned();
        if !self.is_known(&function) {
            return Err(ApiError::not_found(format!(
                "Function not found: {} (this worker hosts {})",
                self.service.function_arn(&function),
                self.functions.as_ref().map(|f| f.iter().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
            )));
        }
        // Like AWS's emulator: `Input` is JSON text, and text that is not JSON is taken as
        // a JSON string. A JSON value given directly is accepted too.
        let input = match req.input {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() {
                    Some(s)
                } else {
                    Some(serde_json::Value::String(s).to_string())
                }
            }
            Some(other) => Some(other.to_string()),
        };
        let started = self
            .service
            .start_execution(StartExecution {
                function_name: function,
                name: req.execution_name.filter(|n| !n.is_empty()),
                input,
                timeout_seconds: req.execution_timeout_seconds.filter(|t| *t > 0),
                ..StartExecution::default()
            })
            .await?;
        self.changed();
        Ok(json_response(StatusCode::CREATED, &serde_json::json!({ "ExecutionArn": started.arn })))
    }

    async fn get(&self, arn: &str, query: &Query) -> Result<Response<Full<Bytes>>, ApiError> {
        let include = query.bool("IncludeExecutionData", true)?;
        let mut execution = self.service.get_execution(arn).await?;
        if !include {
            execution.input_payload = None;
            execution.result = None;
            execution.error = None;
        }
        execution.execution_data_included = Some(include);
        Ok(json_response(StatusCode::OK, &execution))
    }

    async fn history(&self, arn: &str, query: &Query) -> Result<Response<Full<Bytes>>, ApiError> {
        let q = HistoryQuery {
            include_data: query.bool("IncludeExecutionData", true)?,
            marker: query.get("Marker").filter(|m| !m.is_empty()).map(str::to_owned),
            max_items: Some(query.page_size("MaxItems")?),
            reverse: query.bool("ReverseOrder", false)?,
        };
        let page = self.service.history(arn, &q).await?;
        Ok(json_response(StatusCode::OK, &page))
    }

    async fn stop(&self, arn: &str, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
        let error = parse_error_body(body)?;
        let at = self.service.stop_execution(arn, error).await?;
        self.changed();
        Ok(json_response(StatusCode::OK, &serde_json::json!({ "StopTimestamp": at })))
    }

    async fn callback(&self, id: &str, action: CallbackAction, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
        match action {
            CallbackAction::Succeed => {
                // The raw body is the result (a blob on the wire; JSON text for the default
                // codec, which the service checks, refusing anything else); no body is no
                // result.
                let result = if body.is_empty() {
                    None
                } else {
                    Some(
                        std::str::from_utf8(body)
                            .map_err(|_| ApiError::invalid("the callback result must be UTF-8 text"))?
                            .to_owned(),
                    )
                };
                self.service.callback_success(id, result).await?;
            }
            CallbackAction::Fail => {
                let error = parse_error_body(body)?.unwrap_or_default();
                self.service.callback_failure(id, error).await?;
            }
            CallbackAction::Heartbeat => self.service.callback_heartbeat(id).await?,
        }
        if action != CallbackAction::Heartbeat {
            self.changed();
        }
        Ok(json_response(StatusCode::OK, &serde_json::json!({})))
    }

    /// `ListDurableExecutionsByFunction` (and the list of every function's executions).
    /// The store pages by ARN; AWS orders by start time, newest first unless
    /// `ReverseOrder=true`, and filters by name and start time, so the matching records
    /// are read, filtered and ordered here. `Marker` is the ARN of the previous page's
    /// last execution.
    async fn list(&self, function: Option<String>, query: &Query) -> Result<Response<Full<Bytes>>, ApiError> {
        let function = function.map(|f| function_name_of(&f).to_owned());
        let mut statuses = Vec::new();
        for s in query.all("Statuses").flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
            statuses.push(ExecutionStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "unknown status {s:?}; expected RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED"
                ))
            })?);
        }
        let name = query.get("DurableExecutionName").filter(|n| !n.is_empty());
        let after = query.timestamp("StartedAfter")?;
        let before = query.timestamp("StartedBefore")?;
        let oldest_first = query.bool("ReverseOrder", false)?;
        let limit = query.page_size("MaxItems")?;

        let mut all: Vec<DurableExecutionSummary> = Vec::new();
        let mut q = ListQuery { function_name: function.clone(), statuses, ..ListQuery::default() };
        q.limit = MAX_PAGE;
        loop {
            let page = self.service.list_executions(&q).await?;
            all.extend(page.durable_executions);
            match page.next_marker {
                Some(m) => q.after = Some(m),
                None => break,
            }
        }
        if let Some(f) = &function
            && all.is_empty()
            && !self.is_known(f)
        {
            return Err(ApiError::not_found(format!("Function not found: {}", self.service.function_arn(f))));
        }
        all.retain(|e| {
            name.is_none_or(|n| e.durable_execution_name == n)
                && after.is_none_or(|t| e.start_timestamp >= t)
                && before.is_none_or(|t| e.start_timestamp < t)
        });
        all.sort_by(|a, b| {
            (a.start_timestamp, &a.durable_execution_arn).cmp(&(b.start_timestamp, &b.durable_execution_arn))
        });
        if !oldest_first {
            all.reverse();
        }
        let from = match query.get("Marker").filter(|m| !m.is_empty()) {
            None => 0,
            Some(m) => all
                .iter()
                .position(|e| e.durable_execution_arn == m)
                .map(|i| i + 1)
                .ok_or_else(|| ApiError::invalid(format!("Marker {m:?} is not an execution of this listing")))?,
        };
        let rest = all.split_off(from.min(all.len()));
        let more = rest.len() > limit;
        let page: Vec<_> = rest.into_iter().take(limit).collect();
        let next_marker = if more { page.last().map(|e| e.durable_execution_arn.clone()) } else { None };
        Ok(json_response(StatusCode::OK, &ListDurableExecutionsResponse { durable_executions: page, next_marker }))
    }
}

async fn read_body(body: Incoming, timeout: Duration) -> Result<Bytes, ApiError> {
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await else {
        return Err(ApiError::new(
            status_of(REQUEST_TIMEOUT),
            REQUEST_TIMEOUT,
            format!("the request body did not arrive within {:.1} s", timeout.as_secs_f64()),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            status_of(TOO_LARGE),
            TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, INVALID_PARAMETER, format!("cannot read the body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_on_the_raw_path() {
        let arn = "arn%3Aaws%3Alambda%3Alocal%3A0%3Afunction%3Af%3A%24LATEST%2Fdurable-execution%2Fn%2Fid";
        let cases: Vec<(String, Option<Route<'_>>)> = vec![
            ("/health".into(), Some(Route::Health)),
            ("/start-durable-execution".into(), Some(Route::Start)),
            ("/2025-12-01/durable-executions".into(), Some(Route::ListAll)),
            (format!("/2025-12-01/durable-executions/{arn}"), Some(Route::Get(arn))),
            (format!("/2025-12-01/durable-executions/{arn}/history"), Some(Route::History(arn))),
            (format!("/2025-12-01/durable-executions/{arn}/stop"), Some(Route::Stop(arn))),
            ("/2025-12-01/functions/f/durable-executions".into(), Some(Route::ListByFunction("f"))),
            (
                "/2025-12-01/durable-execution-callbacks/abc/succeed".into(),
                Some(Route::Callback("abc", CallbackAction::Succeed)),
            ),
            (
                "/2025-12-01/durable-execution-callbacks/abc/fail".into(),
                Some(Route::Callback("abc", CallbackAction::Fail)),
            ),
            (
                "/2025-12-01/durable-execution-callbacks/abc/heartbeat".into(),
                Some(Route::Callback("abc", CallbackAction::Heartbeat)),
            ),
            ("/2025-12-01/durable-execution-callbacks/abc/explode".into(), None),
            ("/2025-12-01/durable-execution-callbacks//succeed".into(), None),
            ("/2025-12-01/functions//durable-executions".into(), None),
            ("/2015-03-31/functions/f/invocations".into(), None),
            (format!("/2025-12-01/durable-executions/{arn}/state"), None),
            (format!("/2025-12-01/durable-executions/{arn}/checkpoint"), None),
            ("/".into(), None),
        ];
        for (path, expected) in &cases {
            assert_eq!(route(path), *expected, "{path}");
        }
        // An ARN sent with raw slashes still names one execution.
        let raw =
            "/2025-12-01/durable-executions/arn:aws:lambda:local:0:function:f:$LATEST/durable-execution/n/id/history";
        assert_eq!(
            route(raw),
            Some(Route::History("arn:aws:lambda:local:0:function:f:$LATEST/durable-execution/n/id"))
        );
        assert_eq!(
            decode_label(arn, "arn").unwrap(),
            "arn:aws:lambda:local:0:function:f:$LATEST/durable-execution/n/id"
        );
        assert!(decode_label("%FF", "arn").is_err());
    }

    #[test]
    fn function_names_from_names_and_arns() {
        assert_eq!(function_name_of("approve"), "approve");
        assert_eq!(function_name_of("approve:$LATEST"), "approve");
        assert_eq!(function_name_of("arn:aws:lambda:us-east-1:123456789012:function:approve"), "approve");
        assert_eq!(function_name_of("arn:aws:lambda:us-east-1:123456789012:function:approve:7"), "approve");
    }

    #[test]
    fn query_parameters() {
        let q = Query::parse(Some("Statuses=RUNNING&Statuses=FAILED&MaxItems=0&IncludeExecutionData=False&X=a%2Fb"));
        assert_eq!(q.all("Statuses").collect::<Vec<_>>(), ["RUNNING", "FAILED"]);
        assert_eq!(q.page_size("MaxItems").unwrap(), DEFAULT_PAGE);
        assert!(!q.bool("IncludeExecutionData", true).unwrap());
        assert!(q.bool("ReverseOrder", true).unwrap(), "absent: the default");
        assert_eq!(q.get("X"), Some("a/b"));
        let bad = Query::parse(Some("MaxItems=1001&ReverseOrder=yes&StartedAfter=soon"));
        assert!(bad.page_size("MaxItems").is_err());
        assert!(bad.bool("ReverseOrder", false).is_err());
        assert!(bad.timestamp("StartedAfter").is_err());
        let t = Query::parse(Some("A=2026-01-02T03:04:05Z&B=1767323045.5"));
        assert_eq!(t.timestamp("A").unwrap(), Timestamp::parse_rfc3339("2026-01-02T03:04:05Z"));
        assert_eq!(t.timestamp("B").unwrap(), Some(Timestamp::from_millis(1_767_323_045_500)));
    }

    #[test]
    fn error_bodies_bare_or_wrapped() {
        let bare = br#"{"ErrorType":"Rejected","ErrorMessage":"no"}"#;
        let wrapped = br#"{"Error":{"ErrorType":"Rejected","ErrorMessage":"no"}}"#;
        let expected = Some(ErrorObject::new("Rejected", "no"));
        assert_eq!(parse_error_body(bare).unwrap(), expected);
        assert_eq!(parse_error_body(wrapped).unwrap(), expected);
        assert_eq!(parse_error_body(b"{}").unwrap(), None);
        assert_eq!(parse_error_body(b"").unwrap(), None);
        assert!(parse_error_body(b"{nope").is_err());
        assert!(parse_error_body(b"[1]").is_err());
    }
}
