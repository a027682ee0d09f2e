//! Tests of the service's transitions, tokens, events and paging, driven through its
//! public API with hand-written update batches.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::model::{
    CheckpointDurableExecutionResponse, ContextOptions, DurableExecutionInvocationOutput, ErrorObject, EventType,
    ExecutionStatus, OperationAction as A, OperationStatus, OperationType as T, OperationUpdate, StepOptions, SubType,
    Timestamp, WaitOptions,
};
use crate::store::MemoryStore;

fn service() -> (Arc<CheckpointService>, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let svc =
        CheckpointService::with_config(Arc::new(MemoryStore::new()), Arc::new(clock.clone()), ServiceConfig::default());
    (Arc::new(svc), clock)
}

fn upd(id: &str, t: T, a: A) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, t, a);
    u.sub_type = Some(SubType::new(match t {
        T::Step => "Step",
        T::Wait => "Wait",
        T::Context => "RunInChildContext",
        _ => "X",
    }));
    u
}

async fn started(svc: &CheckpointService) -> (String, String) {
    let arn = svc
        .start_execution(StartExecution {
            function_name: "f".into(),
            input: Some("{\"x\":1}".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn;
    let input = svc.begin_invocation(&arn).await.unwrap();
    (arn, input.checkpoint_token)
}

fn rejected(r: Result<CheckpointDurableExecutionResponse, ServiceError>) -> String {
    match r {
        Err(ServiceError::InvalidParameter(e)) => e.error_message.unwrap(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn step_lifecycle_events_and_tokens() {
    let (svc, clock) = service();
    let (arn, t0) = started(&svc).await;
    let mut succeed = upd("s1", T::Step, A::Succeed);
    succeed.payload = Some("\"hi\"".into());
    let r = svc.checkpoint(&arn, &t0, &[upd("s1", T::Step, A::Start), succeed]).await.unwrap();
    let t1 = r.checkpoint_token.unwrap();
    assert!(r.new_execution_state.operations.is_empty(), "what the function sent is not echoed back");
    let s1 = svc.operations(&arn).await.unwrap().into_iter().find(|o| &*o.id == "s1").unwrap();
    assert_eq!(s1.status, OperationStatus::Succeeded);
    // The used token is stale now.
    assert!(matches!(svc.checkpoint(&arn, &t0, &[]).await, Err(ServiceError::InvalidToken(_))));

    let mut retry = upd("s2", T::Step, A::Retry);
    retry.error = Some(ErrorObject::new("E", "boom"));
    retry.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(7) });
    let r = svc.checkpoint(&arn, &t1, &[upd("s2", T::Step, A::Start), retry]).await.unwrap();
    let op = &r.new_execution_state.operations[0];
    assert_eq!(op.status, OperationStatus::Pending);
    let d = op.step_details.as_ref().unwrap();
    assert_eq!(d.attempt, Some(1));
    assert_eq!(d.next_attempt_timestamp, Some(clock.now().plus_seconds(7)));
    let t2 = r.checkpoint_token.unwrap();
    // START on a PENDING step is illegal.
    let msg = rejected(svc.checkpoint(&arn, &t2, &[upd("s2", T::Step, A::Start)]).await);
    assert!(msg.contains("STEP START is not allowed on an operation that is PENDING"), "{msg}");

    let rec = svc
        .end_invocation(&arn, &t2, InvocationEnd::Output(DurableExecutionInvocationOutput::pending()))
        .await
        .unwrap();
    assert_eq!(rec.wake_at, Some(clock.now().plus_seconds(7)));
    clock.advance(std::time::Duration::from_secs(7));
    let input = svc.begin_invocation(&arn).await.unwrap();
    assert_eq!(input.updated_operation_ids.as_deref(), Some(&["s2".to_owned()][..]));
    let s2 = input.initial_execution_state.operations.iter().find(|o| &*o.id == "s2").unwrap();
    assert_eq!(s2.status, OperationStatus::Ready);
    let t = input.checkpoint_token;
    let mut ok = upd("s2", T::Step, A::Succeed);
    ok.payload = Some("1".into());
    let r = svc.checkpoint(&arn, &t, &[upd("s2", T::Step, A::Start), ok]).await.unwrap();
    let t = r.checkpoint_token.unwrap();
    let s2 = svc.operations(&arn).await.unwrap().into_iter().find(|o| &*o.id == "s2").unwrap();
    assert_eq!(s2.step_details.as_ref().unwrap().attempt, Some(2));
    svc.end_invocation(
        &arn,
        &t,
        InvocationEnd::Output(DurableExecutionInvocationOutput::succeeded(Some("\"done\"".into()))),
    )
    .await
    .unwrap();

    let events = svc.full_history(&arn).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "StepStarted",
            "StepFailed",
            "InvocationCompleted",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ]
    );
    assert!(events.iter().enumerate().all(|(i, e)| e.event_id == i as u64 + 1));
    let failed = &events[4].details;
    assert_eq!(
        failed.retry_details,
        Some(crate::model::RetryDetails { current_attempt: Some(1), next_attempt_delay_seconds: Some(7) })
    );
    assert_eq!(events[7].details.retry_details.as_ref().unwrap().current_attempt, Some(2));
    let exec = svc.get_execution(&arn).await.unwrap();
    assert_eq!(exec.status, ExecutionStatus::Succeeded);
    assert_eq!(exec.result.as_deref(), Some("\"done\""));
    // A finished execution refuses new invocations and checkpoints.
    assert!(matches!(svc.begin_invocation(&arn).await, Err(ServiceError::NotRunning(_))));
}

#[tokio::test]
async fn illegal_batches_are_refused_whole() {
    let (svc, _) = service();
    let (arn, t) = started(&svc).await;
    let cases: Vec<(Vec<OperationUpdate>, &str)> = vec![
        (vec![upd("a", T::Step, A::Succeed)], "does not exist"),
        (vec![upd("a", T::Wait, A::Start)], "WaitSeconds"),
        (vec![upd("bad id!", T::Step, A::Start)], "may only contain"),
        (
            {
                let mut c = upd("c", T::Step, A::Start);
                c.parent_id = Some("nope".into());
                vec![c]
            },
            "parent nope does not exist",
        ),
        (
            {
                let mut w = upd("w", T::Wait, A::Start);
                w.wait_options = Some(WaitOptions { wait_seconds: Some(5) });
                vec![w, upd("w", T::Wait, A::Cancel)]
            },
            "one update per operation",
        ),
        (vec![OperationUpdate::new("x", T::Execution, A::Succeed), upd("a", T::Step, A::Start)], "must be the last"),
        (
            {
                let mut f = upd("ctx", T::Context, A::Fail);
                f.payload = Some("1".into());
                vec![upd("ctx", T::Context, A::Start), f]
            },
            "must not carry a Payload",
        ),
    ];
    for (batch, want) in cases {
        let msg = rejected(svc.checkpoint(&arn, &t, &batch).await);
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
    }
    // Nothing of the refused batches was applied, and the token is still good.
    assert_eq!(svc.operations(&arn).await.unwrap().len(), 1);
    let r = svc.checkpoint(&arn, &t, &[upd("a", T::Step, A::Start)]).await.unwrap();
    let t = r.checkpoint_token.unwrap();
    // A recorded operation may not change type, name, sub-type or parent.
    let mut renamed = upd("a", T::Step, A::Succeed);
    renamed.name = Some("other".into());
    assert!(rejected(svc.checkpoint(&arn, &t, &[renamed]).await).contains("may not change"));
    let mut as_wait = upd("a", T::Wait, A::Cancel);
    as_wait.sub_type = Some(SubType::new("Wait"));
    assert!(rejected(svc.checkpoint(&arn, &t, &[as_wait]).await).contains("may not change"));
    // A parent must be a CONTEXT: a child of a step is refused.
    let mut child = upd("k", T::Step, A::Start);
    child.parent_id = Some("a".into());
    assert!(rejected(svc.checkpoint(&arn, &t, &[child]).await).contains("not a CONTEXT"));
    // A child of a context started earlier in the same batch is fine.
    let mut child = upd("k", T::Step, A::Start);
    child.parent_id = Some("ctx".into());
    svc.checkpoint(&arn, &t, &[upd("ctx", T::Context, A::Start), child]).await.unwrap();
}

#[tokio::test]
async fn waits_fire_and_keep_their_modelled_duration() {
    let (svc, clock) = service();
    let (arn, t) = started(&svc).await;
    let mut w = upd("w", T::Wait, A::Start);
    w.name = Some("nap".into());
    w.wait_options = Some(WaitOptions { wait_seconds: Some(3600) });
    let t = svc.checkpoint(&arn, &t, &[w]).await.unwrap().checkpoint_token.unwrap();
    let rec =
        svc.end_invocation(&arn, &t, InvocationEnd::Output(DurableExecutionInvocationOutput::pending())).await.unwrap();
    assert_eq!(rec.wake_at, Some(clock.now().plus_seconds(3600)));
    assert!(svc.due_executions(10).await.unwrap().is_empty(), "not due before the hour");
    clock.advance(std::time::Duration::from_hours(1));
    assert_eq!(svc.due_executions(10).await.unwrap(), std::slice::from_ref(&arn));
    let input = svc.begin_invocation(&arn).await.unwrap();
    let w = input.initial_execution_state.operations.iter().find(|o| &*o.id == "w").unwrap();
    assert_eq!(w.status, OperationStatus::Succeeded);
    let events = svc.full_history(&arn).await.unwrap();
    let started = events.iter().find(|e| e.event_type == EventType::WaitStarted).unwrap();
    assert_eq!(started.details.duration, Some(3600));
    assert_eq!(started.name.as_deref(), Some("nap"));
    let done = events.iter().find(|e| e.event_type == EventType::WaitSucceeded).unwrap();
    assert_eq!(done.details.duration, Some(3600));
    assert_eq!(done.event_id, started.event_id + 2, "InvocationCompleted in between");
}

#[tokio::test]
async fn a_new_invocation_fences_the_old_one_off() {
    let (svc, _) = service();
    let (arn, old) = started(&svc).await;
    let new = svc.begin_invocation(&arn).await.unwrap().checkpoint_token;
    assert!(matches!(
        svc.checkpoint(&arn, &old, &[upd("a", T::Step, A::Start)]).await,
        Err(ServiceError::InvalidToken(_))
    ));
    assert!(matches!(
        svc.end_invocation(&arn, &old, InvocationEnd::Output(DurableExecutionInvocationOutput::pending())).await,
        Err(ServiceError::InvalidToken(_))
    ));
    svc.checkpoint(&arn, &new, &[upd("a", T::Step, A::Start)]).await.unwrap();
    // The abandoned invocation is recorded as lost.
    let events = svc.full_history(&arn).await.unwrap();
    let lost = events.iter().find(|e| e.event_type == EventType::InvocationCompleted).unwrap();
    let err = lost.details.error.as_ref().unwrap().payload.as_ref().unwrap();
    assert_eq!(err.error_type.as_deref(), Some(INVOCATION_LOST_ERROR_TYPE));
    // Garbage tokens are refused too.
    assert!(matches!(svc.checkpoint(&arn, "garbage", &[]).await, Err(ServiceError::InvalidToken(_))));
}

#[tokio::test]
async fn idempotent_starts() {
    let (svc, _) = service();
    let req = StartExecution {
        function_name: "f".into(),
        name: Some("order-1".into()),
        input: Some("1".into()),
        ..Default::default()
    };
    let a = svc.start_execution(req.clone()).await.unwrap();
    assert!(a.created);
    let b = svc.start_execution(req.clone()).await.unwrap();
    assert_eq!(b, Started { arn: a.arn.clone(), created: false });
    let err = svc.start_execution(StartExecution { input: Some("2".into()), ..req.clone() }).await.unwrap_err();
    assert_eq!(err.error_code(), "DurableExecutionAlreadyStartedException");
    assert!(err.to_string().contains("different input"), "{err}");
    let bad = svc.start_execution(StartExecution { name: Some("no spaces".into()), ..req }).await.unwrap_err();
    assert_eq!(bad.error_code(), "InvalidParameterValueException");
}

#[tokio::test]
async fn state_and_history_page() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let config = ServiceConfig { state_page_items: 10, ..ServiceConfig::default() };
    let svc = CheckpointService::with_config(Arc::new(MemoryStore::new()), Arc::new(clock), config);
    let (arn, mut t) = started(&svc).await;
    for i in 0..25 {
        let mut s = upd(&format!("s{i}"), T::Step, A::Succeed);
        s.payload = Some(i.to_string().into());
        t = svc
            .checkpoint(&arn, &t, &[upd(&format!("s{i}"), T::Step, A::Start), s])
            .await
            .unwrap()
            .checkpoint_token
            .unwrap();
    }
    svc.end_invocation(
        &arn,
        &t,
        InvocationEnd::Crashed { error: ErrorObject::new("X", "y"), retry_at: Timestamp::EPOCH },
    )
    .await
    .unwrap();
    let input = svc.begin_invocation(&arn).await.unwrap();
    let mut ops = input.initial_execution_state.operations.clone();
    assert_eq!(ops.len(), 10);
    let mut marker = input.initial_execution_state.next_marker.clone();
    while let Some(m) = marker {
        let page = svc.get_state(&arn, &input.checkpoint_token, Some(&m)).await.unwrap();
        ops.extend(page.operations);
        marker = page.next_marker;
    }
    assert_eq!(ops.len(), 26);
    assert_eq!(&*ops[25].id, "s24");
    let q = HistoryQuery { max_items: Some(20), ..HistoryQuery::default() };
    let p1 = svc.history(&arn, &q).await.unwrap();
    assert_eq!(p1.events.len(), 20);
    assert!(
        p1.events.iter().all(|e| e.details.result.as_ref().is_none_or(|r| r.payload.is_none())),
        "no data unless asked"
    );
    let p2 = svc.history(&arn, &HistoryQuery { marker: p1.next_marker.clone(), ..q.clone() }).await.unwrap();
    assert_eq!(p2.events[0].event_id, 21);
    let rev = svc
        .history(
            &arn,
            &HistoryQuery { reverse: true, max_items: Some(2), include_data: true, ..HistoryQuery::default() },
        )
        .await
        .unwrap();
    assert_eq!(rev.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [52, 51]);
}

#[tokio::test]
async fn stop_and_timeout_end_executions() {
    let (svc, clock) = service();
    let (arn, t) = started(&svc).await;
    svc.stop_execution(&arn, None).await.unwrap();
    assert!(matches!(svc.checkpoint(&arn, &t, &[]).await, Err(ServiceError::NotRunning(_))));
    let exec = svc.get_execution(&arn).await.unwrap();
    assert_eq!(exec.status, ExecutionStatus::Stopped);

    let arn = svc
        .start_execution(StartExecution { function_name: "f".into(), timeout_seconds: Some(60), ..Default::default() })
        .await
        .unwrap()
        .arn;
    clock.advance(std::time::Duration::from_secs(61));
    assert!(matches!(svc.begin_invocation(&arn).await, Err(ServiceError::NotRunning(_))));
    let events = svc.full_history(&arn).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, EventType::ExecutionTimedOut);
    assert_eq!(svc.get_execution(&arn).await.unwrap().status, ExecutionStatus::TimedOut);
}

#[tokio::test]
async fn context_replay_children_is_recorded() {
    let (svc, _) = service();
    let (arn, t) = started(&svc).await;
    let mut done = upd("c", T::Context, A::Succeed);
    done.payload = Some(String::new().into());
    done.context_options = Some(ContextOptions { replay_children: Some(true) });
    svc.checkpoint(&arn, &t, &[upd("c", T::Context, A::Start), done]).await.unwrap();
    let op = svc.operations(&arn).await.unwrap().into_iter().find(|o| &*o.id == "c").unwrap();
    assert_eq!(op.context_details.as_ref().unwrap().replay_children, Some(true));
}

#[tokio::test]
async fn oversized_payloads_are_refused() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let config = ServiceConfig { limits: Limits::AWS, ..ServiceConfig::default() };
    let svc = CheckpointService::with_config(Arc::new(MemoryStore::new()), Arc::new(clock), config);
    let (arn, t) = started(&svc).await;
    let mut big = upd("s", T::Step, A::Succeed);
    big.payload = Some("x".repeat(256 * 1024 + 1).into());
    let msg = rejected(svc.checkpoint(&arn, &t, &[upd("s", T::Step, A::Start), big]).await);
    assert!(msg.contains("at most 262144 bytes"), "{msg}");

    // Each kind of update against its own maximum; a refused batch changes nothing, so the
    // same token goes on.
    let mut invoke = upd("i", T::ChainedInvoke, A::Start);
    invoke.chained_invoke_options =
        Some(crate::model::ChainedInvokeOptions { function_name: "g".into(), ..Default::default() });
    invoke.payload = Some("x".repeat(Limits::AWS.max_invoke_input() + 1).into());
    let mut result = OperationUpdate::new("execution-result-1", T::Execution, A::Succeed);
    result.payload = Some("x".repeat(Limits::AWS.max_execution_result + 1).into());
    let mut error = upd("e", T::Step, A::Fail);
    error.error = Some(ErrorObject::new("Big", "x".repeat(256 * 1024)));
    let cases = [
        (vec![invoke], "the invoke's input is 262145 bytes; at most 262144"),
        (vec![result], "the execution's result is 6291457 bytes; at most 6291456"),
        (vec![upd("e", T::Step, A::Start), error], "at most 262144 bytes"),
    ];
    for (batch, want) in cases {
        match svc.checkpoint(&arn, &t, &batch).await {
            Err(ServiceError::InvalidParameter(e)) => {
                assert_eq!(e.error_type.as_deref(), Some(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE), "{e:?}");
                assert!(e.error_message.as_deref().unwrap().contains(want), "{e:?}");
            }
            other => panic!("expected a refusal ({want}), got {other:?}"),
        }
    }
    assert_eq!(svc.operations(&arn).await.unwrap().len(), 1, "only the EXECUTION operation");
}

/// A second service on the same store, as another process would run it.
fn other_process(svc: &CheckpointService) -> CheckpointService {
    CheckpointService::with_config(svc.store().clone(), svc.clock().clone(), ServiceConfig::default())
}

/// Starts a callback in the running invocation; returns its id and the next token.
async fn callback_started(svc: &CheckpointService, arn: &str, token: &str) -> (String, String) {
    let r = svc.checkpoint(arn, token, &[upd("cb", T::Callback, A::Start)]).await.unwrap();
    let details = r.new_execution_state.operations[0].callback_details.as_ref().unwrap();
    (details.callback_id.clone().unwrap(), r.checkpoint_token.unwrap())
}

#[tokio::test]
async fn a_checkpoint_that_lost_to_another_process_hears_of_its_change() {
    let (a, _) = service();
    let b = other_process(&a);
    let (arn, t) = started(&a).await;
    let (id, t) = callback_started(&a, &arn, &t).await;
    b.callback_success(&id, Some("7".into())).await.unwrap();
    // `a` still caches the callback as started: its commit loses, and the batch is applied
    // again on what the store holds, with the callback reported as changed.
    let r = a.checkpoint(&arn, &t, &[upd("s", T::Step, A::Start)]).await.unwrap();
    let cb = r.new_execution_state.operations.iter().find(|o| &*o.id == "cb").expect("the callback is reported");
    assert_eq!(cb.status, OperationStatus::Succeeded);
    assert!(b.operations(&arn).await.unwrap().iter().any(|o| &*o.id == "s"), "the batch was applied");
}

#[tokio::test]
async fn an_end_that_lost_to_another_process_keeps_its_change() {
    let (a, clock) = service();
    let b = other_process(&a);
    let (arn, t) = started(&a).await;
    let (id, t) = callback_started(&a, &arn, &t).await;
    b.callback_success(&id, Some("7".into())).await.unwrap();
    // Reloaded as it is, the execution waits on nothing: the completion made elsewhere is
    // what makes it due at once instead of failed for returning PENDING.
    let rec =
        a.end_invocation(&arn, &t, InvocationEnd::Output(DurableExecutionInvocationOutput::pending())).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Running);
    assert_eq!(rec.wake_at, Some(clock.now()));
}

#[tokio::test]
async fn a_stale_cache_is_reloaded_when_its_commit_loses() {
    let (a, _) = service();
    let b = other_process(&a);
    let (arn, _) = started(&a).await;
    b.stop_execution(&arn, None).await.unwrap();
    // `a` still caches the execution as running; its commits lose, and the reload says why.
    assert!(matches!(a.begin_invocation(&arn).await, Err(ServiceError::NotRunning(_))));
    assert!(matches!(a.stop_execution(&arn, None).await, Err(ServiceError::NotRunning(_))));
    assert_eq!(a.get_execution(&arn).await.unwrap().status, ExecutionStatus::Stopped);
}
