//! The real aws-sdk-lambda client against the local control plane: every durable-execution
//! operation the control plane serves, parsed by the SDK's own generated deserialisers,
//! including its error codes.
//!
//! Compiles the SDK, so it only builds with the `aws-sdk-tests` feature:
//!
//! ```text
//! cargo test -p durable-runtime --features aws-sdk-tests --test aws_sdk
//! ```

mod support;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::operation::get_durable_execution::GetDurableExecutionError;
use aws_sdk_lambda::operation::send_durable_execution_callback_success::SendDurableExecutionCallbackSuccessError;
use aws_sdk_lambda::operation::stop_durable_execution::StopDurableExecutionError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{ErrorObject, EventType, ExecutionStatus};
use durable_runtime::client::Client;
use support::{callback_id, eventually, runner, with_worker};

fn lambda(endpoint: &str) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

#[tokio::test]
async fn aws_sdk_lambda_drives_the_local_control_plane() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let ours = Client::new(&server.endpoint()).unwrap();
    let sdk = lambda(&server.endpoint());
    // The SDK's futures are large; boxed so the test's own future stays small.
    with_worker(&runner, Box::pin(async {
        // Lambda starts durable executions by Invoke, which the control plane does not
        // serve; start with the emulator's route, then do everything else with the SDK.
        let arn = ours.start("approve", Some("sdk-1"), Some("\"monitor\"")).await.unwrap();
        let id = callback_id(&ours, &arn).await;

        let got = sdk.get_durable_execution().durable_execution_arn(&arn).send().await.unwrap();
        assert_eq!(got.durable_execution_arn(), arn);
        assert_eq!(got.durable_execution_name(), "sdk-1");
        assert_eq!(got.status(), &ExecutionStatus::Running);
        assert_eq!(got.input_payload(), Some("\"monitor\""));
        assert_eq!(got.execution_data_included(), Some(true));
        assert!(got.function_arn().ends_with(":function:approve"), "{}", got.function_arn());
        assert!(got.durable_config().and_then(aws_sdk_lambda::types::DurableConfig::execution_timeout).is_some());
        let lean =
            sdk.get_durable_execution().durable_execution_arn(&arn).include_execution_data(false).send().await.unwrap();
        assert_eq!((lean.input_payload(), lean.execution_data_included()), (None, Some(false)));

        let listed = sdk
            .list_durable_executions_by_function()
            .function_name("approve")
            .statuses(ExecutionStatus::Running)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.durable_executions().len(), 1);
        assert_eq!(listed.durable_executions()[0].durable_execution_arn(), arn);
        let none = sdk
            .list_durable_executions_by_function()
            .function_name("approve")
            .statuses(ExecutionStatus::Succeeded)
            .send()
            .await
            .unwrap();
        assert!(none.durable_executions().is_empty());

        let first = sdk.get_durable_execution_history().durable_execution_arn(&arn).max_items(2).send().await.unwrap();
        assert_eq!(first.events().len(), 2);
        assert_eq!(first.events()[0].event_type(), Some(&EventType::ExecutionStarted));
        assert_eq!(first.events()[0].event_id(), 1);
        let rest = sdk
            .get_durable_execution_history()
            .durable_execution_arn(&arn)
            .marker(first.next_marker().unwrap())
            .send()
            .await
            .unwrap();
        let started = rest.events().iter().find_map(|e| e.callback_started_details()).expect("CallbackStarted");
        assert_eq!(started.callback_id(), id);

        sdk.send_durable_execution_callback_heartbeat().callback_id(&id).send().await.unwrap();
        sdk.send_durable_execution_callback_success()
            .callback_id(&id)
            .result(Blob::new("\"approved\""))
            .send()
            .await
            .unwrap();
        let done = eventually("the execution to finish", async || {
            let e = sdk.get_durable_execution().durable_execution_arn(&arn).send().await.unwrap();
            (e.status() != &ExecutionStatus::Running).then_some(e)
        })
        .await;
        assert_eq!(done.status(), &ExecutionStatus::Succeeded);
        assert_eq!(done.result(), Some("\"checked monitor: approved\""));
        assert!(done.end_timestamp().is_some());
        let history = sdk.get_durable_execution_history().durable_execution_arn(&arn).send().await.unwrap();
        let succeeded = history.events().iter().find_map(|e| e.callback_succeeded_details()).expect("CallbackSucceeded");
        assert_eq!(succeeded.result().and_then(|r| r.payload()), Some("\"approved\""));
        assert_eq!(history.events().last().and_then(|e| e.event_type()), Some(&EventType::ExecutionSucceeded));

        // Errors arrive as the SDK's modelled errors.
        let ghost = arn.replace("sdk-1", "ghost");
        let err = sdk.get_durable_execution().durable_execution_arn(&ghost).send().await.unwrap_err();
        assert!(
            matches!(err.into_service_error(), GetDurableExecutionError::ResourceNotFoundException(ref e) if e.message().is_some()),
        );
        let err = sdk
            .send_durable_execution_callback_success()
            .callback_id("bm90LWEtY2FsbGJhY2s")
            .result(Blob::new("1"))
            .send()
            .await
            .unwrap_err();
        assert!(matches!(
            err.into_service_error(),
            SendDurableExecutionCallbackSuccessError::InvalidParameterValueException(_)
        ));

        // Stop, with the ErrorObject as the request's payload; then fail a callback.
        let other = ours.start("approve", Some("sdk-2"), Some("\"lamp\"")).await.unwrap();
        callback_id(&ours, &other).await;
        let error = ErrorObject::builder().error_type("Cancelled").error_message("not needed").build();
        let stopped =
            sdk.stop_durable_execution().durable_execution_arn(&other).error(error).send().await.unwrap();
        assert!(stopped.stop_timestamp().secs() > 0);
        let e = sdk.get_durable_execution().durable_execution_arn(&other).send().await.unwrap();
        assert_eq!(e.status(), &ExecutionStatus::Stopped);
        assert_eq!(e.error().and_then(|e| e.error_type()), Some("Cancelled"));
        let err = sdk.stop_durable_execution().durable_execution_arn(&other).send().await.unwrap_err();
        assert!(matches!(err.into_service_error(), StopDurableExecutionError::InvalidParameterValueException(_)));

        let third = ours.start("approve", Some("sdk-3"), Some("\"chair\"")).await.unwrap();
        let id = callback_id(&ours, &third).await;
        let rejection = ErrorObject::builder().error_type("Rejected").error_message("over budget").build();
        sdk.send_durable_execution_callback_failure().callback_id(&id).error(rejection).send().await.unwrap();
        let failed = eventually("the rejected execution to fail", async || {
            let e = sdk.get_durable_execution().durable_execution_arn(&third).send().await.unwrap();
            (e.status() != &ExecutionStatus::Running).then_some(e)
        })
        .await;
        assert_eq!(failed.status(), &ExecutionStatus::Failed);
        assert_eq!(failed.error().and_then(|e| e.error_type()), Some("Rejected"));
    }))
    .await;
}
