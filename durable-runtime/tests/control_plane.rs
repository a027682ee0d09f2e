//! The control plane against a local runner whose function waits on a callback: starts,
//! reads, lists and callbacks over HTTP, the worker picking the work up, stops, and the
//! AWS-shaped errors.

mod support;

use durable_core::handler;
use durable_core::model::{ErrorObject, EventType, ExecutionStatus};
use durable_core::service::{HistoryQuery, ServiceConfig};
use durable_runtime::LocalRunner;
use durable_runtime::client::{Client, ListFilter};
use durable_runtime::control_plane::ControlPlane;
use support::{approve, callback_id, eventually, execution_path, history_with, raw, runner, with_worker};

#[tokio::test]
async fn executions_started_and_completed_over_http_run_on_the_worker() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let client = Client::new(&server.endpoint()).unwrap();
    with_worker(&runner, async {
        // Start as AWS's emulator is called: `Input` is JSON text.
        let started = raw(
            addr,
            "POST",
            "/start-durable-execution",
            br#"{"AccountId":"123456789012","FunctionName":"approve","FunctionQualifier":"$LATEST","ExecutionName":"req-1","Input":"\"laptop\""}"#,
        )
        .await;
        assert_eq!(started.status, 201, "{started:?}");
        let arn = started.json()["ExecutionArn"].as_str().unwrap().to_owned();
        assert!(arn.contains(":function:approve:$LATEST/durable-execution/req-1/"), "{arn}");

        // The worker picks it up and runs it until it waits on the callback.
        let id = callback_id(&client, &arn).await;

        // GetDurableExecution, with the ARN percent-encoded in one segment.
        let got = raw(addr, "GET", &execution_path(&arn, ""), b"").await;
        assert_eq!(got.status, 200, "{got:?}");
        let doc = got.json();
        assert_eq!(doc["DurableExecutionArn"], arn.as_str());
        assert_eq!(doc["DurableExecutionName"], "req-1");
        assert_eq!(doc["Status"], "RUNNING");
        assert_eq!(doc["InputPayload"], "\"laptop\"");
        assert_eq!(doc["ExecutionDataIncluded"], true);
        assert!(doc["StartTimestamp"].is_number(), "epoch seconds: {doc}");
        assert!(doc["DurableConfig"]["ExecutionTimeout"].is_number(), "{doc}");
        let lean = raw(addr, "GET", &execution_path(&arn, "?IncludeExecutionData=false"), b"").await.json();
        assert_eq!(lean["ExecutionDataIncluded"], false);
        assert!(lean.get("InputPayload").is_none(), "{lean}");

        // ListDurableExecutionsByFunction with its filters.
        let listed = client
            .list(&ListFilter { function: Some("approve".into()), ..ListFilter::default() })
            .await
            .unwrap()
            .durable_executions;
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].durable_execution_arn.as_str(), listed[0].status), (arn.as_str(), ExecutionStatus::Running));
        let done = raw(addr, "GET", "/2025-12-01/functions/approve/durable-executions?Statuses=SUCCEEDED", b"").await;
        assert_eq!(done.json()["DurableExecutions"], serde_json::json!([]));
        let by_arn = raw(
            addr,
            "GET",
            "/2025-12-01/functions/arn%3Aaws%3Alambda%3Alocal%3A000000000000%3Afunction%3Aapprove/durable-executions?DurableExecutionName=req-1&Statuses=RUNNING",
            b"",
        )
        .await;
        assert_eq!(by_arn.json()["DurableExecutions"][0]["DurableExecutionArn"], arn.as_str());

        // GetDurableExecutionHistory, paged.
        let page = client
            .history_page(&arn, &HistoryQuery { include_data: true, max_items: Some(2), ..HistoryQuery::default() })
            .await
            .unwrap();
        assert_eq!(page.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(page.events[0].event_type, EventType::ExecutionStarted);
        let next = client
            .history_page(&arn, &HistoryQuery { include_data: true, marker: page.next_marker, ..HistoryQuery::default() })
            .await
            .unwrap();
        assert_eq!(next.events[0].event_id, 3);

        // Complete the callback as the SDK does: the raw body is the result.
        let path = format!("/2025-12-01/durable-execution-callbacks/{id}/succeed");
        let ok = raw(addr, "POST", &path, b"\"approved\"").await;
        assert_eq!(ok.status, 200, "{ok:?}");

        // The worker resumes the execution and finishes it.
        let finished = eventually("the execution to finish", async || {
            let e = client.get(&arn).await.unwrap();
            e.status.is_terminal().then_some(e)
        })
        .await;
        assert_eq!(finished.status, ExecutionStatus::Succeeded);
        assert_eq!(finished.result.as_deref(), Some("\"checked laptop: approved\""));
        let events = client.history(&arn).await.unwrap();
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert!(types.contains(&EventType::CallbackSucceeded), "{types:?}");
        assert_eq!(types.last(), Some(&EventType::ExecutionSucceeded));

        // A callback completes once.
        raw(addr, "POST", &path, b"\"again\"").await.assert_error(400, "InvalidParameterValueException");

        // Starts are idempotent by name; a different input under the same name conflicts.
        let same = client.start("approve", Some("req-1"), Some("\"laptop\"")).await.unwrap();
        assert_eq!(same, arn);
        let body = br#"{"FunctionName":"approve","ExecutionName":"req-1","Input":"\"phone\""}"#;
        raw(addr, "POST", "/start-durable-execution", body).await.assert_error(409, "DurableExecutionAlreadyStartedException");
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn stop_fail_heartbeat_and_aws_errors() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let client = Client::new(&server.endpoint()).unwrap();
    with_worker(&runner, async {
        // Stop an execution that waits on its callback; the body is the ErrorObject.
        let arn = client.start("approve", None, Some("\"desk\"")).await.unwrap();
        let id = callback_id(&client, &arn).await;
        let heartbeat =
            raw(addr, "POST", &format!("/2025-12-01/durable-execution-callbacks/{id}/heartbeat"), b"").await;
        assert_eq!(heartbeat.status, 200, "{heartbeat:?}");
        let stop_body = br#"{"ErrorType":"Cancelled","ErrorMessage":"no longer needed"}"#;
        let stopped = raw(addr, "POST", &execution_path(&arn, "/stop"), stop_body).await;
        assert_eq!(stopped.status, 200, "{stopped:?}");
        assert!(stopped.json()["StopTimestamp"].is_number(), "{stopped:?}");
        let e = client.get(&arn).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Stopped);
        assert_eq!(e.error, Some(ErrorObject::new("Cancelled", "no longer needed")));
        let events = client.history(&arn).await.unwrap();
        assert_eq!(events.last().map(|e| e.event_type), Some(EventType::ExecutionStopped));
        raw(addr, "POST", &execution_path(&arn, "/stop"), b"")
            .await
            .assert_error(400, "InvalidParameterValueException");
        let late = raw(addr, "POST", &format!("/2025-12-01/durable-execution-callbacks/{id}/succeed"), b"1").await;
        late.assert_error(400, "InvalidParameterValueException");

        // Fail a callback: the function sees the error and fails with it.
        let arn = client.start("approve", Some("rejected-1"), Some("\"chair\"")).await.unwrap();
        let id = callback_id(&client, &arn).await;
        client.callback_failure(&id, &ErrorObject::new("Rejected", "over budget")).await.unwrap();
        history_with(&client, &arn, EventType::ExecutionFailed).await;
        let e = client.get(&arn).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Failed);
        assert_eq!(e.error.as_ref().and_then(|e| e.error_type.as_deref()), Some("Rejected"), "{e:?}");

        // Unknown executions are 404 ResourceNotFoundException.
        let ghost = arn.replace("rejected-1", "ghost");
        raw(addr, "GET", &execution_path(&ghost, ""), b"").await.assert_error(404, "ResourceNotFoundException");
        raw(addr, "GET", &execution_path(&ghost, "/history"), b"").await.assert_error(404, "ResourceNotFoundException");
        raw(addr, "POST", &execution_path(&ghost, "/stop"), b"").await.assert_error(404, "ResourceNotFoundException");
        let err = client.get(&ghost).await.unwrap_err();
        assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err}");

        // Forged or malformed callback ids are 400 InvalidParameterValueException.
        for forged in ["bm90LWEtY2FsbGJhY2s", "not%20base64%21"] {
            let path = format!("/2025-12-01/durable-execution-callbacks/{forged}/succeed");
            raw(addr, "POST", &path, b"\"x\"").await.assert_error(400, "InvalidParameterValueException");
        }
        let err = client.callback_success(&id.replace('A', "B"), None).await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"), "{err}");

        // Bad JSON, bad parameters, unknown functions, unknown routes.
        raw(addr, "POST", "/start-durable-execution", b"{not json")
            .await
            .assert_error(400, "InvalidParameterValueException");
        raw(addr, "POST", "/start-durable-execution", b"").await.assert_error(400, "InvalidParameterValueException");
        let fail_path = format!("/2025-12-01/durable-execution-callbacks/{id}/fail");
        raw(addr, "POST", &fail_path, b"{\"ErrorType\":").await.assert_error(400, "InvalidParameterValueException");
        raw(addr, "POST", &execution_path(&arn, "/stop"), b"[]")
            .await
            .assert_error(400, "InvalidParameterValueException");
        raw(addr, "GET", &execution_path(&arn, "/history?MaxItems=5000"), b"")
            .await
            .assert_error(400, "InvalidParameterValueException");
        raw(addr, "GET", "/2025-12-01/durable-executions?Statuses=DONE", b"")
            .await
            .assert_error(400, "InvalidParameterValueException");
        raw(addr, "GET", "/2025-12-01/functions/nope/durable-executions", b"")
            .await
            .assert_error(404, "ResourceNotFoundException");
        let body = br#"{"FunctionName":"nope","Input":"{}"}"#;
        raw(addr, "POST", "/start-durable-execution", body).await.assert_error(404, "ResourceNotFoundException");
        raw(addr, "GET", "/2015-03-31/functions/approve/invocations", b"")
            .await
            .assert_error(404, "UnknownOperationException");
        raw(addr, "DELETE", &execution_path(&arn, ""), b"").await.assert_error(405, "UnknownOperationException");

        // Every function's executions, newest first; oldest first on request.
        let all = client.list_all(&ListFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        let oldest = client.list_all(&ListFilter { oldest_first: true, ..ListFilter::default() }).await.unwrap();
        let reversed: Vec<_> = oldest.iter().rev().map(|e| e.durable_execution_arn.clone()).collect();
        assert_eq!(all.iter().map(|e| e.durable_execution_arn.clone()).collect::<Vec<_>>(), reversed);
        let one = client.list(&ListFilter { max_items: Some(1), ..ListFilter::default() }).await.unwrap();
        assert_eq!(one.durable_executions.len(), 1);
        let rest = client
            .list(&ListFilter { max_items: Some(1), marker: one.next_marker.clone(), ..ListFilter::default() })
            .await
            .unwrap();
        assert_eq!(rest.durable_executions[0].durable_execution_arn, all[1].durable_execution_arn);
        assert_eq!(rest.next_marker, None);

        client.health().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn inputs_and_callback_results_over_their_maximum_are_refused_with_413() {
    const LIMIT: usize = 1000;
    let mut config = ServiceConfig::default();
    config.limits.max_input = LIMIT;
    config.limits.max_callback_result = LIMIT;
    let runner = LocalRunner::builder().config(config).register("approve", handler(approve)).build();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let client = Client::new(&server.endpoint()).unwrap();
    // JSON text of `bytes` bytes.
    let json_of = |bytes: usize| format!("\"{}\"", "x".repeat(bytes - 2));
    with_worker(&runner, async {
        // An input over the maximum: refused, nothing created.
        let start = |input: String| {
            serde_json::json!({"FunctionName": "approve", "ExecutionName": "big", "Input": input}).to_string()
        };
        raw(addr, "POST", "/start-durable-execution", start(json_of(LIMIT + 1)).as_bytes())
            .await
            .assert_error(413, "RequestTooLargeException");
        assert!(client.list_all(&ListFilter::default()).await.unwrap().is_empty(), "nothing was created");
        let started = raw(addr, "POST", "/start-durable-execution", start(json_of(LIMIT)).as_bytes()).await;
        assert_eq!(started.status, 201, "an input at the maximum is accepted: {started:?}");
        let arn = started.json()["ExecutionArn"].as_str().unwrap().to_owned();

        // A callback result over the maximum: refused; the callback stays pending.
        let id = callback_id(&client, &arn).await;
        let path = format!("/2025-12-01/durable-execution-callbacks/{id}/succeed");
        raw(addr, "POST", &path, json_of(LIMIT + 1).as_bytes()).await.assert_error(413, "RequestTooLargeException");
        let err = client.callback_success(&id, Some(&json_of(LIMIT + 1))).await.unwrap_err();
        assert_eq!(err.code(), Some("RequestTooLargeException"), "{err}");
        let e = client.get(&arn).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Running);
        let types: Vec<_> = client.history(&arn).await.unwrap().iter().map(|e| e.event_type).collect();
        assert!(!types.contains(&EventType::CallbackSucceeded), "{types:?}");

        // One at the maximum completes it.
        let ok = raw(addr, "POST", &path, json_of(LIMIT).as_bytes()).await;
        assert_eq!(ok.status, 200, "{ok:?}");
        history_with(&client, &arn, EventType::ExecutionSucceeded).await;
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_control_plane_listens_on_loopback_only_unless_told() {
    let service = runner().service().clone();
    let err = ControlPlane::new(service.clone()).bind("0.0.0.0:0").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no authentication"), "{err}");
    let server = ControlPlane::new(service).bind("[::1]:0").await;
    // Hosts without IPv6 cannot bind ::1; where they can, it is accepted as loopback.
    if let Ok(server) = server {
        assert!(server.local_addr().ip().is_loopback());
    }
}

#[tokio::test]
async fn a_shut_down_control_plane_refuses_connections() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let client = Client::new(&server.endpoint()).unwrap();
    client.health().await.unwrap();
    server.shutdown().await;
    let err = client.health().await.unwrap_err();
    assert!(err.to_string().starts_with("no durable worker is running at http://127.0.0.1:"), "{err}");
}

/// Reads until the server closes the connection (or resets it), or 5 s pass.
async fn until_closed(mut stream: tokio::net::TcpStream) -> (String, std::time::Duration) {
    use tokio::io::AsyncReadExt as _;
    let t = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept the connection open: {:?}", String::from_utf8_lossy(&answer));
    (String::from_utf8_lossy(&answer).into_owned(), t.elapsed())
}

#[tokio::test]
async fn idle_and_half_open_connections_are_closed_after_their_timeouts() {
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpStream;
    let runner = runner();
    let timeout = std::time::Duration::from_millis(200);
    let server = ControlPlane::for_runner(&runner)
        .header_read_timeout(timeout)
        .body_read_timeout(timeout)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();

    let silent = TcpStream::connect(addr).await.unwrap();
    let mut half_head = TcpStream::connect(addr).await.unwrap();
    half_head.write_all(b"POST /start-durable-execution HTTP/1.1\r\nHost: x\r\nContent-Le").await.unwrap();
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    half_body
        .write_all(b"POST /start-durable-execution HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Fun")
        .await
        .unwrap();
    let mut kept_alive = TcpStream::connect(addr).await.unwrap();
    kept_alive.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();

    let (
        (silent, silent_took),
        (half_head, half_head_took),
        (half_body, half_body_took),
        (kept_alive, kept_alive_took),
    ) = tokio::join!(until_closed(silent), until_closed(half_head), until_closed(half_body), until_closed(kept_alive));
    assert_eq!(silent, "", "closed without an answer");
    assert_eq!(half_head, "", "closed without an answer");
    assert!(half_body.starts_with("HTTP/1.1 408"), "{half_body}");
    assert!(half_body.contains("RequestTimeoutException"), "{half_body}");
    assert!(kept_alive.starts_with("HTTP/1.1 200"), "answered, then closed once idle: {kept_alive}");
    for took in [silent_took, half_head_took, half_body_took, kept_alive_took] {
        // Not before the timeout (give the timer its granularity), and well before 5 s.
        assert!(took >= std::time::Duration::from_millis(150), "closed after {took:?}");
    }

    // The server itself is fine.
    assert_eq!(raw(addr, "GET", "/health", b"").await.status, 200);
}

#[tokio::test]
async fn a_callback_result_that_is_not_json_is_refused_and_the_callback_stays_pending() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let client = Client::new(&server.endpoint()).unwrap();
    with_worker(&runner, async {
        let arn = client.start("approve", None, Some("\"desk\"")).await.unwrap();
        let id = callback_id(&client, &arn).await;
        let path = format!("/2025-12-01/durable-execution-callbacks/{id}/succeed");
        for bad in [&b"approved"[..], b"{\"ok\":", b"\"approved\" twice"] {
            let refused = raw(addr, "POST", &path, bad).await;
            refused.assert_error(400, "InvalidParameterValueException");
            let message = refused.json()["message"].as_str().unwrap().to_owned();
            assert!(message.contains("must be JSON text"), "{message}");
        }
        let events = client.history(&arn).await.unwrap();
        assert!(!events.iter().any(|e| e.event_type == EventType::CallbackSucceeded), "nothing recorded");
        assert_eq!(client.get(&arn).await.unwrap().status, ExecutionStatus::Running);

        // The sender corrects it: the callback completes.
        assert_eq!(raw(addr, "POST", &path, b"\"approved\"").await.status, 200);
        let done = eventually("the execution to finish", async || {
            let e = client.get(&arn).await.unwrap();
            e.status.is_terminal().then_some(e)
        })
        .await;
        assert_eq!(done.result.as_deref(), Some("\"checked desk: approved\""));
    })
    .await;
}
