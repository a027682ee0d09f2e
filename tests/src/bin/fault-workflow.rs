//! The fault tests' workflow ([`durable_tests::faults::workflow`]) as a Lambda function,
//! served in self-hosted mode by `scripts/standins/faults.sh` behind a fault-injecting
//! proxy. Its step bodies append their runs to the file `DURABLE_FAULTS_BODY_LOG` names.

use durable::prelude::*;
use durable_tests::faults::workflow::fault_workflow;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), durable::lambda::lambda_runtime::Error> {
    durable::lambda::run(handler(fault_workflow)).await
}
