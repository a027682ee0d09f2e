//! The model against AWS's documents: the samples of REFERENCE-AWS.md (sections 2 and 3)
//! parse, and re-emit with the same field names and values.

// Timestamps are written as AWS writes them, without digit separators.
#![allow(clippy::unreadable_literal)]

use durable_core::model::*;
use serde_json::{Value, json};

/// Rewrites every `*Timestamp` field to epoch milliseconds, so documents that carry
/// timestamps in different wire shapes compare equal.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k.ends_with("Timestamp") && !val.is_object() {
                    let t: Timestamp = serde_json::from_value(val.clone()).expect("timestamp");
                    *val = json!(t.as_millis());
                } else {
                    normalise(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(doc: Value) -> T {
    let parsed: T = serde_json::from_value(doc.clone()).expect("the document parses");
    let mut emitted = serde_json::to_value(&parsed).unwrap();
    let again: T = serde_json::from_value(emitted.clone()).expect("the re-emitted document parses");
    assert_eq!(parsed, again);
    let mut original = doc;
    normalise(&mut original);
    normalise(&mut emitted);
    assert_eq!(emitted, original, "re-emitted with the same fields and values");
    parsed
}

#[test]
fn invocation_input_from_the_emulator() {
    let doc = json!({
      "DurableExecutionArn": "81564d64-0b3c-4f5e-9a4e-2a7a3b4c5d6e/34dda6e9-1111-2222-3333-444455556666",
      "CheckpointToken": "eyJhcm4iOiJ4Iiwic2VxIjoxLCJpbnYiOiJ5In0=",
      "InitialExecutionState": {
        "Operations": [
          {"Id":"34dda6e9-1111-2222-3333-444455556666","Type":"EXECUTION","Status":"STARTED","Name":"e1",
           "StartTimestamp":1795723518638_i64,"ExecutionDetails":{"InputPayload":"\"World\""}},
          {"Id":"1ced8f5be2db23a6513eba4d819c73806424748a7bc6fa0d792cc1c7d1775a97","Type":"STEP","Status":"SUCCEEDED",
           "Name":"greet","SubType":"Step","StartTimestamp":1795723518799_i64,"EndTimestamp":1795723518799_i64,
           "StepDetails":{"Attempt":1,"Result":"\"Hello, World!\""}},
          {"Id":"c5faca15ac2f93578b39ef4b6bbb871bdedce4ddd584fd31f0bb66fade3947e6","Type":"STEP","Status":"READY",
           "Name":"flaky","SubType":"Step","StartTimestamp":1795723518807_i64,
           "StepDetails":{"Attempt":1,"Error":{"ErrorMessage":"transient","ErrorType":"ValueError"}}}
        ],
        "NextMarker": ""
      },
      "UpdatedOperationIds": ["c5faca15ac2f93578b39ef4b6bbb871bdedce4ddd584fd31f0bb66fade3947e6"]
    });
    let input: DurableExecutionInvocationInput = round_trip(doc);
    let ops = &input.initial_execution_state.operations;
    assert_eq!(ops[0].op_type, OperationType::Execution);
    assert_eq!(ops[0].execution_details.as_ref().unwrap().input_payload.as_deref(), Some("\"World\""));
    assert_eq!(ops[1].status, OperationStatus::Succeeded);
    assert_eq!(ops[1].start_timestamp.as_millis(), 1_795_723_518_799);
    assert_eq!(ops[2].status, OperationStatus::Ready);
    assert_eq!(ops[2].step_details.as_ref().unwrap().error.as_ref().unwrap().error_type.as_deref(), Some("ValueError"));
    assert_eq!(input.initial_execution_state.next_page(), None, "an empty marker is the last page");
}

#[test]
fn operations_of_every_type() {
    let doc = json!({"Operations": [
        {"Id":"c1","Type":"CONTEXT","SubType":"Map","Status":"SUCCEEDED","StartTimestamp":1795723518.5,
         "ContextDetails":{"ReplayChildren":true,"Result":"{\"type\":\"MapResult\"}"}},
        {"Id":"w1","ParentId":"c1","Type":"WAIT","SubType":"Wait","Status":"STARTED","StartTimestamp":"2026-11-26T10:00:00.000Z",
         "WaitDetails":{"ScheduledEndTimestamp":1795723620_i64}},
        {"Id":"cb","Type":"CALLBACK","SubType":"Callback","Status":"TIMED_OUT","StartTimestamp":1795723518_i64,
         "CallbackDetails":{"CallbackId":"eyJhcm4iOiJ4Iiwib3AiOiJjYiJ9","Error":{"ErrorType":"Callback.Timeout"}}},
        {"Id":"ci","Type":"CHAINED_INVOKE","SubType":"ChainedInvoke","Status":"STOPPED","StartTimestamp":1795723518_i64,
         "ChainedInvokeDetails":{"Error":{"ErrorMessage":"stopped","StackTrace":["a","b"],"ErrorData":"{}"}}},
        {"Id":"st","Type":"STEP","SubType":"WaitForCondition","Status":"PENDING","StartTimestamp":1795723518_i64,
         "StepDetails":{"Attempt":3,"NextAttemptTimestamp":1795723600_i64,"Result":"{\"polls\":3}"}},
        {"Id":"cc","Type":"STEP","SubType":"Step","Status":"CANCELLED","StartTimestamp":1795723518_i64}
      ], "NextMarker": "opaque-marker"});
    let state: ExecutionState = round_trip(doc);
    assert_eq!(state.next_page(), Some("opaque-marker"));
    let by_id = |id: &str| state.operations.iter().find(|o| &*o.id == id).unwrap();
    assert_eq!(by_id("c1").context_details.as_ref().unwrap().replay_children, Some(true));
    assert_eq!(by_id("w1").start_timestamp.to_rfc3339(), "2026-11-26T10:00:00.000Z");
    assert_eq!(by_id("cb").status, OperationStatus::TimedOut);
    assert_eq!(by_id("ci").error().unwrap().stack_trace.as_ref().unwrap().len(), 2);
    assert_eq!(by_id("st").result_payload(), Some("{\"polls\":3}"));
}

#[test]
fn checkpoint_request_bodies() {
    let at_least_once = json!({"CheckpointToken":"eyJ1","Updates":[
      {"Id":"1ced","Type":"STEP","Action":"START","Name":"greet","SubType":"Step"},
      {"Id":"1ced","Type":"STEP","Action":"SUCCEED","Name":"greet","SubType":"Step","Payload":"\"hi\""}]});
    let req: CheckpointDurableExecutionRequest = round_trip(at_least_once);
    assert_eq!(req.updates[1].action, OperationAction::Succeed);

    let retry = json!({"CheckpointToken":"eyJ2","Updates":[
      {"Id":"c5fa","Type":"STEP","Action":"RETRY","Name":"flaky","SubType":"Step",
       "Error":{"ErrorMessage":"transient","ErrorType":"ValueError"},"StepOptions":{"NextAttemptDelaySeconds":1}}]});
    let req: CheckpointDurableExecutionRequest = round_trip(retry);
    assert_eq!(req.updates[0].step_options.as_ref().unwrap().next_attempt_delay_seconds, Some(1));

    let callback = json!({"CheckpointToken":"t","ClientToken":"c-1","Updates":[
      {"Id":"cb","ParentId":"p","Type":"CALLBACK","Action":"START","Name":"approve","SubType":"Callback",
       "CallbackOptions":{"TimeoutSeconds":300,"HeartbeatTimeoutSeconds":0}}]});
    let req: CheckpointDurableExecutionRequest = round_trip(callback);
    assert_eq!(req.updates[0].callback_options.as_ref().unwrap().timeout_seconds, Some(300));

    let map_item = json!({"CheckpointToken":"t","Updates":[
      {"Id":"a33f","ParentId":"7377","Type":"CONTEXT","Action":"START","SubType":"MapIteration","Name":"map-item-0"},
      {"Id":"7377","Type":"CONTEXT","Action":"SUCCEED","SubType":"Map","Payload":"{}","ContextOptions":{"ReplayChildren":true}},
      {"Id":"w","Type":"WAIT","Action":"START","WaitOptions":{"WaitSeconds":2}},
      {"Id":"w2","Type":"WAIT","Action":"CANCEL"},
      {"Id":"i","Type":"CHAINED_INVOKE","Action":"START","Payload":"{\"x\":1}",
       "ChainedInvokeOptions":{"FunctionName":"echo:$LATEST","TenantId":"t-1"}},
      {"Id":"execution-result-1795723518638","Type":"EXECUTION","Action":"SUCCEED","Payload":"\"big\""}]});
    let req: CheckpointDurableExecutionRequest = round_trip(map_item);
    assert_eq!(req.updates[4].chained_invoke_options.as_ref().unwrap().function_name, "echo:$LATEST");
    assert_eq!(req.updates[5].op_type, OperationType::Execution);
}

#[test]
fn checkpoint_responses_and_outputs() {
    let resp = json!({"CheckpointToken":"next","NewExecutionState":{"Operations":[
        {"Id":"cb","Type":"CALLBACK","Status":"STARTED","StartTimestamp":1795723518_i64,
         "CallbackDetails":{"CallbackId":"abc"}}]}});
    let r: CheckpointDurableExecutionResponse = round_trip(resp);
    assert_eq!(
        r.new_execution_state.operations[0].callback_details.as_ref().unwrap().callback_id.as_deref(),
        Some("abc")
    );
    let terminal: CheckpointDurableExecutionResponse = round_trip(json!({"NewExecutionState":{"Operations":[]}}));
    assert_eq!(terminal.checkpoint_token, None);

    let pending: DurableExecutionInvocationOutput = round_trip(json!({"Status":"PENDING"}));
    assert_eq!(pending, DurableExecutionInvocationOutput::pending());
    let ok: DurableExecutionInvocationOutput = round_trip(json!({"Status":"SUCCEEDED","Result":"\"Hello\""}));
    assert_eq!(ok.result.as_deref(), Some("\"Hello\""));
    let failed: DurableExecutionInvocationOutput = round_trip(
        json!({"Status":"FAILED","Error":{"ErrorMessage":"m","ErrorType":"T","ErrorData":"d","StackTrace":["x"]}}),
    );
    assert_eq!(failed.error.unwrap().error_data.as_deref(), Some("d"));
}

#[test]
fn history_events_of_every_type() {
    let err = json!({"Payload":{"ErrorMessage":"m","ErrorType":"T"},"Truncated":false});
    let res = json!({"Payload":"\"r\"","Truncated":false});
    let details: Vec<(&str, Value)> = vec![
        ("ExecutionStarted", json!({"Input":{"Payload":"{}"},"ExecutionTimeout":300})),
        ("ExecutionSucceeded", json!({"Result":res})),
        ("ExecutionFailed", json!({"Error":err})),
        ("ExecutionTimedOut", json!({"Error":err})),
        ("ExecutionStopped", json!({"Error":err})),
        ("ContextStarted", json!({})),
        ("ContextSucceeded", json!({"Result":res})),
        ("ContextFailed", json!({"Error":err})),
        ("WaitStarted", json!({"Duration":2,"ScheduledEndTimestamp":1795723520_i64})),
        ("WaitSucceeded", json!({"Duration":2})),
        ("WaitCancelled", json!({"Error":err})),
        ("StepStarted", json!({})),
        ("StepSucceeded", json!({"Result":res,"RetryDetails":{"CurrentAttempt":2}})),
        ("StepFailed", json!({"Error":err,"RetryDetails":{"CurrentAttempt":1,"NextAttemptDelaySeconds":1}})),
        (
            "ChainedInvokeStarted",
            json!({"FunctionName":"echo","TenantId":"t","Input":{"Payload":"1"},
            "ExecutedVersion":"$LATEST","DurableExecutionArn":"arn:child"}),
        ),
        ("ChainedInvokeSucceeded", json!({"Result":res})),
        ("ChainedInvokeFailed", json!({"Error":err})),
        ("ChainedInvokeTimedOut", json!({"Error":err})),
        ("ChainedInvokeStopped", json!({"Error":err})),
        ("CallbackStarted", json!({"CallbackId":"cb-1","HeartbeatTimeout":10,"Timeout":300})),
        ("CallbackSucceeded", json!({"Result":res})),
        ("CallbackFailed", json!({"Error":err})),
        ("CallbackTimedOut", json!({"Error":{"Payload":{"ErrorType":"Callback.Heartbeat"}}})),
        (
            "InvocationCompleted",
            json!({"StartTimestamp":1795723518_i64,"EndTimestamp":1795723519.25,"RequestId":"r-1"}),
        ),
        (
            "ExecutionPaused",
            json!({"PauseRequestTimestamp":1795723518_i64,"Reason":"maintenance","ExecutionTimeoutPaused":true}),
        ),
        ("ExecutionResumed", json!({"ResumeRequestTimestamp":1795723518_i64,"Reason":"done"})),
    ];
    assert_eq!(details.len(), EventType::ALL.len(), "every event type of the service model");
    let events: Vec<Value> = details
        .iter()
        .enumerate()
        .map(|(i, (t, d))| {
            let mut e = json!({"EventType": t, "EventId": i + 1, "EventTimestamp": 1795723518.638,
                               "Id": format!("op{i}"), "Name": "n", "ParentId": "p", "SubType": "Step"});
            e[format!("{t}Details")] = d.clone();
            e
        })
        .collect();
    let page: GetDurableExecutionHistoryResponse = round_trip(json!({"Events": events, "NextMarker": "26"}));
    for (e, t) in page.events.iter().zip(EventType::ALL) {
        assert_eq!(e.event_type, *t);
    }
    let step_failed = &page.events[13];
    assert_eq!(step_failed.details.retry_details.as_ref().unwrap().next_attempt_delay_seconds, Some(1));
    assert_eq!(page.events[23].details.request_id.as_deref(), Some("r-1"));
    // An event without its details object (as some emulators send InvocationCompleted) parses.
    let bare: Event = serde_json::from_value(json!({"EventType":"InvocationCompleted","EventId":6})).unwrap();
    assert_eq!(bare.details, EventDetails::default());
    assert!(serde_json::from_value::<Event>(json!({"EventType":"Bogus","EventId":1})).is_err());
}

#[test]
fn control_plane_documents() {
    let get = json!({"DurableExecutionArn":"arn:aws:lambda:us-west-2:123456789012:function:f:$LATEST/durable-execution/e1/abc",
        "DurableExecutionName":"e1","FunctionArn":"arn:aws:lambda:us-west-2:123456789012:function:f",
        "InputPayload":"{}","Result":"\"ok\"","StartTimestamp":1795723518.1,"Status":"SUCCEEDED",
        "EndTimestamp":1795723519.2,"Version":"$LATEST","TraceHeader":{"XAmznTraceId":"Root=1-abc"},
        "ExecutionDataIncluded":true,"DurableConfig":{"ExecutionTimeout":900,"RetentionPeriodInDays":7,
        "KMSKeyArn":"arn:aws:kms:us-west-2:123456789012:key/k"},"ExpectedExecutionTimeoutTimestamp":1795724418.1});
    let g: GetDurableExecutionResponse = round_trip(get);
    assert_eq!(g.status, ExecutionStatus::Succeeded);
    assert_eq!(g.durable_config.as_ref().and_then(|c| c.execution_timeout), Some(900));
    assert_eq!(g.trace_header.and_then(|t| t.x_amzn_trace_id).as_deref(), Some("Root=1-abc"));
    let list = json!({"DurableExecutions":[{"DurableExecutionArn":"a","DurableExecutionName":"n","FunctionArn":"f",
        "Status":"RUNNING","StartTimestamp":1795723518_i64}],"NextMarker":"m"});
    let l: ListDurableExecutionsResponse = round_trip(list);
    assert_eq!(l.durable_executions[0].status, ExecutionStatus::Running);
}
